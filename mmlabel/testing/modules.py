"""Conformance checks of the model's components (text encoder, image encoder, fusion head, alignment loss), each a
function of the `Subject`, run on tiny inputs in eval mode."""
import pickle

import torch

from mmlabel.contracts import show
from mmlabel.registry import construct
from mmlabel.testing.kit import SENTENCES, Subject, close, expect

MAX_TOKENS = 40


# -- text encoder ---------------------------------------------------------------------------------------------
def text_tokenize(subject: Subject) -> None:
    batch = subject.built.tokenize(SENTENCES, MAX_TOKENS)
    keys = {"input_ids", "attention_mask", "first_subword_index", "word_mask"}
    expect(isinstance(batch, dict) and keys <= set(batch), f"tokenize returned {show(batch)}, not a dict with {keys}")
    rows, tokens = batch["input_ids"].shape
    words = max(len(sentence) for sentence in SENTENCES)
    expect(rows == len(SENTENCES) and batch["attention_mask"].shape == (rows, tokens),
           f"input_ids {show(batch['input_ids'])} and attention_mask {show(batch['attention_mask'])} are not both "
           f"(batch, tokens) with batch = {len(SENTENCES)}")
    for key, dtype in (("first_subword_index", torch.long), ("word_mask", torch.bool)):
        expect(batch[key].shape == (rows, words) and batch[key].dtype == dtype,
               f"{key} is {show(batch[key])}, not ({rows}, {words}) {str(dtype).removeprefix('torch.')}")
    expect(batch["word_mask"].sum(1).tolist() == [len(sentence) for sentence in SENTENCES],
           f"word_mask counts {batch['word_mask'].sum(1).tolist()} real words, not one per word of each sentence")
    for row in range(rows):
        positions = batch["first_subword_index"][row][batch["word_mask"][row]]
        expect(bool((positions[1:] > positions[:-1]).all()) and bool((positions < tokens).all())
               and bool(batch["attention_mask"][row, positions].all()),
               f"first_subword_index of sentence {row} ({positions.tolist()}) does not point at increasing real tokens")


def text_max_tokens(subject: Subject) -> None:
    batch = subject.built.tokenize(SENTENCES, 4)
    mask = batch["word_mask"]
    expect(batch["input_ids"].shape[1] <= 4, f"tokenize(..., max_tokens=4) gave {batch['input_ids'].shape[1]} tokens")
    expect(bool((mask[:, 1:] <= mask[:, :-1]).all()), "word_mask is not a prefix of each row when words are cut off")
    positions = batch["first_subword_index"][mask]
    expect(bool((positions < batch["input_ids"].shape[1]).all()), "a kept word points past the last token")


CONTEXTS = ["a photo of Kevin Durant dunking", None, "great"]  # the second sentence has none


def text_context(subject: Subject) -> None:
    """The optional context (`contracts.ContextTextEncoder`), where an encoder declares it: the sentences' words
    keep their sub-word positions, the context never cuts a sentence (a `max_tokens` that fits the longest sentence
    alone leaves it whole), `context_mask` marks tokens after the sentence, only where there is context, within the
    real tokens, and `forward` reads the rows. An encoder without it passes."""
    from mmlabel.contracts import declares

    encoder = subject.built
    if not declares(encoder, "accepts_context"):
        return
    alone = encoder.tokenize(SENTENCES, MAX_TOKENS)
    paired = encoder.tokenize(SENTENCES, MAX_TOKENS, contexts=CONTEXTS)
    for key in ("first_subword_index", "word_mask"):
        expect(torch.equal(alone[key], paired[key]), f"with contexts, {key} changes: {paired[key].tolist()}, not "
                                                     f"{alone[key].tolist()}")
    mask = paired.get("context_mask")
    expect(getattr(mask, "shape", None) == paired["input_ids"].shape and mask.dtype == torch.bool,
           f"with contexts, context_mask is {show(mask)}, not bool (batch, tokens) = "
           f"{tuple(paired['input_ids'].shape)}")
    real = paired["attention_mask"].bool()
    expect(not bool((mask & ~real).any()), "context_mask marks padding tokens")
    expect([bool(row.any()) for row in mask] == [bool(context) for context in CONTEXTS],
           f"context_mask marks tokens in rows {mask.any(1).tolist()}, not in the rows with context")
    last_word = paired["first_subword_index"].gather(1, (paired["word_mask"].sum(1, keepdim=True) - 1))
    starts = torch.where(mask.any(1), mask.int().argmax(1), mask.shape[1])
    expect(bool((starts > last_word.squeeze(1)).all()), "context_mask marks tokens of the sentence")
    tight = int(alone["attention_mask"].sum(1).max())  # the longest sentence alone, special tokens included
    cut = encoder.tokenize(SENTENCES, tight, contexts=CONTEXTS)
    expect(torch.equal(cut["word_mask"], alone["word_mask"]) and cut["input_ids"].shape[1] <= tight,
           f"with max_tokens = {tight} (the longest sentence alone) and contexts, word_mask is "
           f"{cut['word_mask'].int().tolist()} over {cut['input_ids'].shape[1]} tokens: the context cut a sentence "
           f"or the row is longer than max_tokens")
    states = encoder(paired["input_ids"], paired["attention_mask"])
    expect(getattr(states, "shape", None) == (*paired["input_ids"].shape, encoder.hidden_size),
           f"forward on rows with context returned {show(states)}")


