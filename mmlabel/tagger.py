"""A trained tagger: a model with its tag scheme and input pipeline, loaded from a run directory to label new posts."""
from pathlib import Path

import torch

from mmlabel.data.batches import Collator, TaggingDataset, loader_workers, make_loader
from mmlabel.data.token_rows import TokenRows
from mmlabel.data.example import Example, Span
from mmlabel.data.tokenize import DEFAULT_TOKENIZER, Token, tokenize
from mmlabel.device import autocast, resolve_device, resolve_precision
from mmlabel.run_dir import RunDir


class Tagger:
    """Labels posts: `Tagger.load("runs/x").predict("Kevin Durant and Kyrie Irving", image="photo.jpg")`."""

    def __init__(self, model, scheme, max_tokens: int = 60, images=None, device: str | torch.device = "cpu",
                 precision: str = "fp32", batch_size: int = 32, missing_image: str = "error", features=None,
                 tokenizer: str = DEFAULT_TOKENIZER, workers: int = 0, text=None):
        self.model = model
        self.scheme = scheme
        self.max_tokens = max_tokens
        self.images = images  # an ImageLoader, or a pixel source made of one (mmlabel.data.image_store)
        self.device = torch.device(device)
        self.precision = precision
        self.batch_size = batch_size
        self.missing_image = missing_image  # the policy for images given by name: "error" or "blank"
        self.features = features  # an ImageFeatureCache over `images`, where the image encoder is frozen
        self.tokenizer = tokenizer  # how raw text is split into words (mmlabel.data.tokenize)
        self.workers = workers  # data-loader workers for predictions over files (loader_workers)
        # sentences tokenised once: kept for the tagger's life where given (the trainer's, for every dev evaluation),
        # else for one call (a server's tagger would otherwise keep every sentence it was ever sent)
        self.text = text
        self._source: tuple = (None, None)  # the last ImageLoader given and the pixel source made of it

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "auto", images=None) -> "Tagger":
        """The dev-selected model of a finished run (or of its `mmlabel export`, also as hf://OWNER/NAME), rebuilt
        from its saved recipe, tag scheme and encoder exports (tokenizer, architecture, image transform: no download),
        with the run's weights."""
        from mmlabel.export import resolve_source
        from mmlabel.model import TaggingModel

        run = RunDir(resolve_source(run_dir))  # hf://OWNER/NAME: an export on the Hugging Face Hub
        run.check_complete()
        recipe = run.recipe()
        scheme = saved_scheme(run)
        model = TaggingModel.for_scheme(saved_architecture(recipe, run.architecture()), scheme)
        run.load_model_weights(model)
        target = resolve_device(device)
        precision = resolve_precision(recipe.train.precision, target)  # "auto": chosen for the loading device
        return cls(model.to(target), scheme, recipe.data.max_tokens, images, target, precision,
                   missing_image=recipe.data.missing_image, tokenizer=recipe.data.tokenizer,
                   workers=loader_workers("auto", target))

    @property
    def multimodal(self) -> bool:
        return self.model.image_encoder is not None

    def words(self, text: str) -> list[Token]:
        """The words of raw text with their character offsets, split by the run's tokenizer."""
        return tokenize(text, self.tokenizer)

    def predict(self, text: str | list[str], image: str | Path | None = None) -> list[Span]:
        """Spans of one post, given as raw text (split by the run's tokenizer; the spans then carry character
        offsets into it) or as words; `image` is a file path."""
        tokens = self.words(text) if isinstance(text, str) else None
        words = [token.text for token in tokens] if tokens is not None else list(text)
        if not words:
            return []
        images = self.images
        if image is not None:
            images = self._folder(Path(image).parent)
            image = Path(image).name
        spans = self.predict_examples([Example("input", words, str(image) if image else None)], images=images)[0]
        return with_offsets(spans, tokens) if tokens is not None else spans

    def predict_posts(self, posts: list[tuple[str | list[str], "Image.Image | None"]]) -> list[list[Span]]:
        """Spans of each post, given as (raw text or words, its decoded image or None), decoded in batches: the
        spans of a raw text carry character offsets. An image-reading model is given a blank image for None."""
        return self._decode_posts(posts, attention=False)[0]

    def predict_posts_with_attention(self, posts: list[tuple[str | list[str], "Image.Image | None"]]
                                     ) -> tuple[list[list[Span]], list[torch.Tensor | None]]:
        """`predict_posts` and each post's `attention` (words, image-encoder tokens) from one encoding pass (None for
        a post with no words). Raises ValueError where `has_attention` is False."""
        self._check_attention()
        return self._decode_posts(posts, attention=True)

    def post_attention(self, posts: list[tuple[str | list[str], "Image.Image | None"]]) -> list[torch.Tensor]:
        """`attention` of posts given as in `predict_posts`: per post, (words, image-encoder tokens)."""
        examples, _, images = self._post_examples(posts)
        return self.attention(examples, images=images)

    def _decode_posts(self, posts, attention: bool) -> tuple[list[list[Span]], list[torch.Tensor | None]]:
        examples, tokens, images = self._post_examples(posts)
        kept = [index for index, example in enumerate(examples) if example.tokens]
        decoded = self._decode([examples[index] for index in kept], images, attention=attention) if kept else {}
        spans: list[list[Span]] = [[] for _ in posts]
        weights: list[torch.Tensor | None] = [None for _ in posts]
        for position, index in enumerate(kept):
            found, weights[index] = decoded[position]
            spans[index] = with_offsets(found, tokens[index]) if tokens[index] is not None else found
        return spans, weights

    def _post_examples(self, posts):
        """The examples of (raw text or words, image or None) posts, the raw texts' tokens, and their images."""
        tokens = [self.words(text) if isinstance(text, str) else None for text, _ in posts]
        examples = [Example(str(index), [t.text for t in found] if found is not None else list(text),
                            str(index) if image is not None else None)
                    for index, ((text, image), found) in enumerate(zip(posts, tokens))]
        images = PostImages({str(index): image for index, (_, image) in enumerate(posts) if image is not None})
        return examples, tokens, images

    def predict_examples(self, examples: list[Example], images=None) -> list[list[Span]]:
        """Predicted spans for each example, in order, decoded with Viterbi in batches under inference mode."""
        predicted = self.predict_shard(examples, images)
        return [predicted[index] for index in range(len(examples))]

    def predict_examples_with_attention(self, examples: list[Example], images=None
                                        ) -> tuple[list[list[Span]], list[torch.Tensor]]:
        """`predict_examples` and `attention` from one encoding pass. Raises ValueError where `has_attention` is
        False."""
        self._check_attention()
        decoded = self._decode(examples, images, attention=True)
        return [decoded[i][0] for i in range(len(examples))], [decoded[i][1] for i in range(len(examples))]

    def predict_shard(self, examples: list[Example], images=None, rank: int = 0,
                      world_size: int = 1) -> dict[int, list[Span]]:
        """Example index -> predicted spans, for the examples of batches `rank`, `rank + world_size`, ... of the
        one-process batches: each example is decoded in the same batch as by one process, so the shards of a
        data-parallel evaluation, gathered, are exactly the one-process predictions."""
        decoded = self._decode(examples, images, rank=rank, world_size=world_size)
        return {index: spans for index, (spans, _) in decoded.items()}

    @property
    def has_attention(self) -> bool:
        """Whether `attention` works: a multimodal model whose fusion head exposes its word-to-patch attention."""
        return self.model.has_attention

    def attention(self, examples: list[Example], images=None) -> list[torch.Tensor]:
        """The fusion head's word-to-patch attention of each example, in order: a float32 CPU tensor (words, patches),
        one row per word (averaged over heads, at the word's first sub-word; rows of words cut off by `max_tokens`
        are 0) and one column per image-encoder token, in the encoder's order (a ViT's class token first:
        `mmlabel.report.heatmap.patch_grid` places the columns on the image). Raises ValueError where
        `has_attention` is False."""
        return self.predict_examples_with_attention(examples, images)[1]

    def _check_attention(self) -> None:
        if not self.has_attention:
            raise ValueError("this model has no word-to-patch attention (text-only, or a fusion head without "
                             "`attention`)")

    def _decode(self, examples: list[Example], images=None, rank: int = 0, world_size: int = 1,
                attention: bool = False) -> dict[int, tuple[list[Span], torch.Tensor | None]]:
        """Example index -> (spans, attention or None) for the examples of the one-process batches `rank`,
        `rank + world_size`, ..., under inference mode; the attention (words, patches) is `attention`'s."""
        images = images if images is not None else self.images
        features = self.features if images is self.images else None
        pixels = self.pixels(images) if features is None else None
        if pixels is not None:
            pixels.prepare([example.image for example in examples])  # photos not stored yet: decoded in threads
        text = self.text if self.text is not None else TokenRows.for_encoder(self.model.text_encoder, self.max_tokens)
        dataset = TaggingDataset(examples, self.scheme, pixels, features, text)
        collate = Collator.for_encoder(self.model.text_encoder, self.max_tokens)
        # worker processes for many posts read from files; posts in memory (serving) stay in this process
        workers = self.workers if len(examples) >= 4 * self.batch_size and not isinstance(images, PostImages) else 0
        loader = make_loader(dataset, collate, self.batch_size, shuffle=False, seed=0, workers=workers, rank=rank,
                             world_size=world_size, pad=False)
        decoded: dict[int, tuple[list[Span], torch.Tensor | None]] = {}
        self.model.eval()
        with torch.inference_mode(), autocast(self.device, self.precision):
            for batch in loader:
                indices, word_mask = batch.pop("index").tolist(), batch["word_mask"].bool()
                batch = {key: value.to(self.device, non_blocking=True) for key, value in batch.items()}
                if attention:
                    tag_ids, weights = self.model.decode_with_attention(batch)
                    weights = weights.float().cpu()  # (batch, words, patches)
                else:
                    tag_ids, weights = self.model.decode(batch), None
                for row, index in enumerate(indices):
                    n_words = len(examples[index].tokens)
                    rows = _word_rows(weights[row], int(word_mask[row].sum()), n_words) if attention else None
                    decoded[index] = (self._spans(tag_ids[row], n_words), rows)
        return decoded

    def _folder(self, folder: Path):
        """An ImageLoader of `folder`, the same one for the same folder: `predict` called photo after photo keeps one
        image store, which looks up its index of hashed files once."""
        from mmlabel.data.images import ImageLoader

        if self._source[0] is None or getattr(self._source[0], "image_dir", None) != folder:
            return ImageLoader(folder, self.missing_image)
        return self._source[0]

    def pixels(self, images):
        """The pixel source of `images` for this model: the image store for photos named by file (an
        `ImageLoader`; the same store for the same loader, so that its photos are looked up once), the encoder's
        `pixel_transform` (or `transform`) applied directly to images in memory (`PostImages`: nothing is hashed or
        stored); `images` itself where it is a pixel source already; None for a text-only model."""
        from mmlabel.contracts import stores_pixels
        from mmlabel.data.image_store import DecodedImages, pixel_source

        encoder = self.model.image_encoder
        if images is None or encoder is None or hasattr(images, "identity"):
            return images if encoder is not None else None
        if isinstance(images, PostImages):
            return DecodedImages(images, encoder.pixel_transform if stores_pixels(encoder) else encoder.transform)
        if self._source[0] is not images:
            self._source = (images, pixel_source(images, encoder))
        return self._source[1]

    def _spans(self, tag_ids: list[int], n_words: int) -> list[Span]:
        tags = [self.scheme.tags[tag_id] for tag_id in tag_ids]
        tags += ["O"] * (n_words - len(tags))  # words cut off by max_tokens are predicted O
        return self.scheme.decode(tags)


