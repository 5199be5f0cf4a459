"""What every dataset reader shares: split discovery, line decoding with line numbers, unique ids, and the
stop-or-skip policy for bad records (`data.on_bad_example`)."""
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from mmlabel.configs import Configured
from mmlabel.data.example import Example
from mmlabel.errors import DataError

# File stem -> split name; `valid` is the name the Twitter conll files use for the development split.
SPLIT_STEMS: dict[str, str] = {"train": "train", "dev": "dev", "valid": "dev", "test": "test"}
POLICIES = ("error", "skip")


@dataclass(frozen=True)
class BadExample:
    """A record skipped under `on_bad_example = "skip"`: where it is and why it was refused."""

    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


class RecordError(Exception):
    """Raised inside a parser for one bad record; the reader turns it into a `DataError` or a skip."""

    def __init__(self, line: int, reason: str):
        super().__init__(reason)
        self.line = line
        self.reason = reason


class Reader(Configured, ABC):
    """Base of the built-in readers: `find_splits`, `read` and `write`; subclasses implement `parse` and `write`.

    After each `read`, `skipped` lists the records skipped under `on_bad_example="skip"` and `duplicates` counts the
    exact duplicate records that were merged away (formats with one record per aspect only).
    """

    name = ""
    suffix = ".txt"

    def __init__(self, config=None, **options):
        super().__init__(config, **options)
        self.skipped: list[BadExample] = []
        self.duplicates = 0

    def find_splits(self, root: Path) -> dict[str, Path]:
        """The split files in `root`: `{"train": ..., "dev": ..., "test": ...}` (only those present)."""
        root = Path(root)
        if not root.exists():
            raise DataError(f"data directory not found (expected {self.name} files {self._expected()})", root)
        if root.is_file():
            return {SPLIT_STEMS.get(root.stem, root.stem): root}
        splits: dict[str, Path] = {}
        for stem, split in SPLIT_STEMS.items():
            candidate = root / f"{stem}{self.suffix}"
            if candidate.is_file() and split not in splits:
                splits[split] = candidate
        if not splits:
            raise DataError(f"no {self.name} split files here (expected {self._expected()})", root)
        return splits

    def read(self, path: Path, on_bad_example: str = "error") -> list[Example]:
        """The examples in one file; a bad record stops with file and line, or is skipped and listed in `skipped`."""
        if on_bad_example not in POLICIES:
            raise ValueError(f"on_bad_example must be one of {POLICIES}, not {on_bad_example!r}")
        path = Path(path)
        if not path.is_file():
            raise DataError(f"no such {self.name} file", path)
        self.skipped = []
        self.duplicates = 0
        return self.parse(path, _Policy(path, on_bad_example, self.skipped))

    @abstractmethod
    def parse(self, path: Path, policy: "_Policy") -> list[Example]:
        """The examples of one existing file, reporting each bad record to `policy.bad(line, reason)`."""

    @abstractmethod
    def write(self, examples: list[Example], path: Path) -> None:
        """Write `examples` to `path` in this format."""

    def _expected(self) -> str:
        return ", ".join(f"{stem}{self.suffix}" for stem in ("train", "dev", "test"))


class _Policy:
    """Applies `on_bad_example` to one bad record: raise a `DataError`, or remember it and go on."""

    def __init__(self, path: Path, mode: str, skipped: list[BadExample]):
        self.path = path
        self.mode = mode
        self.skipped = skipped

    def bad(self, line: int, reason: str) -> None:
        if self.mode == "error":
            raise DataError(reason, self.path, line)
        self.skipped.append(BadExample(self.path, line, reason))


def decode_lines(path: Path) -> tuple[list[str], dict[int, str]]:
    """The file's lines without line ends, and {line index: reason} for lines that are not valid UTF-8."""
    lines: list[str] = []
    broken: dict[int, str] = {}
    try:
        raw_lines = Path(path).read_bytes().split(b"\n")
    except OSError as error:  # unreadable: permissions, a vanished network mount
        raise DataError(f"cannot read: {error.strerror or error}", path) from None
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    for index, raw in enumerate(raw_lines):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            broken[index] = f"invalid UTF-8 byte 0x{raw[error.start]:02x} at column {error.start + 1}"
            text = raw.decode("utf-8", errors="replace")
        lines.append(text.removesuffix("\r"))
    return lines, broken


def check_decoded(broken: dict[int, str], first: int, last: int) -> None:
    """Raise a `RecordError` for the first undecodable line among line indices first..last (inclusive)."""
    for index in range(first, last + 1):
        if index in broken:
            raise RecordError(index + 1, broken[index])


class IdMaker:
    """Unique example ids from a base name (the image's stem): `1860693`, then `1860693-2`, `1860693-3`, ..."""

    def __init__(self):
        self.seen: Counter[str] = Counter()

    def __call__(self, base: str) -> str:
        self.seen[base] += 1
        count = self.seen[base]
        return base if count == 1 else f"{base}-{count}"


def image_stem(image: str | None, fallback: str) -> str:
    """The image's file name without its extension, the id base of an example."""
    if not image:
        return fallback
    return Path(image).stem or fallback