def text_forward(subject: Subject) -> None:
    encoder = subject.built
    batch = encoder.tokenize(SENTENCES, MAX_TOKENS)
    states = encoder(batch["input_ids"], batch["attention_mask"])
    expected = (*batch["input_ids"].shape, encoder.hidden_size)
    expect(getattr(states, "shape", None) == expected and states.is_floating_point(),
           f"forward returned {show(states)}, not floating (batch, tokens, hidden_size) = {expected}")


def text_padding(subject: Subject) -> None:
    """A sentence's states do not depend on the padding its batch adds (the attention mask is respected)."""
    encoder = subject.built
    batch = encoder.tokenize(SENTENCES, MAX_TOKENS)
    alone = encoder.tokenize(SENTENCES[-1:], MAX_TOKENS)
    padded = encoder(batch["input_ids"], batch["attention_mask"])[-1, : alone["input_ids"].shape[1]]
    single = encoder(alone["input_ids"], alone["attention_mask"])[0]
    expect(close(padded, single), "the shortest sentence's token states change when its batch is padded")


def text_export(subject: Subject) -> None:
    encoder = subject.built
    rebuilt = _reloaded(subject, encoder)
    batch = encoder.tokenize(SENTENCES, MAX_TOKENS)
    again = rebuilt.tokenize(SENTENCES, MAX_TOKENS)
    expect(all(torch.equal(batch[key], again[key]) for key in batch), "the reloaded encoder tokenizes differently")
    expect(close(encoder(batch["input_ids"], batch["attention_mask"]),
                 rebuilt(batch["input_ids"], batch["attention_mask"]), 1e-6),
           "the encoder rebuilt from export()'s options with the same weights gives other states")


def text_determinism(subject: Subject) -> None:
    encoder = subject.built
    batch = encoder.tokenize(SENTENCES, MAX_TOKENS)
    expect(torch.equal(encoder(batch["input_ids"], batch["attention_mask"]),
                       encoder(batch["input_ids"], batch["attention_mask"])), "two eval-mode passes differ")


# -- image encoder --------------------------------------------------------------------------------------------
def _image():
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)  # not the model's size
    return Image.fromarray(pixels)


def image_transform(subject: Subject) -> None:
    encoder = subject.built
    pixels = encoder.transform(_image())
    expect(getattr(pixels, "shape", None) == tuple(encoder.input_size) and pixels.dtype == torch.float32,
           f"transform gave {show(pixels)}, not float32 input_size = {tuple(encoder.input_size)}")
    copy = pickle.loads(pickle.dumps(encoder.transform))
    expect(torch.equal(copy(_image()), pixels), "the unpickled transform gives other pixels")


def _pixels(encoder, rows: int = 2):
    return torch.randn(rows, *encoder.input_size, generator=torch.Generator().manual_seed(0))


def image_forward(subject: Subject) -> None:
    encoder = subject.built
    output = encoder(_pixels(encoder))
    expect(isinstance(output, tuple) and len(output) == 2, f"forward returned {show(output)}, not (states, mask)")
    states, mask = output
    expect(getattr(states, "dim", lambda: 0)() == 3 and states.shape[0] == 2 and states.shape[2] == encoder.hidden_size
           and states.is_floating_point(), f"states are {show(states)}, not floating (2, patches, hidden_size)")
    expect(getattr(mask, "shape", None) == states.shape[:2] and mask.dtype == torch.bool,
           f"mask is {show(mask)}, not bool (batch, patches) = {tuple(states.shape[:2])}")


