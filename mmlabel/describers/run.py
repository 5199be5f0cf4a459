"""`mmlabel data describe`: one describer over every photo of a dataset, once, its texts cached as a side file keyed
by photo (`mmlabel.data.side_file`). Resumable: texts are appended and flushed batch by batch, and a run that
finds the file begun continues after its last whole line, photos already there skipped. Beside the side file,
`<file>.describer.json` records the describer's signature, so that no other describer (or the same with other
options) continues it, and whether the run got to the end.

By default the file lies in the cache, `$MMLABEL_CACHE/context/<data folder>-<hash of the photo folder>/
<describer>-<hash of its signature>.jsonl` (default `~/.cache/mmlabel/...`): a dataset's folder is often read-only,
and the same describer over the same photos finds its file again."""
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from mmlabel.atomic import write_json
from mmlabel.data.images import UNREADABLE, ImageLoader, unreadable_reason
from mmlabel.data.side_file import line_of, resume
from mmlabel.errors import DataError


@dataclass
class DescribeSummary:
    """What a describe run did over the distinct photos it was given."""

    photos: int = 0
    described: int = 0  # by this run
    cached: int = 0  # already in the file
    empty: int = 0  # photos (of all in the file) whose text is ""
    missing: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)

    def describe(self) -> str:
        """One line: the counts, and the first missing and unreadable photos (which get no line in the file)."""
        line = (f"{self.photos} photos: {self.described} described, {self.cached} already in the file, "
                f"{self.empty} with no text")
        if self.missing:
            line += f"; {len(self.missing)} missing ({_first(self.missing)})"
        if self.unreadable:
            line += f"; {len(self.unreadable)} unreadable ({_first([f'{n}: {r}' for n, r in self.unreadable])})"
        return line


def default_path(data_root: Path, image_folder: Path, describer: str, signature: str) -> Path:
    """The side file's place in the cache for this photo folder and describer signature."""
    cache = Path(os.environ.get("MMLABEL_CACHE", Path.home() / ".cache" / "mmlabel"))
    folder = hashlib.sha256(str(Path(image_folder).resolve()).encode()).hexdigest()[:10]
    return cache / "context" / f"{Path(data_root).resolve().name}-{folder}" / f"{describer}-{_short(signature)}.jsonl"


def record_path(out: Path) -> Path:
    """`<out>.describer.json`: the describer that writes `out`, its signature, and whether it finished."""
    return out.with_name(out.name + ".describer.json")


def start(out: Path, describer: str, signature: str, restart: bool = False) -> dict[str, str]:
    """Open the side file `out` for `describer`: {photo: text} of the lines already there (a file begun by the same
    signature), else an empty file. A file begun by another signature, or not by `mmlabel data describe`, is a
    `DataError` unless `restart`, which starts it again."""
    record = record_path(out)
    if restart:
        out.unlink(missing_ok=True)
    elif out.exists():
        found = _read_record(record)
        if found is None:
            raise DataError("the file is there and was not written by mmlabel data describe (no "
                            f"{record.name}); give another --out, or --restart to replace it", out)
        if found.get("signature") != signature:
            raise DataError(f"begun by describer {found.get('describer')!r} with signature "
                            f"{found.get('signature')!r}, not {signature!r}; give another --out, or --restart to "
                            f"describe every photo again", out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(record, {"describer": describer, "signature": signature, "complete": False})
    return resume(out)


def describe_photos(describer, loader: ImageLoader, names: list[str], out: Path, done: dict[str, str],
                    batch_size: int = 16, progress=None) -> DescribeSummary:
    """Describe the photos of `names` (distinct, in order) not in `done`, `batch_size` at a time, appending each
    batch's lines to `out` and flushing them to disk before the next; `progress(count)` after each batch. Missing and
    unreadable photos get no line and are listed in the summary."""
    wanted = list(dict.fromkeys(name for name in names if name))
    summary = DescribeSummary(photos=len(wanted), cached=sum(1 for name in wanted if name in done))
    todo = [name for name in wanted if name not in done]
    with out.open("a", encoding="utf-8") as handle:
        for begin in range(0, len(todo), batch_size):
            batch = todo[begin:begin + batch_size]
            photos, present = _load(loader, batch, summary)
            texts = describer.describe(photos, present) if present else []
            if len(texts) != len(present):
                raise DataError(f"describer gave {len(texts)} texts for {len(present)} photos", out)
            texts = [" ".join(str(text).split()) for text in texts]  # one line each, whatever the describer gave
            handle.write("".join(line_of(name, text) for name, text in zip(present, texts)))
            handle.flush()
            os.fsync(handle.fileno())  # a killed run loses at most the batch it was describing
            done.update(zip(present, texts))
            summary.described += len(present)
            if progress is not None:
                progress(len(batch))
    summary.empty = sum(1 for name in wanted if not done.get(name, "x").strip())
    return summary


def finish(out: Path, describer: str, signature: str, summary: DescribeSummary) -> None:
    """Record that the run got through every photo (missing and unreadable ones are left out of the file)."""
    write_json(record_path(out), {"describer": describer, "signature": signature, "complete": True,
                                  "photos": summary.photos, "missing": len(summary.missing),
                                  "unreadable": len(summary.unreadable)})


def _load(loader: ImageLoader, batch: list[str], summary: DescribeSummary) -> tuple[list, list[str]]:
    photos, present = [], []
    for name in batch:
        path = loader.path(name)
        if not path.is_file():
            summary.missing.append(name)
            continue
        try:
            photos.append(loader.decode(path))
        except UNREADABLE as error:
            summary.unreadable.append((name, unreadable_reason(error)))
            continue
        present.append(name)
    return photos, present


def _read_record(path: Path) -> dict | None:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _first(names: list[str], shown: int = 3) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")