class PostImages:
    """Images that came with the posts, decoded already, by example name (an `ImageLoader` stand-in)."""

    def __init__(self, images: dict):
        from mmlabel.data.images import BLANK_SIZE

        self.images = images
        self.blank_size = BLANK_SIZE

    def load(self, name: str | None):
        from PIL import Image

        return self.images[name] if name else Image.new("RGB", self.blank_size)


def _word_rows(weights: torch.Tensor, real: int, n_words: int) -> torch.Tensor:
    """(n_words, patches): the attention rows of the `real` words that reached the model, 0 for those cut off."""
    rows = torch.zeros(n_words, weights.shape[-1])
    rows[:real] = weights[:real]
    return rows


def with_offsets(spans: list[Span], tokens: list[Token]) -> list[Span]:
    """The spans with their character offsets in the raw text the words `tokens` came from."""
    return [Span(span.start, span.end, span.label, tokens[span.start].start, tokens[span.end - 1].end)
            for span in spans]


def saved_scheme(run: RunDir):
    """The run's tag scheme, rebuilt through the registry; runs written before tag schemes took options have none."""
    from mmlabel.errors import RunError
    from mmlabel.registry import get

    tags = run.tags()
    scheme = get("tag_scheme", tags["scheme"]).build(tags.get("options", {}), labels=tags["labels"])
    if scheme.tags != tags["tags"]:
        raise RunError(f"{run.tags_path}: tag scheme {tags['scheme']!r} now gives the tags {scheme.tags}, "
                       f"not the run's {tags['tags']}")
    return scheme


