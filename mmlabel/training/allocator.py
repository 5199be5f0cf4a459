"""Keep freed memory in the process instead of giving it back to the kernel after every step (glibc, CPU).

A training step allocates and frees the same large tensors every step: autocast's bf16 copies of the weights and
their gradients, activations, the dense gradient of the word embedding. glibc serves each block over 128 KB to
32 MB with a fresh `mmap` and unmaps it on `free`, so every step pays page faults to zero-fill the same memory
again: a quarter of a base-size bf16 training step on this project's CPU (docs/performance.md). Serving all
blocks from the heap and never trimming it lets the next step reuse the pages, as jemalloc or tcmalloc
(Intel's advice for PyTorch on CPU) would. The cost: the process keeps its peak memory until it exits.

`MMLABEL_ALLOCATOR=system` leaves glibc's defaults alone.
"""
import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
_tuned = False


def keep_freed_memory() -> bool:
    """Tune glibc's malloc once per process; False where it is not glibc or `MMLABEL_ALLOCATOR=system`."""
    global _tuned
    if _tuned:
        return True
    if os.environ.get("MMLABEL_ALLOCATOR", "keep") == "system" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    # every block from the heap (no mmap); a free heap top is given back only beyond 2 GB (mallopt takes an int)
    _tuned = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    return _tuned
