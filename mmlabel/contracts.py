"""The component contracts: one `typing.Protocol` per component kind (which kind has which is declared in
`mmlabel.kinds`), naming every member the core uses, with the shapes and dtypes it relies on. Two layers check them:
the registry checks each built object against its kind's protocol when it is built (`problems`), and the trainer
runs the model once on the first batch to check what the components return (`mmlabel.probe`). `mmlabel.testing`
is the conformance kit for plugin authors: the whole behaviour on tiny inputs.

Positional parameters of a protocol method are passed positionally by the core, keyword-only ones by keyword: a
method that cannot be called that way breaks the contract.
"""
import functools
import inspect
import math
import numbers
import weakref
from collections.abc import Callable as AbstractCallable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, get_args, get_origin, get_type_hints, runtime_checkable

if TYPE_CHECKING:
    import PIL.Image
    import torch

    from mmlabel.data.example import Example, Span


@runtime_checkable
class TextEncoder(Protocol):
    """A `torch.nn.Module` from pre-split words to token states (`[text_encoder]`; factory `factory(config)`)."""

    hidden_size: int
    """Size of a token state: the last dimension of `forward`'s output."""

    def tokenize(self, words: list[list[str]], max_tokens: int) -> dict[str, "torch.Tensor"]:
        """A batch of pre-split sentences as tensors, padded to the batch's longest: `input_ids` and
        `attention_mask` (batch, tokens), long; `first_subword_index` (batch, words), long, the token position of each
        word's first sub-word; `word_mask` (batch, words), bool, True on real words, False on padding words and on
        words cut off by `max_tokens` (real words first, then padding: a prefix of each row)."""

    def forward(self, input_ids: "torch.Tensor", attention_mask: "torch.Tensor") -> "torch.Tensor":
        """(batch, tokens) ids and mask -> (batch, tokens, hidden_size) floating-point states."""

    def export(self, directory: str | Path) -> dict[str, Any]:
        """Write what rebuilds the architecture offline (config, tokenizer; not the weights) into `directory` and
        return the options that rebuild this encoder from there with no download."""


