"""Prefix attention for Hugging Face encoders: for the length of one forward pass, every self-attention layer also
attends to extra prefix states (the image patches of the `prefix` fusion head: early fusion in the spirit of HVPNeT,
Chen et al., NAACL 2022 Findings). Each layer turns the prefix states into keys and values with its own key and value
projections and prepends them to the tokens' keys and values; the prefix states are not updated by the layers and
have no output.

How: transformers dispatches each self-attention layer's attention product through `ALL_ATTENTION_FUNCTIONS` under
`config._attn_implementation` (BERT, RoBERTa, ALBERT, ELECTRA and every family written to that interface). Within
`prefixed(...)` the model's implementation is switched to a registered wrapper of the one it had (`sdpa` or
`eager`), which adds the prefix keys, values and mask and calls the original; the padding mask is built by the
original's mask function. Outside the `with` block the model is untouched (with threads, once the last overlapping
prefixed pass has ended). Families whose attention layers have no
`key` and `value` projections are refused with a `ComponentError`.
"""
import contextlib
import contextvars
import sys
import threading
import weakref

import torch

from mmlabel.errors import ComponentError

# The prefix of the forward pass in progress: (states (batch, prefix, hidden), mask (batch, prefix) bool).
_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("mmlabel_prefix", default=None)
BASES = ("sdpa", "eager")
# Per model, while prefixed passes are in progress: its own implementation and how many passes use the wrapper.
_BASE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_USERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_SWITCH = threading.Lock()
WRAPPED = "mmlabel_prefix_"


@contextlib.contextmanager
def prefixed(model, prefix_states: torch.Tensor, prefix_mask: torch.Tensor):
    """Within the block, every self-attention layer of the Hugging Face `model` also attends to `prefix_states`
    (batch, prefix, hidden) where `prefix_mask` (batch, prefix) is True. Safe for threads sharing the model: the
    prefix is the calling thread's (a context variable), and the model keeps the wrapped implementation until the
    last of the overlapping prefixed passes ends (a plain pass meanwhile goes straight to the original)."""
    with _SWITCH:
        base = _BASE.get(model, model.config._attn_implementation)
        if base not in BASES:
            raise ComponentError(f"text_encoder.attn_implementation: image prefixes need 'sdpa' or 'eager' attention, "
                                 f"not {base!r}")
        _register(base)
        _BASE[model], _USERS[model] = base, _USERS.get(model, 0) + 1
        model.config._attn_implementation = WRAPPED + base
    token = _ACTIVE.set((prefix_states, prefix_mask.bool()))
    try:
        yield
    finally:
        _ACTIVE.reset(token)
        with _SWITCH:
            _USERS[model] -= 1
            if not _USERS[model]:
                model.config._attn_implementation = _BASE.pop(model)
                del _USERS[model]


def _register(base: str) -> None:
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    name = WRAPPED + base
    if name not in ALL_MASK_ATTENTION_FUNCTIONS:
        AttentionInterface.register(name, _wrapper(base))
        AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[base])


def _wrapper(base: str):
    def attention(module, query, key, value, attention_mask, **kwargs):
        active = _ACTIVE.get()
        if active is not None:
            key, value, attention_mask = _with_prefix(module, key, value, attention_mask, *active,
                                                      eager=base == "eager")
        return _original(module, base)(module, query, key, value, attention_mask, **kwargs)

    return attention


def _original(module, base: str):
    if base == "sdpa":
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        return ALL_ATTENTION_FUNCTIONS["sdpa"]
    return sys.modules[type(module).__module__].eager_attention_forward  # the family's own eager product


def _with_prefix(module, key, value, attention_mask, prefix_states, prefix_mask, eager: bool):
    """Keys and values (batch, heads, tokens, head_size) with the prefix's in front, and the mask widened to match."""
    if not (isinstance(getattr(module, "key", None), torch.nn.Module) and isinstance(getattr(module, "value", None),
                                                                                      torch.nn.Module)):
        raise ComponentError(f"text_encoder: {type(module).__name__} has no `key` and `value` projections, so it "
                             f"cannot take image prefixes")
    batch, heads, tokens, head_size = key.shape
    states = prefix_states.to(key.dtype)

    def heads_first(projected):  # (batch, prefix, heads * head_size) -> (batch, heads, prefix, head_size)
        return projected.view(batch, states.shape[1], heads, head_size).transpose(1, 2)

    key = torch.cat([heads_first(module.key(states)), key], 2)
    value = torch.cat([heads_first(module.value(states)), value], 2)
    return key, value, _widened_mask(attention_mask, prefix_mask, batch, tokens, eager, key.dtype)


def _widened_mask(attention_mask, prefix_mask, batch: int, tokens: int, eager: bool, dtype):
    """The tokens' 4D mask (bool: True attends; float: 0 attends, a large negative number does not; or None: all
    attend) with the prefix's columns in front, in the same form (float where the product is eager)."""
    if attention_mask is None:
        attention_mask = torch.ones(batch, 1, tokens, tokens, dtype=torch.bool, device=prefix_mask.device)
    attention_mask = attention_mask.expand(batch, -1, -1, -1)
    columns = prefix_mask[:, None, None, :].expand(batch, attention_mask.shape[1], attention_mask.shape[2], -1)
    if attention_mask.dtype == torch.bool and not eager:
        return torch.cat([columns, attention_mask], -1)
    blocked = torch.finfo(dtype).min
    if attention_mask.dtype == torch.bool:
        attention_mask = torch.where(attention_mask, 0.0, blocked).to(dtype)
    columns = torch.where(columns, 0.0, blocked).to(attention_mask.dtype)
    return torch.cat([columns, attention_mask], -1)