def saved_architecture(recipe, architecture: dict):
    """The recipe with each encoder's options replaced by those its `export` returned into the run: the same
    architecture, built with no download, ready for the run's weights."""
    from mmlabel.recipe import ComponentSpec

    rebuilt = recipe.model_copy(deep=True)
    for key, options in architecture.items():
        setattr(rebuilt, key, ComponentSpec(name=getattr(recipe, key).name, **options))
    return rebuilt


def predict_jsonl(tagger: Tagger, source: Path, target: Path, image_dir: Path) -> list[tuple[int, str]]:
    """Predict every well-formed line of `source` (`{"tokens"|"text", "image"}`) into `target` in the jsonl prediction
    format; returns the (line number, reason) of each malformed line, which is skipped."""
    import json

    from mmlabel.data.images import ImageLoader
    from mmlabel.errors import DataError
    from mmlabel.registry import create

    examples, bad = [], []
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read: {error}", source) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            text = None if "tokens" in record else str(record["text"])
            offsets = tagger.words(text) if text is not None else None
            tokens = record["tokens"] if text is None else [token.text for token in offsets]
            if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
                raise ValueError("'tokens' must be a non-empty list of strings" if text is None else "'text' has no words")
            image = record.get("image")
            if tagger.multimodal and not image:
                raise ValueError("this model reads images: the line has no 'image'")
            examples.append((Example(str(record.get("id", number)), tokens, image, text=text), offsets))
        except (ValueError, KeyError, TypeError) as error:
            bad.append((number, f"{type(error).__name__}: {error}" if not isinstance(error, ValueError) else str(error)))
    images = ImageLoader(image_dir, tagger.missing_image) if tagger.multimodal else None
    predictions = tagger.predict_examples([e for e, _ in examples], images=images) if examples else []
    predicted = [Example(e.id, e.tokens, e.image, with_offsets(spans, offsets) if offsets else spans, e.text)
                 for (e, offsets), spans in zip(examples, predictions)]
    create("dataset_reader", "jsonl").write(predicted, target)
    return bad
