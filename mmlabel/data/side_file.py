"""The side file of a dataset's context: JSON lines, one per photo or post,

    {"image": "1860693.jpg", "context": "a man holding a sign that says vote"}
    {"id": "train-0001", "context": "..."}

keyed by the photo's file name (`Example.image`, as the dataset names it) or by the post's id, with its text in
`context`. `mmlabel data describe` writes one keyed by photo; the recipe's `data.context = {path = ..., key = "image"}`
reads it back (`mmlabel.data.context`), and so does the `file` describer. Researchers publish captions, OCR text and retrieved passages in
this shape (ITA, MoRe, PGIM)."""
import json
from pathlib import Path

from mmlabel.errors import DataError

KEYS = ("image", "id")


def read_side_file(path: str | Path, key: str = "image", missing: str = "side file not found") -> dict[str, str]:
    """{photo name or post id: text} of a side file; a `DataError` naming the file and line for a line that is not a
    JSON object with `key` and a string `context`, and for a key given two different texts; `missing`, the message
    where the file is not there."""
    path = Path(path)
    if key not in KEYS:
        raise DataError(f"a side file is keyed by {' or '.join(map(repr, KEYS))}, not {key!r}", path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(missing, path) from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read the side file: {error}", path) from None
    texts: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            name, context = parse_line(line, key, path, number)
            if texts.get(name, context) != context:
                raise DataError(f"{key} {name!r} is given two different contexts (first {texts[name]!r})", path,
                                number)
            texts[name] = context
    return texts


def parse_line(line: str, key: str, path: Path, number: int) -> tuple[str, str]:
    """(key's value, context) of one line of a side file."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"not a JSON object: {error.msg}", path, number) from None
    if not isinstance(record, dict):
        raise DataError(f"expected a JSON object {{{key!r}: ..., 'context': ...}}, found {type(record).__name__}",
                        path, number)
    if not isinstance(record.get(key), (str, int)) or isinstance(record.get(key), bool):
        found = ", ".join(map(repr, record)) or "none"
        raise DataError(f"expected the key {key!r} (a string); keys found: {found}", path, number)
    if not isinstance(record.get("context"), str):
        raise DataError(f"expected 'context' as a string, found {record.get('context')!r}", path, number)
    return str(record[key]), record["context"]


def line_of(name: str, context: str) -> str:
    """One line of a side file keyed by photo, with its newline."""
    return json.dumps({"image": name, "context": context}, ensure_ascii=False) + "\n"


def resume(path: Path) -> dict[str, str]:
    """The texts already in a side file being written (none for a file not there yet). A last line cut short by a
    killed run is cut off the file, so that appending continues from whole lines."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    whole = data[:data.rfind(b"\n") + 1]
    if len(whole) != len(data):
        with path.open("r+b") as handle:
            handle.truncate(len(whole))
    texts = {}
    for number, line in enumerate(whole.decode("utf-8").splitlines(), start=1):
        if line.strip():
            name, context = parse_line(line, "image", path, number)
            texts[name] = context
    return texts
