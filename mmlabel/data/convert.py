"""Reading whole datasets by format name, guessing a format from its files, and converting between formats."""
from pathlib import Path

from mmlabel.data.example import Example
from mmlabel.errors import DataError
from mmlabel.registry import build

FORMATS = ("jml", "tsv", "conll", "jsonl", "json")
# `.json` last: a folder that also holds the reference `.txt` files keeps being read as before.
SUFFIX_PREFERENCE = {".jsonl": 0, ".txt": 1, ".tsv": 2, ".json": 3}


def sniff_format(path: Path, fallback: str | None = None) -> str:
    """The format of a file or data directory: by extension, and for `.txt` by whether it starts with `IMGID:`;
    `fallback` (if given) where the files do not tell. The one guess behind every command's `--format`."""
    path = Path(path)
    if not path.exists():
        raise DataError("no such file or directory", path)
    files = [path] if path.is_file() else [p for p in path.iterdir() if p.stem in ("train", "dev", "valid", "test")]
    # A directory with both the .txt and the .tsv MABSA files is read as .txt (jml), the reference layout.
    for file in sorted(files, key=lambda file: (SUFFIX_PREFERENCE.get(file.suffix, 9), file.name)):
        if file.suffix == ".jsonl":
            return "jsonl"
        if file.suffix == ".tsv":
            return "tsv"
        if file.suffix == ".json":
            return "json"
        if file.suffix == ".txt":
            return "conll" if _first_line(file).startswith("IMGID:") else "jml"
    if fallback is not None:
        return fallback
    raise DataError(f"cannot tell the format; give it with --format ({', '.join(FORMATS)})", path)


def _first_line(path: Path) -> str:
    with open(path, "rb") as handle:
        for raw in handle:
            if raw.strip():
                return raw.decode("utf-8", errors="replace")
    return ""


def read_dataset(path: Path, format_name: str, on_bad_example: str = "error") -> tuple[object, dict[str, list[Example]], dict]:
    """(reader, {split: examples}, {split: {"duplicates": n, "skipped": [BadExample]}}) for a directory or one file."""
    reader = build("dataset_reader", format_name)
    splits, reports = {}, {}
    for split, file in reader.find_splits(Path(path)).items():
        splits[split] = reader.read(file, on_bad_example=on_bad_example)
        reports[split] = {"duplicates": reader.duplicates, "skipped": list(reader.skipped)}
    return reader, splits, reports


def convert(source: Path, target: Path, source_format: str, target_format: str) -> dict[str, tuple[Path, int]]:
    """Convert a data directory (every split, written as `<split><suffix>`) or one file; {split: (file, examples)}."""
    from mmlabel.atomic import atomic_path

    source, target = Path(source), Path(target)
    _, splits, _ = read_dataset(source, source_format)
    writer = build("dataset_reader", target_format)
    written = {}
    for split, examples in splits.items():
        if source.is_file():
            file = target
            file.parent.mkdir(parents=True, exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            file = target / f"{split}{writer.suffix}"
        try:
            with atomic_path(file) as temporary:  # a failure leaves no partial file (mmlabel.atomic)
                writer.write(examples, temporary)
        except DataError as error:  # the writer names the temporary file; the user knows the target
            raise DataError(error.reason, file, error.line) from None
        written[split] = (file, len(examples))
    return written