def image_rows_independent(subject: Subject) -> None:
    encoder, pixels = subject.built, _pixels(subject.built)
    expect(close(encoder(pixels)[0][:1], encoder(pixels[:1])[0]), "an image's states depend on the other images")


def image_export(subject: Subject) -> None:
    encoder, pixels = subject.built, _pixels(subject.built)
    rebuilt = _reloaded(subject, encoder)
    expect(close(encoder(pixels)[0], rebuilt(pixels)[0], 1e-6) and tuple(rebuilt.input_size) == tuple(encoder.input_size),
           "the encoder rebuilt from export()'s options with the same weights gives other states")
    expect(torch.equal(rebuilt.transform(_image()), encoder.transform(_image())), "the rebuilt transform differs")


def image_determinism(subject: Subject) -> None:
    encoder, pixels = subject.built, _pixels(subject.built)
    expect(torch.equal(encoder(pixels)[0], encoder(pixels)[0]), "two eval-mode passes differ")


def image_pixels(subject: Subject) -> None:
    """The optional `pixel_transform` and `pixel_signature` (`contracts.ImageEncoderPixels`), where an encoder has
    them: uint8 (3, H, W) pixels at `input_size`, picklable; a signature that the encoder rebuilt from `export` keeps
    (a reloaded run finds its stored photos); and `forward` on those uint8 pixels equal to `forward` on `transform`'s
    float pixels. An encoder without them passes."""
    encoder = subject.built
    if getattr(encoder, "pixel_transform", None) is None and getattr(encoder, "pixel_signature", None) is None:
        return
    pixels = encoder.pixel_transform(_image())
    expect(getattr(pixels, "shape", None) == tuple(encoder.input_size) and pixels.dtype == torch.uint8,
           f"pixel_transform gave {show(pixels)}, not uint8 input_size = {tuple(encoder.input_size)}")
    copy = pickle.loads(pickle.dumps(encoder.pixel_transform))
    expect(torch.equal(copy(_image()), pixels), "the unpickled pixel_transform gives other pixels")
    signature = encoder.pixel_signature
    expect(isinstance(signature, str) and signature.strip() != "", f"pixel_signature is {show(signature)}, not a "
                                                                   f"non-empty str")
    expect(_reloaded(subject, encoder).pixel_signature == signature,
           "the encoder rebuilt from export()'s options has another pixel_signature")
    from_uint8, from_float = encoder(pixels[None])[0], encoder(encoder.transform(_image())[None])[0]
    expect(close(from_uint8, from_float),
           "forward on pixel_transform's uint8 pixels differs from forward on transform's float pixels: the encoder "
           "must normalise uint8 pixels as transform does")


def _reloaded(subject: Subject, encoder):
    """The encoder rebuilt from what `export` returned, with the same weights loaded strictly, as a run reloads."""
    options = encoder.export(subject.workdir / f"export-{subject.kind}")
    expect(isinstance(options, dict), f"export returned {show(options)}, not a dict of options")
    rebuilt = subject.build(options)
    try:
        rebuilt.load_state_dict(encoder.state_dict())
    except RuntimeError as error:
        expect(False, f"the weights do not fit the encoder rebuilt from export(): {str(error).splitlines()[0]}")
    return rebuilt.eval()


# -- fusion head ----------------------------------------------------------------------------------------------
WORDS = [5, 3, 1]  # real words per example; 5 words at most, over 8 tokens


