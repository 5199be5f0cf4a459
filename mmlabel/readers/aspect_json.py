"""Reader for the JSON files of VLP-MABSA (Ling et al., 2022) and the models built on its data (AoM, CMMT, DQPSA),
whose layout comes from BARTABSA: per split one JSON list of posts, `{"words": [str], "image_id": "123.jpg",
"aspects": [{"from": int, "to": int, "polarity": "POS"|"NEU"|"NEG", "term": [str]}], "opinions": [...]}`, `to`
exclusive.

Polarity is read as `POS`/`NEU`/`NEG` or `positive`/`neutral`/`negative` (any case) and written as `POS`/`NEU`/`NEG`,
as VLP-MABSA's files have it. `opinions` is ignored on reading and written as `[]`: the Twitter data has no opinion
annotation (VLP-MABSA's files carry a placeholder `[{"term": []}]`). Only sentiment spans fit the format; writing an
entity-typed (MNER) dataset is refused, as in `jml` and `tsv`.
"""
import bisect
import json
import re
from pathlib import Path

from mmlabel.configs import ComponentConfig
from mmlabel.data.example import SENTIMENTS, Example, Span
from mmlabel.errors import DataError
from mmlabel.readers.base import IdMaker, Reader, RecordError, image_stem

SENTIMENT_OF_POLARITY = {**{label.lower(): label for label in SENTIMENTS},
                         "positive": "POS", "neutral": "NEU", "negative": "NEG"}
JSON_SPACE = re.compile(r"[ \t\n\r]*")
DECODER = json.JSONDecoder()


class AspectJsonReader(Reader):
    """VLP-MABSA JSON: one list per split of {words, image_id, aspects: [{from, to, polarity, term}], opinions}."""

    name = "json"
    suffix = ".json"

    class Config(ComponentConfig):
        """The `json` format has no options."""

    def parse(self, path: Path, policy) -> list[Example]:
        text, undecodable = _decode(path)
        examples: list[Example] = []
        make_id = IdMaker()
        line, counted = 1, 0  # lines counted up to `counted`, so that a long file is scanned once
        try:
            for index, (start, end), item in _list_items(text):
                line, counted = line + text.count("\n", counted, start), start
                try:
                    _check_decoded(text, undecodable, start, end)
                    examples.append(self._example(item, index, line, make_id))
                except RecordError as error:
                    policy.bad(error.line, f"item [{index}]: {error.reason}")
        except RecordError as error:  # the list itself is broken: nothing after this point can be read
            policy.bad(error.line, error.reason)
        return examples

    def write(self, examples: list[Example], path: Path) -> None:
        """Write one JSON list, one post per line, UTF-8 kept readable; `opinions` is written as []."""
        try:
            items = [json.dumps(_item(example), ensure_ascii=False) for example in examples]
        except ValueError as error:
            raise DataError(f"cannot write as json: {error}", path) from None
        body = ",\n".join(items)
        Path(path).write_text(f"[\n{body}\n]\n" if items else "[]\n", encoding="utf-8")

    def _example(self, item, index: int, line: int, make_id: IdMaker) -> Example:
        """The example of list item `index` (which starts on `line`); duplicate aspects are counted and dropped."""
        if not isinstance(item, dict):
            raise RecordError(line, f"expected an object {{words, image_id, aspects}}, found {type(item).__name__}")
        for key in ("words", "image_id", "aspects"):
            if key not in item:
                raise RecordError(line, f"missing key {key!r}")
        words, image = item["words"], item["image_id"]
        if not isinstance(words, list) or not all(isinstance(word, str) and word for word in words):
            raise RecordError(line, "'words' must be a list of non-empty strings")
        if not words:
            raise RecordError(line, "empty sentence: 'words' is []")
        if image is not None and (not isinstance(image, str) or not image.strip()):
            raise RecordError(line, f"'image_id' must be an image file name or null, found {image!r}")
        if not isinstance(item["aspects"], list):
            raise RecordError(line, "'aspects' must be a list of {from, to, polarity, term} objects")
        spans: list[Span] = []
        for aspect in item["aspects"]:
            span = _span(aspect, words, line)
            if span in spans:
                self.duplicates += 1
                continue
            _check_no_clash(spans, span, words, line)
            spans.append(span)
        image = image.strip() if image else None
        return Example(make_id(image_stem(image, str(index + 1))), list(words), image, sorted(spans))


