"""Photo manifests: the photos a recipe's data names, each with its file size and sha256, so that two groups can
confirm that they train on the same photos (`mmlabel data prepare` writes one, `mmlabel data verify` checks one).

The format is tab-separated text with a header line, one photo per line, sorted by name, the name relative to the
image folder:

    file        size    sha256
    1860693.jpg 48211   9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
"""
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mmlabel.errors import DataError

HEADER = ("file", "size", "sha256")


@dataclass(frozen=True)
class ManifestEntry:
    file: str
    size: int
    sha256: str


@dataclass
class Verification:
    """What `verify` found: the photos it checked, those missing and those whose size or sha256 differ."""

    checked: int
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.changed


def write_manifest(path: str | Path, entries: list[ManifestEntry]) -> None:
    """Write `entries` to `path` (atomically), sorted by name."""
    from mmlabel.atomic import write_text

    for entry in entries:
        if any(character in entry.file for character in "\t\r\n"):
            raise DataError(f"a photo's name holds a tab or line break, which the manifest cannot hold: {entry.file!r}")
    lines = ["\t".join(HEADER)] + [f"{e.file}\t{e.size}\t{e.sha256}" for e in sorted(entries, key=lambda e: e.file)]
    write_text(path, "\n".join(lines) + "\n")


def read_manifest(path: str | Path) -> list[ManifestEntry]:
    """The entries of a manifest; a `DataError` naming the file (and line) where it cannot be read as one."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise DataError(f"cannot read the manifest: {reason}", path) from None
    if not lines or tuple(lines[0].split("\t")) != HEADER:
        raise DataError(f"not a photo manifest: the first line must be the header {' '.join(HEADER)!r} "
                        f"(tab-separated)", path, 1)
    entries = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3 or not parts[1].isdigit() or not _is_sha256(parts[2]):
            raise DataError(f"expected file<TAB>size<TAB>sha256 (64 hex digits), found {line[:80]!r}", path, number)
        entries.append(ManifestEntry(parts[0], int(parts[1]), parts[2].lower()))
    return entries


def verify(entries: list[ManifestEntry], image_dir: str | Path, threads: int | None = None) -> Verification:
    """Check every listed photo under `image_dir`: present, of the listed size and sha256 (hashed in threads)."""
    from mmlabel.threads import available_cores

    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise DataError("no such image folder (give the folder the manifest's names are in with --images)", image_dir)

    def status(entry: ManifestEntry) -> str:
        path = image_dir / entry.file
        try:
            if path.stat().st_size != entry.size:
                return "changed"
            return "ok" if _sha256(path) == entry.sha256 else "changed"
        except OSError:
            return "missing"

    found = Verification(len(entries))
    with ThreadPoolExecutor(threads or min(8, available_cores())) as pool:
        for entry, outcome in zip(entries, pool.map(status, entries)):
            if outcome != "ok":
                getattr(found, outcome).append(entry.file)
    return found


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(character in "0123456789abcdefABCDEF" for character in text)