def fusion_inputs(text_dim: int, image_dim: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    rows = len(WORDS)
    word_mask = torch.tensor([[position < count for position in range(max(WORDS))] for count in WORDS])
    first = torch.tensor([[min(1 + position, 7) for position in range(max(WORDS))] for _ in WORDS])
    image_mask = torch.ones(rows, 6, dtype=torch.bool)
    image_mask[1, 4:] = False  # the second image has two padded patches
    return {"text_states": torch.randn(rows, 8, text_dim, generator=generator), "first_subword_index": first,
            "image_states": torch.randn(rows, 6, image_dim, generator=generator), "image_mask": image_mask,
            "word_mask": word_mask, "tags": torch.randint(0, 3, (rows, max(WORDS)), generator=generator)}


def _emissions(head, inputs, text_only: bool = False):
    images = (None, None) if text_only else (inputs["image_states"], inputs["image_mask"])
    return head(inputs["text_states"], inputs["first_subword_index"], *images)


def fusion_forward(subject: Subject) -> None:
    head, runtime = subject.built, subject.runtime
    inputs = fusion_inputs(runtime["text_dim"], runtime["image_dim"])
    expected = (len(WORDS), max(WORDS), runtime["num_tags"])
    emissions = _emissions(head, inputs)
    expect(getattr(emissions, "shape", None) == expected and emissions.is_floating_point(),
           f"emissions are {show(emissions)}, not floating (batch, words, num_tags) = {expected}")
    text_only = subject.build(image_dim=None)
    emissions = _emissions(text_only, inputs, text_only=True)
    expect(getattr(emissions, "shape", None) == expected,
           f"built with image_dim=None and given no image, emissions are {show(emissions)}, not {expected}")


def fusion_image_padding(subject: Subject) -> None:
    head, runtime = subject.built, subject.runtime
    inputs = fusion_inputs(runtime["text_dim"], runtime["image_dim"])
    changed = dict(inputs, image_states=inputs["image_states"].clone())
    changed["image_states"][~inputs["image_mask"]] = 100.0
    expect(close(_emissions(head, inputs), _emissions(head, changed)),
           "the emissions change with the states of padded patches (image_mask False)")


def fusion_loss(subject: Subject) -> None:
    head, runtime = subject.build().train(), subject.runtime
    inputs = fusion_inputs(runtime["text_dim"], runtime["image_dim"])
    emissions = _emissions(head, inputs)
    loss = head.loss(emissions, inputs["tags"], inputs["word_mask"])
    expect(getattr(loss, "shape", None) == (len(WORDS),) and bool(torch.isfinite(loss).all()),
           f"loss is {show(loss)}, not a finite (batch,) = ({len(WORDS)},) tensor")
    trainable = any(parameter.requires_grad for parameter in head.parameters())
    expect(not trainable or loss.requires_grad, "the loss carries no gradient to the head's parameters")


def fusion_loss_padding(subject: Subject) -> None:
    head, runtime = subject.built, subject.runtime
    inputs = fusion_inputs(runtime["text_dim"], runtime["image_dim"])
    emissions = _emissions(head, inputs)
    padding = ~inputs["word_mask"]
    tags, noisy = inputs["tags"].clone(), emissions.clone()
    tags[padding], noisy[padding] = runtime["num_tags"] - 1, 50.0
    expect(close(head.loss(emissions, inputs["tags"], inputs["word_mask"]), head.loss(noisy, tags, inputs["word_mask"])),
           "padding words (word_mask False) change the loss")


def fusion_decode(subject: Subject) -> None:
    head, runtime = subject.built, subject.runtime
    inputs = fusion_inputs(runtime["text_dim"], runtime["image_dim"])
    paths = head.decode(_emissions(head, inputs), inputs["word_mask"])
    expect(isinstance(paths, list) and [len(path) for path in paths] == WORDS,
           f"decode gave paths of lengths {[len(p) for p in paths] if isinstance(paths, list) else show(paths)}, "
           f"not one tag per real word {WORDS}")
    expect(all(isinstance(tag, int) and 0 <= tag < runtime["num_tags"] for path in paths for tag in path),
           "decode gave something other than tag ids in range(num_tags)")


def fusion_reload(subject: Subject) -> None:
    head, runtime = subject.built, subject.runtime
    inputs = fusion_inputs(runtime["text_dim"], runtime["image_dim"])
    torch.manual_seed(1)  # other initial weights, replaced by the saved ones
    rebuilt = construct(subject.component, subject.options, **runtime).eval()
    rebuilt.load_state_dict(head.state_dict())
    expect(close(_emissions(head, inputs), _emissions(rebuilt, inputs), 1e-6),
           "the head rebuilt from its options with the same weights gives other emissions")


def fusion_determinism(subject: Subject) -> None:
    head, runtime = subject.built, subject.runtime
    inputs = fusion_inputs(runtime["text_dim"], runtime["image_dim"])
    first, second = _emissions(head, inputs), _emissions(head, inputs)
    expect(torch.equal(first, second) and head.decode(first, inputs["word_mask"]) == head.decode(second, inputs["word_mask"]),
           "two eval-mode passes differ")


def fusion_attention(subject: Subject) -> None:
    """The optional `attention` member, where a head has it: (batch, words, patches) weights, each real word's row
    summing to 1 over the real patches, padded patches at 0. A head without it passes."""
    head, runtime = subject.built, subject.runtime
    if getattr(head, "attention", None) is None:
        return
    inputs = fusion_inputs(runtime["text_dim"], runtime["image_dim"])
    weights = head.attention(inputs["text_states"], inputs["first_subword_index"], inputs["image_states"],
                             inputs["image_mask"])
    expected = (len(WORDS), max(WORDS), inputs["image_mask"].shape[1])
    expect(getattr(weights, "shape", None) == expected and weights.is_floating_point(),
           f"attention is {show(weights)}, not floating (batch, words, patches) = {expected}")
    padded = ~inputs["image_mask"][:, None, :].expand(expected)
    expect(bool((weights[padded] == 0).all()), "attention gives weight to padded patches (image_mask False)")
    sums = weights.sum(-1)[inputs["word_mask"]]
    expect(close(sums, torch.ones_like(sums)), f"attention rows of real words sum to {sums.tolist()}, not 1")


# -- alignment loss -------------------------------------------------------------------------------------------
def alignment_inputs() -> tuple:
    generator = torch.Generator().manual_seed(0)
    text_mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [True] * 6])
    image_mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [False] * 5])  # the third has no real patch
    return (torch.randn(3, 6, 16, generator=generator), text_mask, torch.randn(3, 5, 16, generator=generator),
            image_mask)


