"""Reader for the Twitter MABSA `.tsv` files: a header, then one row per aspect (index, label 0/1/2 for
negative/neutral/positive, image file name, sentence with `$T$`, aspect); rows of one post are merged like `jml`'s."""
from pathlib import Path

from mmlabel.data.example import Example
from mmlabel.errors import DataError
from mmlabel.readers.aspect_records import AspectRecord, merge_records, parse_record, split_records
from mmlabel.readers.base import Reader, RecordError, check_decoded, decode_lines
from mmlabel.configs import ComponentConfig

SENTIMENT_OF_LABEL = {"0": "NEG", "1": "NEU", "2": "POS"}
LABEL_OF_SENTIMENT = {sentiment: label for label, sentiment in SENTIMENT_OF_LABEL.items()}
HEADER = ("index", "#1 Label", "#2 ImageID", "#3 String", "#3 String")


class TsvReader(Reader):
    """Twitter MABSA `.tsv`: index, label 0/1/2, image id, sentence with $T$, aspect; a header line first."""

    name = "tsv"
    suffix = ".tsv"

    class Config(ComponentConfig):
        """The `tsv` format has no options."""

    def parse(self, path: Path, policy) -> list[Example]:
        lines, broken = decode_lines(path)
        records: list[AspectRecord] = []
        for index, line in enumerate(lines):
            if not line.strip() or (index == 0 and line.split("\t")[0].strip().lower() == "index"):
                continue
            try:
                check_decoded(broken, index, index)
                records.append(_record(line, index + 1))
            except RecordError as error:
                policy.bad(error.line, error.reason)
        examples, self.duplicates, conflicts = merge_records(records)
        for line, reason in conflicts:
            policy.bad(line, reason)
        return examples

    def write(self, examples: list[Example], path: Path) -> None:
        """Write the header and one row per aspect, numbered from 1."""
        rows = ["\t".join(HEADER)]
        for example in examples:
            try:
                records = split_records(example)
            except ValueError as error:
                raise DataError(f"cannot write as tsv: {error}", path) from None
            for sentence, aspect, label, image in records:
                rows.append("\t".join([str(len(rows)), LABEL_OF_SENTIMENT[label], image, sentence, aspect]))
        Path(path).write_text("".join(f"{row}\n" for row in rows), encoding="utf-8")


def _record(line: str, number: int) -> AspectRecord:
    fields = line.split("\t")
    if len(fields) != 5:
        raise RecordError(number, f"expected 5 tab-separated fields (index, label, image, sentence, aspect), found {len(fields)}")
    _, label, image, sentence, aspect = fields
    sentiment = SENTIMENT_OF_LABEL.get(label.strip())
    if sentiment is None:
        raise RecordError(number, f"label must be 0, 1 or 2, found {label.strip()!r}")
    return parse_record(sentence, aspect, sentiment, image, (number,) * 4)
