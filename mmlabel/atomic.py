"""Atomic file writes: a temporary file in the same directory, flushed and fsynced, then renamed over the target,
so a kill at any moment leaves either the old file or the new one, never a torn one."""
import json
import os
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: str | Path, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on failure it is removed. Without `durable`
    nothing is fsynced: other processes still never see a torn file, but a power cut may leave an empty or short
    one, which is fine for a cache whose reader checks what it reads and rebuilds it (`ImageStore`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(descriptor)
    try:
        yield Path(temporary)
        if durable:
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(temporary, path)
        if durable:
            _fsync_directory(path.parent)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def remove_temporaries(directory: str | Path) -> None:
    """Delete the temporary files that writes killed before their rename left in `directory`."""
    for temporary in Path(directory).glob(".*.tmp"):
        temporary.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (a power cut after it); a no-op where directories cannot be opened."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_json(path: str | Path, value: Any) -> None:
    write_text(path, json.dumps(value, indent=2) + "\n")


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask. Reading it means setting it, so two threads reading at once could each see the other's
    0 (and a file created meanwhile would get no mask): a lock keeps the reads apart (`ImageStore.prepare` writes
    from threads)."""
    with _UMASK_LOCK:
        mask = os.umask(0)
        os.umask(mask)
    return mask