def alignment_forward(subject: Subject) -> None:
    distance = subject.built(*alignment_inputs())
    expect(getattr(distance, "shape", None) == (3,) and distance.is_floating_point()
           and bool(torch.isfinite(distance).all()), f"the loss is {show(distance)}, not a finite (batch,) = (3,)")
    expect(float(distance[2]) == 0.0, f"an example without a real patch gets {float(distance[2])}, not 0")


def alignment_padding(subject: Subject) -> None:
    text, text_mask, image, image_mask = alignment_inputs()
    noisy_text, noisy_image = text.clone(), image.clone()
    noisy_text[~text_mask], noisy_image[~image_mask] = 100.0, -100.0
    expect(close(subject.built(text, text_mask, image, image_mask),
                 subject.built(noisy_text, text_mask, noisy_image, image_mask)),
           "padded tokens or patches (mask False) change the loss")


def alignment_determinism(subject: Subject) -> None:
    inputs = alignment_inputs()
    expect(torch.equal(subject.built(*inputs), subject.built(*inputs)), "two eval-mode passes differ")


def alignment_begin(subject: Subject) -> None:
    """The optional `begin` member, where a loss has it: the function it returns gives what `forward` gives, with
    the gradient to the states."""
    loss = subject.built
    if not callable(getattr(loss, "begin", None)):
        return
    text, text_mask, image, image_mask = alignment_inputs()
    text.requires_grad_(True)
    finish = loss.begin(text, text_mask, image, image_mask)
    expect(callable(finish), f"begin returned {type(finish).__name__}, not a function of no arguments")
    deferred = finish()
    expect(close(deferred, loss(text, text_mask, image, image_mask)), "begin(...)() differs from forward(...)")
    deferred.sum().backward()
    expect(text.grad is not None and bool(text.grad.abs().sum() > 0), "begin(...)() has no gradient to the states")


TEXT_CHECKS = [("tokenize", text_tokenize), ("max_tokens", text_max_tokens), ("context", text_context),
               ("forward", text_forward),
               ("padding", text_padding), ("export", text_export), ("determinism", text_determinism)]
IMAGE_CHECKS = [("transform", image_transform), ("forward", image_forward), ("rows_independent", image_rows_independent),
                ("export", image_export), ("determinism", image_determinism), ("pixels", image_pixels)]
FUSION_CHECKS = [("forward", fusion_forward), ("image_padding", fusion_image_padding), ("loss", fusion_loss),
                 ("loss_padding", fusion_loss_padding), ("decode", fusion_decode), ("reload", fusion_reload),
                 ("determinism", fusion_determinism), ("attention", fusion_attention)]
ALIGNMENT_CHECKS = [("forward", alignment_forward), ("padding", alignment_padding),
                    ("determinism", alignment_determinism), ("begin", alignment_begin)]