def _span(aspect, words: list[str], line: int) -> Span:
    """The span of one aspect object; its `term`, where given, must be the words it covers (`to` exclusive)."""
    if not isinstance(aspect, dict):
        raise RecordError(line, f"aspect {aspect!r} is not a {{from, to, polarity, term}} object")
    for key in ("from", "to", "polarity"):
        if key not in aspect:
            raise RecordError(line, f"aspect {aspect!r} is missing key {key!r}")
    start, end, polarity = aspect["from"], aspect["to"], aspect["polarity"]
    if type(start) is not int or type(end) is not int or not 0 <= start < end <= len(words):
        raise RecordError(line, f"aspect from={start!r} to={end!r} is outside the sentence's {len(words)} words "
                                f"('to' is exclusive)")
    label = SENTIMENT_OF_POLARITY.get(polarity.lower()) if isinstance(polarity, str) else None
    if label is None:
        raise RecordError(line, f"polarity must be POS, NEU or NEG (or positive, neutral, negative), found {polarity!r}")
    term = aspect.get("term")
    covered = words[start:end]
    if term is not None and (term.split() if isinstance(term, str) else term) != covered:
        raise RecordError(line, f"aspect term {term!r} is not the words from={start} to={end} cover, {covered!r} "
                                f"('to' is exclusive)")
    return Span(start, end, label)


def _check_no_clash(spans: list[Span], new: Span, words: list[str], line: int) -> None:
    for span in spans:
        if (span.start, span.end) == (new.start, new.end):
            aspect = " ".join(words[new.start:new.end])
            raise RecordError(line, f"aspect {aspect!r} is given polarity {span.label} and {new.label}")


def _item(example: Example) -> dict:
    """The JSON object of one post; raises ValueError for a label that is not a sentiment."""
    aspects = []
    for span in sorted(example.spans):
        if span.label not in SENTIMENTS:
            raise ValueError(f"example {example.id!r}: label {span.label!r} is not a sentiment (POS, NEU, NEG); the "
                             f"format holds aspect sentiments only (use conll or jsonl for entity types)")
        aspects.append({"from": span.start, "to": span.end, "polarity": span.label,
                        "term": list(example.tokens[span.start:span.end])})
    return {"words": list(example.tokens), "image_id": example.image or f"{example.id}.jpg", "aspects": aspects,
            "opinions": []}


def _decode(path: Path) -> tuple[str, list[int]]:
    """The file's text (a BOM dropped) and the sorted positions of its undecodable bytes, kept as lone surrogates so
    that the posts around them can still be read."""
    try:
        raw = Path(path).read_bytes()
    except OSError as error:  # unreadable: permissions, a vanished network mount
        raise DataError(f"cannot read: {error.strerror or error}", path) from None
    text = raw.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    if raw.isascii():
        return text, []
    return text, [position for position, char in enumerate(text) if "\udc80" <= char <= "\udcff"]


def _check_decoded(text: str, undecodable: list[int], start: int, end: int) -> None:
    """Raise a `RecordError` for the first undecodable byte in text[start:end]."""
    found = bisect.bisect_left(undecodable, start)
    if found < len(undecodable) and undecodable[found] < end:
        position = undecodable[found]
        column = position - text.rfind("\n", 0, position)
        byte = ord(text[position]) - 0xDC00
        raise RecordError(_line_of(text, position), f"invalid UTF-8 byte 0x{byte:02x} at column {column}")


def _list_items(text: str):
    """(index, (start, end), value) of each item of the top-level JSON list, decoded one at a time so that an error
    names the item; a `RecordError` where the list itself is broken."""
    position = _skip_space(text, 0)
    if not text.startswith("[", position):
        found = "an empty file" if position == len(text) else f"{text[position]!r}"
        raise RecordError(_line_of(text, position), f"expected a JSON list of posts [{{...}}, ...], found {found}")
    position = _skip_space(text, position + 1)
    index = 0
    if text.startswith("]", position):
        return _check_end(text, position + 1)
    while True:
        value, end = _decode_value(text, position, index)
        yield index, (position, end), value
        position = _skip_space(text, end)
        if text.startswith(",", position):
            position, index = _skip_space(text, position + 1), index + 1
        elif text.startswith("]", position):
            return _check_end(text, position + 1)
        else:
            raise RecordError(_line_of(text, position), f"not valid JSON: expected ',' or ']' after item [{index}]")


def _decode_value(text: str, position: int, index: int) -> tuple[object, int]:
    """(value, end) of the list item `index` that starts at `position`."""
    try:
        return DECODER.raw_decode(text, position)
    except json.JSONDecodeError as error:
        raise RecordError(error.lineno, f"item [{index}]: not valid JSON: {error.msg} at column {error.colno}") from None
    except ValueError as error:  # an integer of more than 4300 digits
        raise RecordError(_line_of(text, position), f"item [{index}]: not valid JSON: {error}") from None
    except RecursionError:
        raise RecordError(_line_of(text, position), f"item [{index}]: not valid JSON: nested too deeply") from None


def _check_end(text: str, position: int) -> None:
    if _skip_space(text, position) != len(text):
        raise RecordError(_line_of(text, position), "not valid JSON: more data after the list's closing ']'")


def _skip_space(text: str, position: int) -> int:
    return JSON_SPACE.match(text, position).end()


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1
