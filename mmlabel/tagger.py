"""A trained tagger: a model with its tag scheme and input pipeline, loaded from a run directory to label new posts.

Two ways in. `Tagger.predict(posts)` tags posts as they come (`mmlabel predict`, `mmlabel serve`): raw text or
words, with an image as a file, bytes, a PIL image, a numpy array or none (`Post`), one post or many, with the fusion
head's attention where asked for. `Tagger.predict_split(examples)` tags examples a dataset reader gave (`mmlabel
evaluate`, `report`, the trainer's dev and test evaluations), their photos read through the image store, in batches
that data-parallel processes share out. Both tag a post longer than `max_tokens` in overlapping word windows
(`word_windows`, `most_central`), so that every word gets a tag.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from mmlabel.data.batches import Collator, TaggingDataset, loader_workers, make_loader
from mmlabel.data.token_rows import TokenRows
from mmlabel.data.example import Example, Span
from mmlabel.data.tokenize import DEFAULT_TOKENIZER, Token, tokenize
from mmlabel.device import autocast, resolve_device, resolve_precision
from mmlabel.run_dir import RunDir
from mmlabel.windows import most_central, word_windows


@dataclass(frozen=True)
class Post:
    """One post to tag: `text`, raw (split into words by the run's tokenizer; its spans then carry character offsets
    into it) or already split into words, and its `image`, in any of the forms images are held in:

    - a file path (str or Path) or the file's bytes (as read from a file or a web request): decoded whole; a missing,
      truncated or damaged file follows the tagger's `missing_image` policy (the run's `data.missing_image`):
      "error" raises a `DataError` naming it, "blank" tags the post with a blank image and warns;
    - a PIL image (any mode: made RGB);
    - a numpy array: (H, W) greyscale or (H, W, 3) RGB (also (H, W, 1) and (H, W, 4) RGBA), uint8 in 0..255 or
      float in [0, 1]; RGB order (convert OpenCV's BGR first);
    - None: a model that reads images then sees a blank one (as `data.missing_image = "blank"` gives), and
      `predict` warns once per call (`MMLabelWarning`).

    `context`: free text about the post (a caption, OCR text, knowledge; the run's `data.context` channel), read by
    the text encoder after the words and never tagged; None for none."""

    text: str | Sequence[str]
    image: str | Path | bytes | Any = None  # Any: a PIL.Image.Image or numpy array, not imported for the annotation
    context: str | None = None


@dataclass
class Prediction:
    """What the tagger found in one post: its `words`, its `spans` (word indices, end exclusive; character offsets
    too where the post came as raw text) and, where asked for, `attention`: the fusion head's word-to-patch attention,
    a float32 CPU tensor (words, patches), one row per word (averaged over heads, at the word's first sub-word; a
    long post's rows come from the windows its words took their tags from) and one column per image-encoder token, in the encoder's order (a ViT's
    class token first: `mmlabel.report.heatmap.patch_grid` places the columns on the image). No attention for a
    post with no words. Predictions compare by their words and spans."""

    words: list[str]
    spans: list[Span]
    attention: torch.Tensor | None = field(default=None, compare=False)


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
        # a post longer than max_tokens is tagged in windows that overlap by this share of their words
        self.window_overlap = 0.5

    # what a DataError under missing_image = "error" suggests for a post's image (the command line names its option)
    image_remedy = 'set missing_image="blank" (Tagger.load) to tag it with a blank image instead'

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "auto", images=None,
             missing_image: str | None = None) -> "Tagger":
        """The dev-selected model of a finished run, rebuilt from its saved recipe, tag scheme and encoder exports
        (tokenizer, architecture, image transform: no download), with the run's weights; also of its `mmlabel
        export`, local or as hf://OWNER/NAME. `missing_image` ("error" or "blank") replaces the run's
        `data.missing_image` for the images given to predict on. Versions that differ from those the run trained
        with are noted (`mmlabel.environment.note_version_changes`)."""
        from mmlabel.environment import note_version_changes
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
        note_version_changes(run_dir, run.info())  # once it loads: a run that cannot says why instead
        return cls(model.to(target), scheme, recipe.data.max_tokens, images, target, precision,
                   missing_image=missing_image or recipe.data.missing_image, tokenizer=recipe.data.tokenizer,
                   workers=loader_workers("auto", target))

    @property
    def multimodal(self) -> bool:
        return self.model.image_encoder is not None

    @property
    def has_attention(self) -> bool:
        """Whether `attention=True` works: a multimodal model whose fusion head exposes its word-to-patch attention."""
        return self.model.has_attention

    def words(self, text: str) -> list[Token]:
        """The words of raw text with their character offsets, split by the run's tokenizer."""
        return tokenize(text, self.tokenizer)

    def predict(self, posts, image=None, attention: bool = False, context: str | None = None):
        """Tag posts, in batches of `batch_size` under inference mode.

        `posts` is a list of `Post` -> a list of `Prediction`, one per post, in order. Or one post, given as its raw
        text (a str) or its words (a list of str), with `image` (a path or a PIL image) and `context` (text about
        the post) -> its list of `Span` (its `Prediction` with `attention`). `attention` also returns the fusion
        head's word-to-patch attention of each post, from the same encoding pass; a ValueError where
        `has_attention` is False."""
        one = _one_post(posts, image, context)
        if one is None:
            if image is not None or context is not None:
                given = "image" if image is not None else "context"
                raise TypeError(f"`{given}` goes with one post (its text or words); give each Post its own {given}")
            return self._predict_posts(list(posts), attention)
        found = self._predict_posts([one], attention)[0]
        return found if attention else found.spans

    def predict_split(self, examples: list[Example], images=None, attention: bool = False, rank: int = 0,
                      world_size: int = 1) -> list[Prediction | None]:
        """The prediction of each example of a split, in order, its photos named by `images` (an `ImageLoader`, or
        a pixel source made of one; default the tagger's): read through the image store, or the frozen encoder's
        cached states where the tagger has them. With `world_size` processes, this one (`rank`) predicts the
        one-process batches `rank`, `rank + world_size`, ... and the others' examples are None here: each example is
        decoded in the batch one process puts it in, so the shares, gathered, are exactly the one-process
        predictions."""
        self._check_attention(attention)
        images = images if images is not None else self.images
        features = self.features if images is self.images else None
        pixels = self.pixels(images) if features is None else None
        if pixels is not None:
            pixels.prepare([example.image for example in examples])  # photos not stored yet: decoded in threads
        # worker processes for many posts read from files
        workers = self.workers if len(examples) >= 4 * self.batch_size else 0
        decoded = self._decode(examples, pixels, features, attention, workers, rank, world_size)
        return [decoded.get(index) for index in range(len(examples))]

    def _predict_posts(self, posts: list, attention: bool) -> list[Prediction]:
        self._check_attention(attention)
        if not all(isinstance(post, Post) for post in posts):
            found = next(type(post).__name__ for post in posts if not isinstance(post, Post))
            raise TypeError(f"posts must be Post objects (or one post as a str or a list of words), found {found}")
        tokens = [self.words(post.text) if isinstance(post.text, str) else None for post in posts]
        examples = [Example(str(index), [token.text for token in found] if found is not None else list(post.text),
                            str(index) if post.image is not None else None, context=post.context or None)
                    for index, (post, found) in enumerate(zip(posts, tokens))]
        kept = [index for index, example in enumerate(examples) if example.tokens]
        self._warn_without_images([examples[index] for index in kept])
        given = {str(index): post_image(post.image, index) for index, post in enumerate(posts) if post.image is not None}
        images = PostImages(given, self.missing_image, self.image_remedy)
        pixels = self.pixels(images)
        # posts in memory stay in this process: no loader workers
        decoded = self._decode([examples[index] for index in kept], pixels, None, attention) if kept else {}
        predictions = [Prediction(example.tokens, []) for example in examples]
        for position, index in enumerate(kept):
            found = decoded[position]
            spans = with_offsets(found.spans, tokens[index]) if tokens[index] is not None else found.spans
            predictions[index] = Prediction(examples[index].tokens, spans, found.attention)
        return predictions

    def _warn_without_images(self, examples: list[Example]) -> None:
        from mmlabel.log import warn

        missing = sum(example.image is None for example in examples)
        if self.multimodal and missing:
            warn(f"{missing} of {len(examples)} posts have no image: this model reads images, and sees a blank one "
                 f"for {'it' if missing == 1 else 'them'}", stacklevel=3)

    def _check_attention(self, attention: bool) -> None:
        from mmlabel.model import NO_ATTENTION

        if attention and not self.has_attention:
            raise ValueError(NO_ATTENTION)

    def _decode(self, examples: list[Example], pixels, features, attention: bool, workers: int = 0, rank: int = 0,
                world_size: int = 1) -> dict[int, Prediction]:
        """Example index -> its prediction, under inference mode: the examples whose words all fit in `max_tokens`
        from the one-process batches `rank`, `rank + world_size`, ... of them; the longer ones (the `rank`-th,
        `rank + world_size`-th, ... of them) tagged in overlapping windows (`word_windows`), all the windows of one
        example in batches of their own, so that a prediction does not depend on how many processes share the
        work."""
        from mmlabel.data.context import check_reads_context

        check_reads_context(self.model.text_encoder, examples)
        text = self.text if self.text is not None else TokenRows.for_encoder(self.model.text_encoder, self.max_tokens)
        long = [index for index, example in enumerate(examples)
                if self._fitting(example.tokens, text) < len(example.tokens)]
        short = sorted(set(range(len(examples))) - set(long))
        found = self._tag([examples[index] for index in short], pixels, features, attention, text, workers, rank,
                          world_size)
        decoded = {short[position]: self._prediction(examples[short[position]].tokens, *tagged)
                   for position, tagged in found.items()}
        for index in long[rank::world_size]:
            decoded[index] = self._decode_windows(examples[index], pixels, features, attention, text)
        return decoded

    def _tag(self, examples: list[Example], pixels, features, attention: bool, text, workers: int = 0,
             rank: int = 0, world_size: int = 1) -> dict[int, tuple[list[int], torch.Tensor | None]]:
        """Example index -> its tag ids (one per word that reached the model) and, with `attention`, its attention
        rows (words, patches), for the examples of the one-process batches `rank`, `rank + world_size`, ..."""
        if not examples:
            return {}
        dataset = TaggingDataset(examples, self.scheme, pixels, features, text)
        collate = Collator.for_encoder(self.model.text_encoder, self.max_tokens)
        loader = make_loader(dataset, collate, self.batch_size, shuffle=False, seed=0, workers=workers, rank=rank,
                             world_size=world_size, pad=False)
        tagged: dict[int, tuple[list[int], torch.Tensor | None]] = {}
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
                    tagged[index] = (list(tag_ids[row]), rows)
        return tagged

    def _fitting(self, words: list[str], text) -> int:
        """How many of `words`, from the first, reach the model within `max_tokens` sub-words (context never takes
        a word's place: `contracts.ContextTextEncoder`)."""
        if text is not None:
            return int(text.row(words)["word_mask"].sum())
        return int(self.model.text_encoder.tokenize([list(words)], self.max_tokens)["word_mask"][0].sum())

    def _decode_windows(self, example: Example, pixels, features, attention: bool, text) -> Prediction:
        """The prediction of a post longer than `max_tokens`: its windows tagged (with the post's image) and each
        word's tag taken from the window in which it is most central, then spans decoded over the whole post."""
        words = example.tokens
        windows = word_windows(len(words), lambda start: self._fitting(words[start:], text), self.window_overlap)
        parts = [Example(f"{example.id}#{start}", words[start:end], example.image, context=example.context)
                 for start, end in windows]
        found = self._tag(parts, pixels, features, attention, text)
        tags, rows = [], []
        for word, window in enumerate(most_central(windows, len(words))):
            tag_ids, weights = found[window]
            offset = word - windows[window][0]
            tags.append(tag_ids[offset] if offset < len(tag_ids) else self.scheme.tags.index("O"))
            if attention:
                rows.append(weights[offset])
        return self._prediction(words, tags, torch.stack(rows) if attention else None)

    def _prediction(self, words: list[str], tag_ids: list[int], attention: torch.Tensor | None) -> Prediction:
        return Prediction(words, self._spans(tag_ids, len(words)), attention)

    def pixels(self, images):
        """The pixel source of `images` for this model: the image store for photos named by file (an
        `ImageLoader`; the same store for the same loader, so that its photos are looked up once), the encoder's
        `pixel_transform` (or `transform`) applied directly to the images of posts (`PostImages`: nothing is hashed
        or stored); `images` itself where it is a pixel source already; None for a text-only model."""
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


def _one_post(posts, image, context: str | None = None) -> Post | None:
    """`posts` as one Post where it is one post (a Post, a str, or a sequence of str: its words), else None."""
    if isinstance(posts, Post):
        if image is not None or context is not None:
            given = "image" if image is not None else "context"
            raise TypeError(f"`{given}` goes with a post given as its text or words; a Post holds its own {given}")
        return posts
    if isinstance(posts, str) or (isinstance(posts, Sequence) and all(isinstance(item, str) for item in posts)):
        return Post(posts, image, context)
    return None


def post_image(image, index: int):
    """The image of post `index` in a form `PostImages` reads: a Path, bytes, or an RGB PIL image (a numpy array
    converted here, so that a bad one is refused before anything is computed)."""
    from PIL import Image

    from mmlabel.data.images import from_array, to_rgb

    if isinstance(image, (str, Path)):
        return Path(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if hasattr(image, "__array_interface__") and hasattr(image, "dtype"):  # a numpy array, without importing numpy
        try:
            return from_array(image)
        except ValueError as error:
            raise ValueError(f"post {index}: {error}") from None
    raise TypeError(f"post {index}: an image is a file path, the file's bytes, a PIL image or a numpy array, "
                    f"found {type(image).__name__}")


class PostImages:
    """The images of posts by example name, an `ImageLoader` stand-in: decoded already (RGB), or files and bytes
    decoded whole when asked for (a truncated one is unreadable); under the `policy` "error" a missing or unreadable
    one raises a `DataError` naming it and suggesting `remedy`, under "blank" it becomes a blank image with a
    warning. A blank image for no name."""

    def __init__(self, images: dict, policy: str = "error", remedy: str = Tagger.image_remedy):
        from mmlabel.data.images import BLANK_SIZE, POLICIES

        if policy not in POLICIES:
            raise ValueError(f"missing_image must be one of {POLICIES}, not {policy!r}")
        self.images = images
        self.policy = policy
        self.remedy = remedy
        self.blank_size = BLANK_SIZE
        self._loaders: dict = {}  # an ImageLoader per folder of the files given

    def load(self, name: str | None):
        from PIL import Image

        from mmlabel.errors import DataError

        image = self.images[name] if name else None
        if image is None:
            return Image.new("RGB", self.blank_size)
        if isinstance(image, Image.Image):
            return image
        try:
            return self._decode(name, image)
        except DataError as error:
            if self.policy == "error":
                raise
            from mmlabel.log import warn

            warn(f"{str(error).replace('; ' + self.remedy, '')}: the post is tagged with a blank image")
            return Image.new("RGB", self.blank_size)

    def _decode(self, name: str, image: Path | bytes):
        """A file or bytes decoded whole, under the "error" policy (this class applies its own)."""
        import io

        from mmlabel.data.images import UNREADABLE, ImageLoader, unreadable_reason
        from mmlabel.errors import DataError

        folder = image.parent if isinstance(image, Path) else None
        if folder not in self._loaders:
            self._loaders[folder] = ImageLoader(folder or ".", "error", truncated="refuse", remedy=self.remedy)
        loader = self._loaders[folder]
        if isinstance(image, Path):
            return loader.load(image.name)
        try:
            return loader.decode(io.BytesIO(image))
        except UNREADABLE as error:
            where = f"post {name}'s image bytes"
            raise DataError(f"{where}: {unreadable_reason(error, where)}; {self.remedy}") from None


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
    from mmlabel.registry import build

    tags = run.tags()
    scheme = build("tag_scheme", {"name": tags["scheme"], **tags.get("options", {})}, labels=tags["labels"])
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
    """Predict every line of `source` (`{"tokens"|"text", "image", "context"}`; images named relative to `image_dir`) into
    `target` in the jsonl prediction format, as `Tagger.predict` does for posts. Where some line is malformed,
    nothing is predicted or written: returns the (line number, reason) of each. `target` is written atomically
    (a failure, or a kill, leaves no partial file)."""
    from mmlabel.atomic import atomic_path
    from mmlabel.errors import DataError
    from mmlabel.registry import build

    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read: {error}", source) from None
    records, bad = [], []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                records.append(_jsonl_post(line, number, image_dir))
            except ValueError as error:
                bad.append((number, str(error)))
    if not records and not bad:
        bad.append((0, "no posts: the file has no lines"))
    if bad:
        return bad
    found = tagger.predict([post for _, _, post in records])
    predicted = [Example(identifier, prediction.words, image, prediction.spans,
                         post.text if isinstance(post.text, str) else None, post.context)
                 for (identifier, image, post), prediction in zip(records, found)]
    with atomic_path(target) as temporary:
        build("dataset_reader", "mmlabel:jsonl").write(predicted, temporary)
    return []


def _jsonl_post(line: str, number: int, image_dir: Path) -> tuple[str, str | None, Post]:
    """The (id, image name, Post) of line `number` of a predict input; a ValueError naming the field that is wrong or missing."""
    import json

    try:
        record = json.loads(line)
    except (ValueError, RecursionError) as error:
        raise ValueError(f"not valid JSON ({error})") from None
    if not isinstance(record, dict):
        raise ValueError(f'a line is a JSON object {{"text" or "tokens", "image"}}, found {type(record).__name__}')
    if "tokens" in record:
        tokens = record["tokens"]
        if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) and t for t in tokens):
            raise ValueError("'tokens' must be a non-empty list of non-empty strings (the post's words)")
        text = tokens
    elif "text" in record:
        text = record["text"]
        if not isinstance(text, str) or not text.strip():
            raise ValueError("'text' must be a string with words in it (the post's raw text)")
    else:
        raise ValueError(f"no 'text' (the post's raw text) or 'tokens' (its words) field; found "
                         f"{', '.join(repr(key) for key in record) or 'none'}")
    image, context = record.get("image"), record.get("context")
    if image is not None and (not isinstance(image, str) or not image):
        raise ValueError(f"'image' must be a file name in the images folder, found {json.dumps(image)}")
    if context is not None and not isinstance(context, str):
        raise ValueError(f"'context' must be a string (text about the post), found {json.dumps(context)}")
    return str(record.get("id", number)), image, Post(text, image_dir / image if image else None, context or None)