@runtime_checkable
class ImageEncoder(Protocol):
    """A `torch.nn.Module` from pixels to patch states (`[image_encoder]`; factory `factory(config)`)."""

    hidden_size: int
    """Size of a patch state: the last dimension of `forward`'s states."""

    input_size: tuple[int, int, int]
    """(3, height, width): the pixel size `forward` expects and `transform` returns."""

    transform: Callable
    """PIL RGB image -> (3, height, width) float32 tensor, the model's own preprocessing; picklable (it runs in
    data-loader workers): a module-level class, not a lambda."""

    def forward(self, pixel_values: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        """(batch, 3, height, width) float pixels (`transform`'s; uint8 ones from `pixel_transform` too, where the
        encoder has `ImageEncoderPixels`) -> states (batch, patches, hidden_size), floating point, and mask
        (batch, patches), bool, True on every real patch."""

    def export(self, directory: str | Path) -> dict[str, Any]:
        """Write what rebuilds the architecture offline into `directory` and return the options that rebuild this
        encoder from there with no download."""


@runtime_checkable
class FusionHead(Protocol):
    """A `torch.nn.Module` that tags words from text and image states (`[fusion_head]`; factory
    `factory(config, text_dim=, image_dim=, num_tags=, allowed_start=, allowed_transitions=, allowed_end=)`:
    `image_dim` is None for a text-only model, `allowed_start` and `allowed_end` (num_tags,) and `allowed_transitions`
    [from][to] are the tag scheme's)."""

    num_tags: int
    """The number of tags: the last dimension of the emissions."""

    def forward(self, text_states: "torch.Tensor", first_subword_index: "torch.Tensor",
                image_states: "torch.Tensor | None", image_mask: "torch.Tensor | None") -> "torch.Tensor":
        """Text states (batch, tokens, text_dim), first sub-word positions (batch, words) long, image states
        (batch, patches, image_dim) and mask (batch, patches) bool, or None and None -> emissions
        (batch, words, num_tags), floating point."""

    def loss(self, emissions: "torch.Tensor", tags: "torch.Tensor", word_mask: "torch.Tensor") -> "torch.Tensor":
        """Emissions (batch, words, num_tags), gold tag ids (batch, words) long and word mask (batch, words) bool ->
        (batch,) finite loss per example; padding words (mask False) carry no loss."""

    def decode(self, emissions: "torch.Tensor", word_mask: "torch.Tensor") -> list[list[int]]:
        """The predicted tag ids of each example, one per real word (as many as its True mask entries)."""


@runtime_checkable
class FusionHeadAttention(Protocol):
    """An optional member of a fusion head: heads that have it let reports and servers show where each word looked in
    the image (`dtca` has it); heads without it meet the contract all the same."""

    def attention(self, text_states: "torch.Tensor", first_subword_index: "torch.Tensor",
                  image_states: "torch.Tensor", image_mask: "torch.Tensor") -> "torch.Tensor":
        """The inputs of `forward` (with an image) -> (batch, words, patches) floating-point word-to-patch weights at
        each word's first sub-word, averaged over heads: each row sums to 1 over the real patches, padded patches
        (mask False) get 0, and an example without a real patch gets 0 everywhere. Call it in eval mode."""


@runtime_checkable
class AlignmentLoss(Protocol):
    """A `torch.nn.Module` giving one token-patch distance per example (`[alignment_loss]`; factory
    `factory(config)`)."""

    def forward(self, text_states: "torch.Tensor", text_mask: "torch.Tensor", image_states: "torch.Tensor",
                image_mask: "torch.Tensor") -> "torch.Tensor":
        """Text states (batch, tokens, dim) and mask (batch, tokens) bool, image states (batch, patches, dim)
        (projected to the text size) and mask (batch, patches) bool -> (batch,) finite distance per example;
        padding carries no mass, and an example without a real token or patch gets 0."""


@runtime_checkable
class DeferredAlignmentLoss(Protocol):
    """An optional member of an alignment loss whose work is not device work (the exact EMD is solved on the host):
    the model calls `begin` as soon as the encoders are done and the returned function after the fusion head, the
    CRF and the text tagger, so that the two overlap. Losses without it are called as `forward`."""

    def begin(self, text_states: "torch.Tensor", text_mask: "torch.Tensor", image_states: "torch.Tensor",
              image_mask: "torch.Tensor") -> Callable[[], "torch.Tensor"]:
        """The inputs of `forward` -> a function of no arguments returning what `forward` would (the (batch,)
        distances, with their gradient); called once."""


@runtime_checkable
class DatasetReader(Protocol):
    """Reads and writes one data format (`[data] reader`; factory `factory(config)`)."""

    suffix: str
    """The file extension of the split files, with its dot (`.txt`): `find_splits` looks for `train<suffix>`, and
    `mmlabel data convert` writes them."""

    skipped: list
    """After `read`: the records skipped under `on_bad_example="skip"`, each printable as `path:line: reason`."""

    duplicates: int
    """After `read`: how many exact duplicate records were merged away (0 where the format has none)."""

    def find_splits(self, root: Path) -> dict[str, Path]:
        """The split files under `root` (or `root` itself when it is a file): {"train"|"dev"|"test": path}, only
        those present; a `DataError` when there are none."""

    def read(self, path: Path, *, on_bad_example: str = "error") -> list["Example"]:
        """The examples of one file. `on_bad_example`: "error" raises a `DataError` naming the file and line at the
        first bad record; "skip" leaves it out and lists it in `skipped`."""

    def write(self, examples: list["Example"], path: Path) -> None:
        """Write `examples` to `path` in this format (predictions are written by the `jsonl` reader)."""


@runtime_checkable
class Metric(Protocol):
    """Scores predicted spans against gold spans (`[metric]`; factory `factory(config)`)."""

    main_key: str
    """The key of `score`'s result that model selection maximises (the built-ins: "f1")."""

    def score(self, gold: list[list["Span"]], predicted: list[list["Span"]]) -> dict[str, Any]:
        """Figures over aligned sentences: a dict with `precision`, `recall`, `f1` (numbers, in percent) and
        `main_key` at the top level; anything else (per-label tables, counts) may follow."""


@runtime_checkable
class TagScheme(Protocol):
    """Spans <-> one tag per word (`[data] tag_scheme`; factory `factory(config, labels=)` with the span labels of
    the training data)."""

    name: str
    """The scheme's name, saved with the run (`tags.json`)."""

    labels: list[str]
    """The span labels the scheme encodes."""

    tags: list[str]
    """Every tag; a tag id is an index into this list. "O" (outside) is one of them, and tag id 0 pads."""

    def encode(self, spans: list["Span"], n_words: int) -> list[str]:
        """One tag per word for non-overlapping `spans` over `n_words` words."""

    def decode(self, tags: list[str]) -> list["Span"]:
        """The spans a tag sequence describes (lenient: an invalid sequence still decodes)."""

    def allowed_start(self) -> list[bool]:
        """(num_tags,): whether each tag may open a sentence."""

    def allowed_end(self) -> list[bool]:
        """(num_tags,): whether each tag may close a sentence."""

    def allowed_transitions(self) -> list[list[bool]]:
        """(num_tags, num_tags): `allowed[from][to]`."""


# -- optional capabilities: members a component may have, which the core uses where it has them -------------------
@runtime_checkable
class ImageEncoderPixels(Protocol):
    """Optional members of an image encoder, both or neither: with them each photo is decoded and resized once into
    the image store (`mmlabel.data.image_store`) and travels to the device as uint8, and `forward` must also take
    (batch, 3, height, width) uint8 pixels, which it normalises itself, on the device, to what `transform` would
    have given. An encoder without them meets the contract all the same: its photos are decoded with `transform`
    every time they are used."""

    pixel_transform: Callable
    """PIL RGB image -> (3, height, width) uint8 tensor: the geometric part of `transform` alone (resize, crop),
    no rescaling or normalisation; picklable, like `transform`."""

    pixel_signature: str
    """Names the geometry of `pixel_transform` (size, resize mode, interpolation, crop): the image store's key, so two
    encoders with one signature share stored photos, and a new geometry must give a new signature."""


@runtime_checkable
class PrefixTextEncoder(TextEncoder, Protocol):
    """A text encoder whose every self-attention layer can also attend to prefix states (early fusion: the `prefix`
    fusion head's image prefixes); declared by `accepts_prefix = True`."""

    accepts_prefix: bool

    def forward(self, input_ids: "torch.Tensor", attention_mask: "torch.Tensor", *,
                prefix_states: "torch.Tensor | None" = None, prefix_mask: "torch.Tensor | None" = None
                ) -> "torch.Tensor":
        """As `TextEncoder.forward`; every self-attention layer also attends to the real `prefix_states`
        (batch, prefix, hidden_size) (`prefix_mask` (batch, prefix) bool), which get no output."""


@runtime_checkable
class PrefixFusionHead(FusionHead, Protocol):
    """Optional capability of a fusion head, declared by `needs_prefix = True`: the model passes the head's
    `prefix(image_states, image_mask)` to a `PrefixTextEncoder` before the head's `forward` sees the text states."""

    needs_prefix: bool  # False, e.g., when built with image_dim=None

    def prefix(self, image_states: "torch.Tensor", image_mask: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        """Image states (batch, patches, image_dim) and mask (batch, patches) bool -> prefix states
        (batch, prefix, text_dim) and prefix mask (batch, prefix) bool."""


@runtime_checkable
class ContextTextEncoder(TextEncoder, Protocol):
    """A text encoder that reads context text after each sentence (`data.context`: ITA's `sentence [SEP] context`),
    declared by `accepts_context = True`. Without it, an encoder meets the contract all the same, and a recipe with
    `data.context` is refused for it."""

    accepts_context: bool

    def tokenize(self, words: list[list[str]], max_tokens: int, *, contexts: list[str | None] | None = None
                 ) -> dict[str, "torch.Tensor"]:
        """As `TextEncoder.tokenize`; with `contexts` (one str or None per sentence), each sentence is followed by
        its context as a second segment, truncated so that the row stays within `max_tokens`: the context is cut,
        never the sentence (a sentence that leaves no room gets none), so `first_subword_index` and `word_mask` are
        what they are without context. The result then also holds `context_mask` (batch, tokens) bool: True on the
        context's tokens and the special tokens after them, False on the sentence's tokens, its special tokens and
        padding."""


@runtime_checkable
class Describer(Protocol):
    """Writes text about photos: a caption, the words it shows, tags (`[data] describer`; factory `factory(config)`).
    `mmlabel data describe` runs one over every photo of a dataset once and keeps the texts as a side file that the
    context channel reads (`data.context`)."""

    signature: str
    """What decides the texts: the describer, its model and the options that change what it writes
    (`ocr:lang=eng:psm=3`). A side file records it, so that an interrupted run is continued by the same describer."""

    def describe(self, images: list["PIL.Image.Image"], names: list[str]) -> list[str]:
        """A batch of RGB photos and their file names (`Example.image`: `file` looks them up, most describers ignore
        them) -> one line of text per photo, "" where there is nothing to say; a photo's text does not depend on the
        others in its batch."""


def declares(component: Any, capability: str) -> bool:
    """Whether a component declares an optional capability: `declares(head, "needs_prefix")`."""
    return getattr(component, capability, False) is True


def stores_pixels(image_encoder: Any) -> bool:
    """Whether an image encoder has `ImageEncoderPixels`: its photos go through the image store as uint8."""
    return (callable(getattr(image_encoder, "pixel_transform", None))
            and isinstance(getattr(image_encoder, "pixel_signature", None), str))


# The figures every metric reports at the top level of its result.
METRIC_KEYS = ("precision", "recall", "f1")


def members(protocol: type, own: bool = False) -> dict[str, Any]:
    """The protocol's members: attribute name -> annotation, method name -> the protocol's function. With `own`, only
    those a capability adds or redefines over the protocols it extends."""
    if own:
        found: dict[str, Any] = dict(inspect.get_annotations(protocol))
    else:
        found = dict(get_type_hints(protocol))
    for klass in ([protocol] if own else reversed(protocol.__mro__)):
        found.update({name: value for name, value in vars(klass).items()
                      if inspect.isfunction(value) and not name.startswith("_")})
    return found


def member_list(protocol: type, own: bool = False) -> str:
    """The members as the documentation names them: `` `num_tags`, `forward(text_states, ...)` ``."""
    return ", ".join(f"`{name}{signature_text(spec)}`" if inspect.isfunction(spec) else f"`{name}`"
                     for name, spec in members(protocol, own).items())


def signature_text(function: Callable) -> str:
    """`(input_ids, attention_mask)` or `(path, *, on_bad_example)`: the parameters the core passes, without self."""
    parameters, keyword_only = [], False
    for parameter in inspect.signature(function).parameters.values():
        if parameter.name == "self":
            continue
        if parameter.kind is parameter.KEYWORD_ONLY and not keyword_only:
            parameters.append("*")
            keyword_only = True
        parameters.append(parameter.name)
    return f"({', '.join(parameters)})"


def problems(kind: Any, built: Any) -> list[str]:
    """What a built component of `kind` (a `mmlabel.kinds.Kind`) lacks or gets wrong, one short phrase each; [] when
    it meets the contract. Cheap: no forward pass (a metric scores one hand-made sentence)."""
    found = _module_problems(kind.protocol, built) if kind.module else []
    for name, spec in members(kind.protocol).items():
        if not (name == "forward" and kind.module):  # checked with the module
            found += _member_problems(built, name, spec)
    for capability in kind.capabilities:
        found += _capability_problems(kind.protocol, capability, built)
    if kind.name == "metric" and not found:
        found += _metric_problems(built)
    return found


def _capability_problems(protocol: type, capability: type, built: Any) -> list[str]:
    """A capability comes whole: a component that has one of the members it adds has them all, as it says."""
    own = members(capability, own=True)
    adds = [name for name in own if name not in members(protocol)]
    if not any(getattr(built, name, None) not in (None, False) for name in adds):
        return []
    return [problem for name, spec in own.items() for problem in _member_problems(built, name, spec)]


def _module_problems(protocol: type, built: Any) -> list[str]:
    from torch import nn

    if not isinstance(built, nn.Module):
        return [f"it is a {type(built).__name__}, not a torch.nn.Module"]
    if type(built).forward is nn.Module.forward:
        return ["`forward` is missing"]
    return _signature_problems(built.forward, "forward", members(protocol)["forward"])


def _member_problems(built: Any, name: str, spec: Any) -> list[str]:
    try:
        value = getattr(built, name)
    except AttributeError:
        return [f"`{name}` is missing"]
    except Exception as error:  # a property that fails
        return [f"reading `{name}` raised {type(error).__name__}: {error}"]
    if inspect.isfunction(spec):
        if not callable(value):
            return [f"`{name}` is not callable"]
        return _signature_problems(value, name, spec)
    if not _fits(value, spec):
        return [f"`{name}` is {show(value)}, not {_type_name(spec)}"]
    return []


def _signature_problems(method: Callable, name: str, spec: Callable) -> list[str]:
    """The method must accept the call the core makes: the protocol's positional parameters positionally, its
    keyword-only ones by keyword."""
    expected = [p for p in inspect.signature(spec).parameters.values() if p.name != "self"]
    positional = [p.name for p in expected if p.kind is not p.KEYWORD_ONLY]
    keywords = [p.name for p in expected if p.kind is p.KEYWORD_ONLY]
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):  # a builtin without a signature: cannot tell
        return []
    try:
        signature.bind(*positional, **{keyword: None for keyword in keywords})
    except TypeError:
        call = ", ".join([*positional, *(f"{keyword}=..." for keyword in keywords)])
        return [f"`{name}{signature}` cannot be called as `{name}({call})`"]
    return []


def _fits(value: Any, annotation: Any) -> bool:
    """Whether `value` is of the annotated type, checked strictly by pydantic (no coercion: "64" is not an int)."""
    from pydantic import ValidationError

    try:
        _adapter(annotation).validate_python(value, strict=True)
    except ValidationError:
        return False
    return True


@functools.lru_cache(maxsize=None)
def _adapter(annotation: Any):
    from pydantic import TypeAdapter

    return TypeAdapter(annotation, config={"arbitrary_types_allowed": True})


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation) or annotation
    if origin is AbstractCallable:
        return "callable"
    if origin is tuple:
        return f"a tuple of {len(get_args(annotation))} ints"
    return f"a {getattr(origin, '__name__', annotation)}" if origin is not int else "an int"


