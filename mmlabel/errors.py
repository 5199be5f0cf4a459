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


class RunError(MMLabelError):
    """A run directory that is missing, incomplete or from an incompatible version."""
