"""How many compute threads an mmlabel process uses, so that processes running at once share the cores instead of
spinning against each other.

PyTorch starts as many compute threads as the machine has cores, in every process. Two such processes on 2 cores
ran two quickstarts of 36 s each in 297 s (docs/performance.md): their threads spin against each other. So a training
or prediction process here takes:

- the number given by `train.threads` or `MMLABEL_THREADS`, where one is given;
- otherwise its share of the cores this process may run on (its CPU affinity), divided among the mmlabel processes
  computing on this machine right now: all of them for a process alone (even the quickstart's tiny model ran 17%
  faster on 2 threads than on 1). Each such process holds a file named by its process id in a folder of the
  temporary directory for as long as it runs; the share is looked at again at every epoch, so a run that started
  alone gives up cores when another one starts, and takes them back when it ends.

Only the processes of the command line and the trainer choose threads; the library leaves torch's setting alone.
"""
import atexit
import os
import tempfile
from pathlib import Path

ENV_THREADS = "MMLABEL_THREADS"


def available_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def choose_threads(requested: int | None = None, processes: int = 1) -> int:
    """Compute threads for one of `processes` mmlabel processes computing now: `requested` (or MMLABEL_THREADS)
    where given, else this process's share of its available cores."""
    given = requested or _from_environment()
    if given:
        return given
    return max(1, available_cores() // max(processes, 1))


def use_threads(requested: int | None = None) -> int:
    """Register this process as computing, then set torch's compute threads to its share; returns the number."""
    import torch

    threads = choose_threads(requested, computing_processes())
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def computing_processes() -> int:
    """The mmlabel processes computing on this machine now, this one included (registered on the first call)."""
    folder = _folder()
    mine = folder / str(os.getpid())
    if not mine.exists():
        mine.touch()
        atexit.register(mine.unlink, missing_ok=True)
    alive = 0
    for entry in folder.iterdir():
        if entry.name.isdigit() and process_alive(int(entry.name)):
            alive += 1
        else:
            entry.unlink(missing_ok=True)  # left by a process that was killed
    return max(alive, 1)


def _from_environment() -> int | None:
    value = os.environ.get(ENV_THREADS, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def _folder() -> Path:
    folder = Path(tempfile.gettempdir()) / f"mmlabel-{os.getuid() if hasattr(os, 'getuid') else 'user'}" / "computing"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def process_alive(pid: int) -> bool:
    """Whether a process of this machine with that id exists (for run.json's `pid` too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True
