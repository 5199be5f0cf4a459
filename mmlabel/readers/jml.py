"""Reader for the Twitter-2015/2017 MABSA `.txt` files (Xu et al., 2019; Yu and Jiang, 2019): four lines per aspect
record (sentence with `$T$` in place of the aspect, the aspect term, sentiment -1/0/1, image file name); the records of
one post are merged into one labelled sentence (see `aspect_records` for the merge policy)."""
from pathlib import Path

from mmlabel.data.example import Example
from mmlabel.errors import DataError
from mmlabel.readers.aspect_records import (
    POLARITY_OF_SENTIMENT,
    SENTIMENT_OF_POLARITY,
    AspectRecord,
    merge_records,
    parse_record,
    split_records,
)
from mmlabel.readers.base import Reader, RecordError, check_decoded, decode_lines
from mmlabel.configs import ComponentConfig

LINES_PER_RECORD = 4


class JmlReader(Reader):
    """Twitter MABSA `.txt`: four lines per aspect (sentence with $T$, aspect, sentiment -1/0/1, image)."""

    name = "jml"
    suffix = ".txt"

    class Config(ComponentConfig):
        """The `jml` format has no options."""

    def parse(self, path: Path, policy) -> list[Example]:
        lines, broken = decode_lines(path)
        while lines and not lines[-1].strip():
            lines.pop()
        complete = len(lines) - len(lines) % LINES_PER_RECORD
        if complete != len(lines):
            policy.bad(len(lines), _incomplete_reason(lines))
        records: list[AspectRecord] = []
        for first in range(0, complete, LINES_PER_RECORD):
            try:
                records.append(_record(lines, broken, first))
            except RecordError as error:
                policy.bad(error.line, error.reason)
        examples, self.duplicates, conflicts = merge_records(records)
        for line, reason in conflicts:
            policy.bad(line, reason)
        return examples

    def write(self, examples: list[Example], path: Path) -> None:
        """Write one four-line record per aspect; every example needs at least one sentiment span."""
        out: list[str] = []
        for example in examples:
            try:
                rows = split_records(example)
            except ValueError as error:
                raise DataError(f"cannot write as jml: {error}", path) from None
            for sentence, aspect, label, image in rows:
                out += [sentence, aspect, POLARITY_OF_SENTIMENT[label], image]
        Path(path).write_text("".join(f"{line}\n" for line in out), encoding="utf-8")


def _record(lines: list[str], broken: dict[int, str], first: int) -> AspectRecord:
    """The record whose sentence is line index `first`."""
    check_decoded(broken, first, first + LINES_PER_RECORD - 1)
    sentence, aspect, polarity, image = lines[first:first + LINES_PER_RECORD]
    numbers = tuple(range(first + 1, first + LINES_PER_RECORD + 1))
    label = SENTIMENT_OF_POLARITY.get(polarity.strip())
    if label is None:
        raise RecordError(numbers[2], f"sentiment must be -1, 0 or 1, found {polarity.strip()!r}")
    return parse_record(sentence, aspect, label, image, numbers)


def _incomplete_reason(lines: list[str]) -> str:
    """Why the line count is wrong, pointing at the first record whose third line is not a sentiment."""
    reason = f"{len(lines)} lines is not a multiple of four (sentence, aspect, sentiment, image per record)"
    for first in range(0, len(lines) - 2, LINES_PER_RECORD):
        if lines[first + 2].strip() not in SENTIMENT_OF_POLARITY:
            return f"{reason}; the records go out of step at line {first + 1}"
    return f"{reason}; the last record is incomplete"
