"""One record per aspect (the Twitter MABSA `.txt` and `.tsv` layouts): parse a `$T$` sentence, merge the records of
one post into an `Example`, and split an `Example` back into records for writing.

Merge policy: records with the same words *and* the same image are one post and become one example with all their
aspects. The same words with a different image are different posts (retweets of the same text with another photo)
and stay separate examples. A record repeated exactly (same words, aspect, sentiment, image) adds nothing and is
counted in `Reader.duplicates`.
"""
from dataclasses import dataclass

from mmlabel.data.example import Example, Span
from mmlabel.readers.base import IdMaker, RecordError, image_stem

PLACEHOLDER = "$T$"
SENTIMENT_OF_POLARITY = {"-1": "NEG", "0": "NEU", "1": "POS"}
POLARITY_OF_SENTIMENT = {label: polarity for polarity, label in SENTIMENT_OF_POLARITY.items()}


@dataclass(frozen=True)
class AspectRecord:
    """One aspect record: the post's words, the aspect's word span with its sentiment, the image and the first line."""

    tokens: tuple[str, ...]
    span: Span
    image: str
    line: int


def parse_record(sentence: str, aspect: str, label: str, image: str, lines: tuple[int, int, int, int]) -> AspectRecord:
    """Build a record from its four fields; `lines` are the line numbers of the sentence, aspect, sentiment, image."""
    if not sentence.strip():
        raise RecordError(lines[0], "empty sentence")
    count = sentence.count(PLACEHOLDER)
    if count != 1:
        found = "none" if count == 0 else f"{count}"
        raise RecordError(lines[0], f"expected one {PLACEHOLDER} in the sentence, found {found}: {sentence.strip()!r}")
    aspect_tokens = aspect.split()
    if not aspect_tokens:
        raise RecordError(lines[1], "empty aspect term")
    if not image.strip():
        raise RecordError(lines[3], "empty image file name")
    # `$T$` glued to a neighbour ("$T$'s") is split off, so that the aspect is whole words.
    left, _, right = sentence.partition(PLACEHOLDER)
    left_tokens, right_tokens = left.split(), right.split()
    tokens = (*left_tokens, *aspect_tokens, *right_tokens)
    span = Span(len(left_tokens), len(left_tokens) + len(aspect_tokens), label)
    return AspectRecord(tokens, span, image.strip(), lines[0])


def merge_records(records: list[AspectRecord]) -> tuple[list[Example], int, list[tuple[int, str]]]:
    """Examples (one per post, in order of first appearance), the number of exact duplicate records, and the
    (line, reason) of records whose aspect overlaps another aspect of the post with a different sentiment."""
    posts: dict[tuple[tuple[str, ...], str], Example] = {}
    duplicates = 0
    conflicts: list[tuple[int, str]] = []
    make_id = IdMaker()
    for record in records:
        key = (record.tokens, record.image)
        example = posts.get(key)
        if example is None:
            example = Example(make_id(image_stem(record.image, str(record.line))), list(record.tokens), record.image)
            posts[key] = example
        if record.span in example.spans:
            duplicates += 1
            continue
        clash = _clash(example.spans, record.span)
        if clash is not None:
            conflicts.append((record.line, _clash_reason(record, clash)))
            continue
        example.spans.append(record.span)
    for example in posts.values():
        example.spans.sort()
    return list(posts.values()), duplicates, conflicts


def _clash(spans: list[Span], new: Span) -> Span | None:
    """An existing span over the same words with another sentiment (two sentiments for one aspect)."""
    for span in spans:
        if (span.start, span.end) == (new.start, new.end) and span.label != new.label:
            return span
    return None


def _clash_reason(record: AspectRecord, other: Span) -> str:
    words = " ".join(record.tokens[record.span.start:record.span.end])
    return f"aspect {words!r} is given sentiment {record.span.label} here and {other.label} in an earlier record"


def split_records(example: Example) -> list[tuple[str, str, str, str]]:
    """(sentence with `$T$`, aspect, sentiment label, image) for each aspect of an example, in span order."""
    if not example.spans:
        raise ValueError(f"example {example.id!r} has no aspect: one-record-per-aspect formats cannot hold it")
    rows = []
    for span in sorted(example.spans):
        if span.label not in POLARITY_OF_SENTIMENT:
            raise ValueError(f"example {example.id!r}: label {span.label!r} is not a sentiment (POS, NEU, NEG)")
        sentence = " ".join([*example.tokens[:span.start], PLACEHOLDER, *example.tokens[span.end:]])
        aspect = " ".join(example.tokens[span.start:span.end])
        rows.append((sentence, aspect, span.label, example.image or f"{example.id}.jpg"))
    return rows