def show(value: Any) -> str:
    """A value as messages about contracts show it: a tensor's shape and dtype (`(2, 3) float32`), else its repr
    when short, else its type."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    text = repr(value)
    return text if len(text) <= 60 else f"a {type(value).__name__}"


def _metric_problems(metric: Any) -> list[str]:
    """Score one hand-made sentence: the result must hold `main_key` and precision, recall and f1 as numbers."""
    from mmlabel.data.example import Span

    gold = [[Span(0, 1, "POS"), Span(2, 4, "NEG")]]
    predicted = [[Span(0, 1, "POS")]]
    try:
        figures = metric.score(gold, predicted)
    except Exception as error:
        return [f"`score` on one sentence raised {type(error).__name__}: {error}"]
    if not isinstance(figures, dict):
        return [f"`score` returned {show(figures)}, not a dict"]
    wanted = list(dict.fromkeys([*METRIC_KEYS, metric.main_key]))
    missing = [key for key in wanted if key not in figures]
    if missing:
        return [f"`score`'s result has no {', '.join(repr(key) for key in missing)} "
                f"(keys: {', '.join(map(str, figures)) or 'none'})"]
    not_numbers = [key for key in wanted if not _is_number(figures[key])]
    if not_numbers:
        return [f"`score`'s {', '.join(repr(key) for key in not_numbers)} is not a number"]
    return []


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


# -- where a built object came from, for messages about it --------------------------------------------------------
_ORIGINS: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


def remember(built: Any, description: str) -> None:
    """Record which registered component built `built` (its kind, name, plugin and distribution)."""
    try:
        _ORIGINS[built] = description
    except TypeError:  # not weak-referenceable: messages fall back to its class name
        pass


def describe(kind: str, built: Any) -> str:
    """`fusion_head 'dtca' (plugin mmlabel.fusion, mmlabel 0.1.0)`, or the class for an object built by hand."""
    try:
        return _ORIGINS[built]
    except (KeyError, TypeError):
        return f"{kind} {type(built).__name__}"
