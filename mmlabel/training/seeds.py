"""Seeds: one number controls initialisation, data order and dropout; RNG states travel with checkpoints.

The states are stored as tensors and plain values (`rng_state`), which `torch.load(weights_only=True)` reads back:
Python's `random.getstate()` and NumPy's `np.random.get_state()` are tuples holding an int tuple and a uint32
array, and an array needs NumPy's unpickling globals, which a safe load refuses (mmlabel/run_dir.py)."""
import os
import random

import numpy as np
import torch


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every generator's state: `python` and `numpy` as dicts of ints, floats, a str and an int64 tensor of the
    Mersenne Twister's words; `torch` and `cuda` (one per device) as torch's own ByteTensors."""
    version, words, gauss_next = random.getstate()
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state = {
        "python": {"version": version, "words": torch.tensor(words, dtype=torch.int64), "gauss_next": gauss_next},
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` returned (or, from a checkpoint written before it stored plain values and loaded
    under MMLABEL_TRUST_CHECKPOINTS=1, the generators' own tuples)."""
    random.setstate(_python_state(state["python"]))
    np.random.set_state(_numpy_state(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state(stored) -> tuple:
    if not isinstance(stored, dict):
        return stored  # random.getstate()'s tuple itself
    return stored["version"], tuple(stored["words"].tolist()), stored["gauss_next"]


def _numpy_state(stored) -> tuple:
    if not isinstance(stored, dict):
        return stored  # np.random.get_state()'s tuple itself
    keys = stored["keys"].numpy().astype(np.uint32)  # (624,) words, each below 2**32
    return stored["kind"], keys, stored["position"], stored["has_gauss"], stored["cached_gaussian"]


def use_deterministic_kernels() -> None:
    """Only deterministic kernels from here on (`train.deterministic`): slower on GPU; ops that have no deterministic
    version warn, naming themselves. CPU training is deterministic without this (docs/reliability.md)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts, so set it before any CUDA
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
