"""A test guard against reading tensor values back to the host: on a GPU each such read makes the host wait for the
device, so code meant to run ahead of the device (a training step, a CRF's likelihood) must not make any.

    from mmlabel.testing.host_reads import no_host_reads

    with no_host_reads():                         # any read raises HostRead
        loss = crf.neg_log_likelihood(emissions, tags, mask)
        loss.sum().backward()
    with no_host_reads(allowed={"tolist": 1}) as calls:
        paths = crf.decode(emissions, mask)
    assert calls == {"tolist": 1}                 # the calls made, per method

Inside the block these `torch.Tensor` methods raise `HostRead` once called more often than `allowed` says (0 by
default): `.item()`, `.tolist()`, `.cpu()`, `.numpy()` (and so `numpy.asarray(tensor)`), `bool(tensor)` (an `if`,
`and`, `assert` on a tensor), `float(tensor)`, `int(tensor)`, `operator.index(tensor)` (a tensor used as a Python
index or size), and `.to(...)` to the CPU of a tensor that is elsewhere. They are flagged on CPU tensors too, where
they cost nothing, so that a CPU test catches what would stall a GPU; `.to` is the exception, as `.to(device)` is
the ordinary way to place a batch and on a CPU run that device is the CPU. Operations whose result's size depends on
the values are reads too, when called as tensor methods: boolean-mask indexing `x[mask]`, `.nonzero()`,
`.masked_select()`, `.unique()`. Only calls from the thread that entered
the block count (a loader thread may read what it likes); the patches are class-wide while the block runs, so other
threads pay one identity check per call.

What it cannot see: reads made inside C++ or through the `torch.` functions (`torch.nonzero(x)`, `torch.equal`), and
those of operators called from C++. On a GPU,
`torch.cuda.set_sync_debug_mode("error")` catches those, process-wide.
"""
import threading
from collections import Counter
from contextlib import contextmanager
from typing import Iterator

import torch

READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__", "to", "__getitem__",
         "nonzero", "masked_select", "unique")
_MISSING = object()


class HostRead(AssertionError):
    """A tensor's value was read back to the host inside `no_host_reads`, beyond what it allowed."""


@contextmanager
def no_host_reads(allowed: dict[str, int] | None = None) -> Iterator[Counter]:
    """Make reads of tensor values back to the host (see the module docstring) raise `HostRead`, beyond `allowed`
    (method name -> number of calls let through, e.g. `{"tolist": 1}`; names as in `READS`). Yields a `Counter`
    of the calls made per method, allowed ones included, filled as the block runs."""
    allowed = dict(allowed or {})
    unknown = set(allowed) - set(READS)
    if unknown:
        raise ValueError(f"no_host_reads: unknown method(s) {sorted(unknown)}; known: {', '.join(READS)}")
    calls: Counter = Counter()
    owner = threading.get_ident()
    saved = {name: torch.Tensor.__dict__.get(name, _MISSING) for name in READS}
    for name in READS:
        setattr(torch.Tensor, name, _guarded(name, getattr(torch.Tensor, name), owner, calls, allowed.get(name, 0)))
    try:
        yield calls
    finally:
        for name, attribute in saved.items():
            if attribute is _MISSING:
                delattr(torch.Tensor, name)  # back to the inherited C implementation
            else:
                setattr(torch.Tensor, name, attribute)


def _guarded(name: str, original, owner: int, calls: Counter, allowance: int):
    """`original` (a Tensor method), counting and refusing calls from the `owner` thread beyond `allowance`."""

    def method(self, *args, **kwargs):
        if threading.get_ident() == owner and _reads(name, self, args, kwargs):
            calls[name] += 1
            if calls[name] > allowance:
                raise HostRead(f"Tensor.{name} read a tensor back to the host inside no_host_reads "
                               f"(call {calls[name]}, {allowance} allowed)")
        return original(self, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = getattr(original, "__doc__", None)
    return method


def _reads(name: str, tensor: torch.Tensor, args: tuple, kwargs: dict) -> bool:
    """Whether this call of the guarded method reads values back: `.to` only to the CPU from elsewhere, indexing only
    with a boolean mask (its result's size depends on the mask's values); the others always."""
    if name == "to":
        return _leaves_device(tensor, args, kwargs)
    if name == "__getitem__":
        index = args[0] if args else None
        parts = index if isinstance(index, tuple) else (index,)
        return any(isinstance(part, torch.Tensor) and part.dtype in (torch.bool, torch.uint8) for part in parts)
    return True


def _leaves_device(tensor: torch.Tensor, args: tuple, kwargs: dict) -> bool:
    """Whether `tensor.to(*args, **kwargs)` copies a tensor that is not on the CPU to the CPU."""
    if tensor.device.type == "cpu":
        return False
    device = torch._C._nn._parse_to(*args, **kwargs)[0]
    return device is not None and device.type == "cpu"
