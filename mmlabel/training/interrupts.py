"""Stop signals: Ctrl-C (SIGINT) and SIGTERM ask a running training to stop after the current optimiser step, save a
resumable checkpoint and exit; a second Ctrl-C stops at once. Outside `stop_requests` (or off the main thread) the
signals keep their usual meaning. Nested `stop_requests` (a sweep around each run's training) share the outer one's
requests: a signal received between two runs is still there when the next would start."""
import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []
_active: list[bool] = []  # non-empty inside stop_requests


def requested() -> int | None:
    """The number of the first stop signal received inside `stop_requests`, or None."""
    return _received[0] if _received else None


@contextmanager
def stop_requests() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into a request that the trainer polls with `requested()`."""
    if threading.current_thread() is not threading.main_thread() or _active:
        yield
        return
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    _received.clear()
    for number in STOP_SIGNALS:
        signal.signal(number, _request_stop)
    _active.append(True)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _received.clear()
        _active.clear()


def _request_stop(number: int, frame) -> None:
    if _received:  # asked twice: stop now, without a checkpoint
        raise KeyboardInterrupt
    _received.append(number)
    if os.environ.get("RANK", "0") != "0":  # under torchrun every process gets the signal; rank 0 says so
        return
    # os.write, not print: a signal handler may interrupt a print to the same stream
    os.write(2, f"\n{signal.Signals(number).name}: stopping after this step to save a checkpoint "
                "(Ctrl-C again to stop at once)\n".encode())
