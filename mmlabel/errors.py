"""Errors a user can act on: each prints as one line and exits with code 2 (see `cli.main`)."""
from pathlib import Path


class MMLabelError(Exception):
    """Base of every error caused by the user's input rather than by a bug."""

    exit_code = 2


class RecipeError(MMLabelError):
    """A recipe or `--set` override that does not validate: names the file and key path."""


class ComponentError(MMLabelError):
    """An unknown, duplicate or misconfigured component name."""


class DataError(MMLabelError):
    """Bad data: names the file and, where known, the line."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.reason = message
        where = self.path or ""
        if where and line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}" if where else message)


class DeviceError(MMLabelError):
    """A device the machine lacks (`--device`, `train.device`): names it and the devices available."""


class RunError(MMLabelError):
    """A run directory that is missing, incomplete or from an incompatible version."""


class DivergedError(MMLabelError):
    """A training loss that became NaN or infinite (`train.on_nonfinite = "stop"`): names the step, the batch's
    example ids and the last good checkpoint."""


class RunInterrupted(MMLabelError):
    """Training stopped by SIGINT or SIGTERM after saving a resumable checkpoint; exits with 128 + the signal number
    (130 for Ctrl-C, 143 for SIGTERM), as a shell reports a process the signal ended."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.signal_number = signal_number
        self.exit_code = 128 + signal_number
