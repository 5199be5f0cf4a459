"""The hooks a plugin implements: one per component kind, each handed a `register(name, factory)` callback. What a
factory returns is the kind's protocol in `mmlabel.contracts`, checked when it is built."""
from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("mmlabel")
hookimpl = pluggy.HookimplMarker("mmlabel")

Register = Callable[[str, Callable], None]


@hookspec
def register_text_encoders(register: Register) -> None:
    """Register text encoders: `factory(config)` returns a `contracts.TextEncoder`: `tokenize(words, max_tokens)`,
    `forward(input_ids, attention_mask)` -> (batch, tokens, hidden_size) states, `export(directory)`."""


@hookspec
def register_image_encoders(register: Register) -> None:
    """Register image encoders: `factory(config)` returns a `contracts.ImageEncoder`: `transform`, `input_size`,
    `forward(pixel_values)` -> (batch, patches, hidden_size) states and a (batch, patches) bool mask,
    `export(directory)`."""


@hookspec
def register_fusion_heads(register: Register) -> None:
    """Register fusion heads: `factory(config, text_dim=, image_dim=, num_tags=, allowed_start=, allowed_transitions=,
    allowed_end=)` returns a `contracts.FusionHead`: `forward` -> (batch, words, num_tags) emissions, `loss` ->
    (batch,), `decode`."""


@hookspec
def register_alignment_losses(register: Register) -> None:
    """Register alignment losses: `factory(config)` returns a `contracts.AlignmentLoss`: `loss(text_states, text_mask,
    image_states, image_mask)` -> (batch,)."""


@hookspec
def register_dataset_readers(register: Register) -> None:
    """Register dataset readers: `factory(config)` returns a `contracts.DatasetReader`: `find_splits(root)`, `read(path,
    on_bad_example=...)` -> list of `Example`s, `write(examples, path)`."""


@hookspec
def register_metrics(register: Register) -> None:
    """Register metrics: `factory(config)` returns a `contracts.Metric`: `main_key` and `score(gold, predicted)` -> a
    dict with `precision`, `recall`, `f1` and `main_key`."""


@hookspec
def register_tag_schemes(register: Register) -> None:
    """Register tag schemes: `factory(config, labels=[...])` returns a `contracts.TagScheme`: `tags`, `encode(spans,
    n_words)`, `decode(tags)`, `allowed_start()`, `allowed_end()`, `allowed_transitions()`."""
