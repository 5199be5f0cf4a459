"""What mmlabel tells its user besides results: the `mmlabel` logger, and warnings a library user can filter.

A library call never prints. What it did goes to the `mmlabel` logger (`logging.getLogger("mmlabel")`: silent
unless the program configures logging; the server logs each failure there with its traceback). What the caller may
want to act on, or to silence, is a warning of category `MMLabelWarning`
(`warnings.filterwarnings("ignore", category=mmlabel.MMLabelWarning)`). The command line shows both on stderr, one
line each, rendered by rich (the prefix coloured on a terminal), as it always wrote its notes
(`command_line_output`): a warning as `warning: ...` (`note: ...` for an `MMLabelNote`), a log record as its message
(`warning: `/`error: ` before those of that level, and the traceback of an error logged with one).
"""
import logging
import os
import sys
import warnings
from contextlib import contextmanager

logger = logging.getLogger("mmlabel")


class MMLabelWarning(UserWarning):
    """Something a caller of mmlabel may want to act on, or to filter: a plugin skipped, a post without its image."""


class MMLabelNote(MMLabelWarning):
    """A note on what a call did with its input (the options a component swap dropped): `note: ...` on the command
    line."""


def warn(message: str, category: type[Warning] = MMLabelWarning, stacklevel: int = 1) -> None:
    """`warnings.warn(message, category)`, attributed to the caller's caller `stacklevel` frames up (1: the code
    that called the function that warns)."""
    warnings.warn(message, category, stacklevel=stacklevel + 2)


def _print_line(prefix: str, message: str) -> None:
    """One line on whatever `sys.stderr` is now (a test, or a program, may swap it), rendered by rich: the prefix
    coloured on a terminal (`warning:` yellow, `error:` red, `note:` dim), the message as it is (no markup, no
    highlighting, no wrapping), so that a file or a pipe gets exactly `prefix: message`."""
    from rich.console import Console
    from rich.text import Text

    style = {"warning: ": "yellow", "error: ": "bold red", "note: ": "dim"}.get(prefix, "")
    Console(file=sys.stderr, soft_wrap=True, highlight=False).print(Text.assemble((prefix, style), message))


class _LineHandler(logging.Handler):
    """A record as the command line has always written its notes: the message, `warning: ` or `error: ` before those
    of that level, the traceback after it where the record has one."""

    PREFIXES = {logging.WARNING: "warning: ", logging.ERROR: "error: ", logging.CRITICAL: "error: "}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            _print_line(self.PREFIXES.get(record.levelno, ""), text)
        except Exception:
            self.handleError(record)


@contextmanager
def command_line_output(debug: bool = False):
    """The block's `mmlabel` log records (INFO and up, DEBUG with `debug`; warnings only on the processes of a
    data-parallel run other than rank 0, as their console is quiet) and mmlabel's warnings on stderr, one line
    each; other libraries' warnings as Python shows them. Everything is put back afterwards."""
    handler = _LineHandler()
    level = logging.DEBUG if debug else logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARNING
    saved_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    with warnings.catch_warnings():
        show_others = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None) -> None:
            if not issubclass(category, MMLabelWarning):
                show_others(message, category, filename, lineno, file, line)
                return
            _print_line("note: " if issubclass(category, MMLabelNote) else "warning: ", str(message))

        warnings.showwarning = show
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(saved_level)
