"""Where and how a model computes: the device, the numeric precision (autocast to bf16 or fp16 on CPU and GPU, fp32
as the reference) and, for the processes that opt in, glibc's allocator kept from returning freed memory."""
import contextlib
import ctypes
import ctypes.util
import os
import sys

import torch

from mmlabel.errors import DeviceError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str):
    """The autocast context for `precision` on `device` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` is bf16 where the hardware computes it natively (a GPU with bf16, a CPU with AVX512-BF16 or AMX), fp32
    elsewhere; any other value is kept."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_computes_bf16() else "fp32"


def cpu_computes_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX), read from /proc/cpuinfo (Linux; False elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = next((line for line in cpuinfo if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def wait_for(event) -> None:
    """Block the calling thread (a worker thread) until a CUDA event has happened, by polling it: unlike
    `event.synchronize()`, polling is not a synchronising call, so it is allowed while the training thread runs under
    `torch.cuda.set_sync_debug_mode("error")` (the GPU probe's check of a step)."""
    import time

    while not event.query():
        time.sleep(0.0002)


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` is CUDA where present, else the CPU; any other name must be a device this machine has (a
    `DeviceError` naming it and the available ones otherwise, before anything is loaded onto it)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):  # torch's own message lists its twenty device types, most never present
        raise DeviceError(f"device {name!r} is not a device name: give auto, cpu, cuda or cuda:N; available here: "
                          f"{', '.join(available_devices())}") from None
    missing = _missing(device)
    if missing:
        raise DeviceError(f"device {name!r}: {missing}; available: {', '.join(available_devices())}")
    return device


def available_devices() -> list[str]:
    """The devices this machine can compute on, as `--device` and `train.device` name them: cpu, then each CUDA GPU
    (cuda, cuda:0, ...), then mps where present."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda", *(f"cuda:{index}" for index in range(torch.cuda.device_count()))]
    if torch.backends.mps.is_available():
        names.append("mps")
    return names


def _missing(device: torch.device) -> str | None:
    """Why this machine cannot compute on `device` (None where it can)."""
    if device.type == "cpu":
        return None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            built = torch.version.cuda is not None or torch.version.hip is not None
            return ("this machine has no CUDA GPU (torch sees none)" if built
                    else f"this PyTorch ({torch.__version__}) was built without CUDA")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            return f"this machine has {count} CUDA GPU{'s' if count > 1 else ''} (cuda:0 to cuda:{count - 1})" \
                if count > 1 else "this machine has 1 CUDA GPU (cuda:0)"
        return None
    if device.type == "mps":
        return None if torch.backends.mps.is_available() else "this machine has no Apple GPU (MPS)"
    backend = getattr(torch, device.type, None)
    if backend is not None and hasattr(backend, "is_available") and backend.is_available():
        return None
    return f"this machine has no {device.type} device"


# -- the allocator ------------------------------------------------------------------------------------------
# Keep freed memory in the process instead of giving it back to the kernel after every step (glibc, CPU).
#
# A training step allocates and frees the same large tensors every step: autocast's bf16 copies of the weights and
# their gradients, activations, the dense gradient of the word embedding. glibc serves each block over 128 KB to
# 32 MB with a fresh `mmap` and unmaps it on `free`, so every step pays page faults to zero-fill the same memory
# again: a quarter of a base-size bf16 training step on this project's CPU (docs/performance.md). Serving all
# blocks from the heap and never trimming it lets the next step reuse the pages, as jemalloc or tcmalloc
# (Intel's advice for PyTorch on CPU) would. The cost: the process keeps its peak memory until it exits.
#
# `MMLABEL_ALLOCATOR=system` leaves glibc's defaults alone.
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
