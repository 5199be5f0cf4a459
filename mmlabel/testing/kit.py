"""What every conformance check shares: the component under test, built once and small; the error a failed check
raises; the runtime arguments and tiny options the kinds of `mmlabel.kinds` name; and the hand-made data the checks
run on."""
import shutil
import tempfile
import weakref
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

from mmlabel import kinds
from mmlabel.registry import Component, LazyFactory, build, construct, get

# Sentences of different lengths, so that every batch has padding.
SENTENCES: list[list[str]] = [
    ["Kevin", "Durant", "joins", "the", "Warriors", "!"],
    ["Obama", "visits", "New", "York"],
    ["great", "game"],
]
# The span labels the fusion-head and tag-scheme checks use: the sentiments every built-in scheme accepts.
LABELS: list[str] = ["POS", "NEU", "NEG"]
FUSION_TEXT_DIM, FUSION_IMAGE_DIM = 16, 12


def tiny_hf(workdir: Path) -> dict:
    """A random one-layer BERT of hidden size 32 with a WordPiece tokenizer trained on the kit's sentences."""
    from mmlabel.text_encoders.tokenizer import train_word_tokenizer

    directory = workdir / "tokenizer"
    if not directory.exists():
        train_word_tokenizer([" ".join(words) for words in SENTENCES], directory, "bert", vocab_size=100)
    return {"init": "random", "model_type": "bert", "tokenizer": str(directory),
            "config_overrides": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                 "intermediate_size": 64}}


def tiny_options() -> dict[tuple[str, str], dict | Callable[[Path], dict]]:
    """(kind, name) -> options that build a built-in small, as `mmlabel.kinds` declares them: a dict, or a function
    of a scratch directory."""
    return {(kind.name, name): kinds.load(options) for kind in kinds.KINDS.values()
            for name, options in kind.tiny_options.items()}


def fusion_runtime() -> dict[str, Any]:
    """What the kit builds a fusion head with: its input sizes and the `bio` scheme's tag masks."""
    scheme = tiny_scheme()
    return {"text_dim": FUSION_TEXT_DIM, "image_dim": FUSION_IMAGE_DIM, "num_tags": len(scheme.tags),
            "allowed_start": scheme.allowed_start(), "allowed_transitions": scheme.allowed_transitions(),
            "allowed_end": scheme.allowed_end()}


def scheme_runtime() -> dict[str, Any]:
    """What the kit builds a tag scheme with: the labels every built-in scheme accepts."""
    return {"labels": list(LABELS)}


class ContractViolation(AssertionError):
    """A component breaks its kind's contract; the message names the component and the check that failed."""


class Subject:
    """The component under test: registered (or given as a factory), with its tiny options and a scratch
    directory that lives as long as this object."""

    def __init__(self, kind: str, name: str, options: dict[str, Any] | None = None,
                 component: Component | None = None):
        self.kind, self.name = kind, name
        self.given_options = options
        if component is not None:
            self.component = component
        self.workdir = Path(tempfile.mkdtemp(prefix="mmlabel-check-"))
        weakref.finalize(self, shutil.rmtree, str(self.workdir), True)

    @cached_property
    def component(self) -> Component:
        """Looked up when a check first runs, not before: a test collects its checks before a fixture registers
        the plugin."""
        return get(self.kind, self.name)

    @cached_property
    def options(self) -> dict[str, Any]:
        """The options given, else the factory's `tiny_options`, else the kit's table for a built-in, else none."""
        if self.given_options is not None:
            return dict(self.given_options)
        factory = self.component.factory
        factory = factory.load() if isinstance(factory, LazyFactory) else factory
        tiny = getattr(factory, "tiny_options", None)
        if tiny is None:
            tiny = tiny_options().get((self.kind, self.name), {})
        return dict(tiny(self.workdir) if callable(tiny) else tiny)

    @cached_property
    def runtime(self) -> dict[str, Any]:
        """What the core passes besides the options (a fusion head's sizes and tag masks, a scheme's labels): the
        kind's `kit_runtime`."""
        make = kinds.get_kind(self.kind).kit_runtime
        return dict(kinds.load(make)()) if make is not None else {}

    def build(self, options: dict[str, Any] | None = None, **runtime) -> Any:
        """A fresh component from `options` (default: the tiny ones), seeded so that two builds are alike."""
        import torch

        torch.manual_seed(0)
        built = construct(self.component, self.options if options is None else options, **{**self.runtime, **runtime})
        return built.eval() if isinstance(built, torch.nn.Module) else built

    @cached_property
    def built(self) -> Any:
        return self.build()


def tiny_scheme():
    """The `bio` scheme over the kit's labels (7 tags), the tag masks a fusion head is built with."""
    return build("tag_scheme", "mmlabel:bio", labels=list(LABELS))


def expect(condition: bool, message: str) -> None:
    """A check's assertion: `message` says what the contract wanted and what was found."""
    if not condition:
        raise ContractViolation(message)


def close(first, second, tolerance: float = 1e-4) -> bool:
    """Whether two tensors are equal up to float noise (batching changes the order of additions)."""
    import torch

    return first.shape == second.shape and torch.allclose(first.float(), second.float(), atol=tolerance,
                                                          rtol=tolerance)
