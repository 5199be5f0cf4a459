"""The hooks a plugin implements: one per component kind, each handed a `register(name, factory)` callback."""
from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("mmlabel")
hookimpl = pluggy.HookimplMarker("mmlabel")

Register = Callable[[str, Callable], None]


@hookspec
def register_text_encoders(register: Register) -> None:
    """Register text encoders: `factory(config)` returns a module mapping token ids to (batch, tokens, hidden) states."""


@hookspec
def register_image_encoders(register: Register) -> None:
    """Register image encoders: `factory(config)` returns a module mapping pixels to (batch, patches, hidden) states and a mask."""


@hookspec
def register_fusion_heads(register: Register) -> None:
    """Register fusion heads: `factory(config)` returns a module that tags words from text and image states."""


@hookspec
def register_alignment_losses(register: Register) -> None:
    """Register alignment losses: `factory(config)` returns `loss(text_states, text_mask, image_states, image_mask) -> (batch,)`."""


@hookspec
def register_dataset_readers(register: Register) -> None:
    """Register dataset readers: `factory(config)` returns a reader whose `read(path)` yields `Example`s."""


@hookspec
def register_metrics(register: Register) -> None:
    """Register metrics: `factory(config)` returns a metric whose `score(gold, predicted)` returns a dict of figures."""


@hookspec
def register_tag_schemes(register: Register) -> None:
    """Register tag schemes: `factory(config, labels=[...])` returns a scheme with `tags`, `encode`, `decode` and masks."""
