"""Reader for JSON lines, mmlabel's own format and its prediction format: one object per line,
`{"id": str, "tokens": [str], "image": str|null, "spans": [{"start": int, "end": int, "label": str}]}`."""
import json
from pathlib import Path

from mmlabel.data.example import Example, Span
from mmlabel.readers.base import Reader, RecordError, check_decoded, decode_lines
from mmlabel.configs import ComponentConfig


class JsonlReader(Reader):
    """JSON lines: {"id", "tokens", "image", "spans": [{"start", "end", "label"}]} per line; also the prediction format."""

    name = "jsonl"
    suffix = ".jsonl"

    class Config(ComponentConfig):
        """The `jsonl` format has no options."""

    def parse(self, path: Path, policy) -> list[Example]:
        lines, broken = decode_lines(path)
        examples: list[Example] = []
        for index, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                check_decoded(broken, index, index)
                examples.append(_example(line, index + 1))
            except RecordError as error:
                policy.bad(error.line, error.reason)
        return examples

    def write(self, examples: list[Example], path: Path) -> None:
        """Write one JSON object per example, UTF-8 kept readable."""
        lines = [json.dumps(example.to_dict(), ensure_ascii=False) for example in examples]
        Path(path).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _example(line: str, number: int) -> Example:
    """The example of one JSON line; extra keys (scores, tags) are ignored."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise RecordError(number, f"not valid JSON: {error.msg} at column {error.colno}") from None
    except ValueError as error:  # an integer of more than 4300 digits
        raise RecordError(number, f"not valid JSON: {error}") from None
    except RecursionError:
        raise RecordError(number, "not valid JSON: nested too deeply") from None
    if not isinstance(record, dict):
        raise RecordError(number, f"expected a JSON object, found {type(record).__name__}")
    tokens = record.get("tokens")
    if not isinstance(tokens, list) or not all(isinstance(token, str) and token for token in tokens):
        raise RecordError(number, "'tokens' must be a list of non-empty strings")
    if not tokens:
        raise RecordError(number, "empty sentence: 'tokens' is []")
    example_id, image = record.get("id"), record.get("image")
    if not isinstance(example_id, str) or not example_id:
        raise RecordError(number, f"'id' must be a non-empty string, found {example_id!r}")
    if image is not None and not isinstance(image, str):
        raise RecordError(number, f"'image' must be a string or null, found {image!r}")
    return Example(example_id, tokens, image, _spans(record.get("spans"), len(tokens), number))


def _spans(raw, length: int, number: int) -> list[Span]:
    if not isinstance(raw, list):
        raise RecordError(number, "'spans' must be a list of {start, end, label} objects")
    spans = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("label"), str) or not item.get("label"):
            raise RecordError(number, f"span {item!r} needs integer 'start', 'end' and a non-empty 'label'")
        start, end = item.get("start"), item.get("end")
        if type(start) is not int or type(end) is not int or not 0 <= start < end <= length:
            raise RecordError(number, f"span {item!r} is outside the sentence's {length} words (end is exclusive)")
        spans.append(Span(start, end, item["label"]))
    return sorted(spans)
