"""Saving a run while it trains: resumable checkpoints and the best epoch's weights, copied to the host at once and
written by a background thread, so that the training thread neither waits for the disk nor for the device.

Each file is still written atomically and fsync'd (`mmlabel.atomic`): a kill at any moment leaves the previous
checkpoint or the new one. Files are written in the order they were submitted; a write that fails raises at the next
submit or `wait`."""
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

import torch

from mmlabel.device import wait_for


class BackgroundWriter:
    """One thread that runs write jobs in submission order."""

    def __init__(self):
        self._executor: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []

    def submit(self, write: Callable[[], Any]) -> None:
        self._raise_failures(wait=False)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="mmlabel-writer")
        self._pending.append(self._executor.submit(write))

    def wait(self) -> None:
        """Block until every submitted write is on disk; raise the first failure."""
        self._raise_failures(wait=True)

    def _raise_failures(self, wait: bool) -> None:
        done = [future for future in self._pending if wait or future.done()]
        self._pending = [future for future in self._pending if future not in done]
        for future in done:
            future.result()


class HostCopy:
    """A copy of nested dicts, lists and tensors whose tensors live on the CPU and share nothing with the originals,
    so that training can go on while it is written. Device tensors are copied without blocking (into pinned
    memory); `get` (called in the writer thread) waits for those copies alone."""

    def __init__(self, value: Any):
        self._event = None
        self.value = self._copy(value)
        if self._event is not None:
            self._event.record()

    def get(self) -> Any:
        if self._event is not None:
            wait_for(self._event)
        return self.value

    def _copy(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            if value.device.type == "cpu":
                return value.detach().clone()
            if value.device.type == "cuda" and self._event is None:
                self._event = torch.cuda.Event()
            return value.detach().to("cpu", non_blocking=True)  # a pinned host tensor; ready once the event is
        if isinstance(value, dict):
            return {key: self._copy(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self._copy(item) for item in value)
        return value
