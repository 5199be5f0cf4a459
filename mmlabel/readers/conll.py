"""Reader for CoNLL-style Twitter files (MABSA: Ju et al., 2021; MNER: Zhang et al., 2018; Lu et al., 2018): an
`IMGID:<id>` line, then `token<TAB>tag[<TAB>more tags]` lines, a blank line between sentences.

Tags are BIO with a label (`B-POS`, `I-NEU`, `B-PER`). As conlleval does, an `I-X` that does not continue an `X` span
opens a new span: the Twitter-2015 NER files contain such sequences and the benchmark scores them that way.
"""
import re
from pathlib import Path

from pydantic import Field

from mmlabel.data.example import Example, Span
from mmlabel.readers.base import IdMaker, Reader, RecordError, check_decoded, decode_lines, image_stem
from mmlabel.configs import ComponentConfig

HEADER = "IMGID:"
TAG = re.compile(r"^(?:O|[BI]-\S+)$")


class ConllReader(Reader):
    """CoNLL Twitter files: IMGID:<id> line, token<TAB>tag lines, blank line between sentences (MABSA or NER)."""

    name = "conll"
    suffix = ".txt"

    class Config(ComponentConfig):
        """Which tag column to read and how image ids become file names."""

        tag_column: int = Field(1, ge=1, description="column of the tags (0 is the token): 1 = sentiment/entity tags")
        image_extension: str = Field(".jpg", description="appended to an IMGID to name its image file")

    def parse(self, path: Path, policy) -> list[Example]:
        lines, broken = decode_lines(path)
        examples: list[Example] = []
        make_id = IdMaker()
        for first, last in _sentence_blocks(lines):
            try:
                check_decoded(broken, first, last)
                examples.append(self._sentence(lines, first, last, make_id))
            except RecordError as error:
                policy.bad(error.line, error.reason)
        return examples

    def write(self, examples: list[Example], path: Path) -> None:
        """Write an IMGID line (the image name, without the configured extension) and one `token<TAB>tag` per word."""
        out: list[str] = []
        for example in examples:
            out.append(HEADER + self._image_id(example))
            for token, tag in zip(example.tokens, bio_tags(example.spans, len(example.tokens))):
                out.append(f"{token}\t{tag}")
            out.append("")
        Path(path).write_text("".join(f"{line}\n" for line in out), encoding="utf-8")

    def _sentence(self, lines: list[str], first: int, last: int, make_id: IdMaker) -> Example:
        """The example on line indices first..last: an optional IMGID line, then token lines."""
        image = None
        base = str(first + 1)
        if lines[first].startswith(HEADER):
            image = self._image_name(lines[first][len(HEADER):].strip())
            base = image_stem(image, base)
            first += 1
        if first > last:
            raise RecordError(first, f"empty sentence after {lines[first - 1]!r}")
        tokens, tags = [], []
        for index in range(first, last + 1):
            fields = lines[index].split("\t")
            if len(fields) <= self.config.tag_column or not fields[0]:
                raise RecordError(index + 1, f"expected token<TAB>tag, found {lines[index]!r}")
            tag = fields[self.config.tag_column].strip()
            if not TAG.match(tag):
                raise RecordError(index + 1, f"unknown tag {tag!r} (expected O, B-<label> or I-<label>)")
            tokens.append(fields[0])
            tags.append(tag)
        return Example(make_id(base), tokens, image, bio_spans(tags))

    def _image_name(self, image_id: str) -> str:
        has_extension = Path(image_id).suffix.lower() in {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"}
        return image_id if has_extension else image_id + self.config.image_extension

    def _image_id(self, example: Example) -> str:
        image = example.image or example.id
        return image[: -len(self.config.image_extension)] if image.endswith(self.config.image_extension) else image


def _sentence_blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) line indices of each sentence: blank lines separate them, and an IMGID line starts one."""
    blocks: list[tuple[int, int]] = []
    start = None
    for index, line in enumerate(lines):
        if not line.strip():
            if start is not None:
                blocks.append((start, index - 1))
            start = None
        elif line.startswith(HEADER) and start is not None:
            blocks.append((start, index - 1))
            start = index
        elif start is None:
            start = index
    if start is not None:
        blocks.append((start, len(lines) - 1))
    return blocks


def bio_spans(tags: list[str]) -> list[Span]:
    """Spans of a BIO tag sequence, conlleval style: an I-X that continues no X span starts one."""
    spans: list[Span] = []
    start, label = None, None
    for index, tag in enumerate([*tags, "O"]):
        prefix, _, tag_label = tag.partition("-")
        continues = prefix == "I" and tag_label == label
        if start is not None and not continues:
            spans.append(Span(start, index, label))
            start, label = None, None
        if prefix in ("B", "I") and not continues:
            start, label = index, tag_label
    return spans


def bio_tags(spans: list[Span], length: int) -> list[str]:
    """The BIO tags of non-overlapping spans over `length` words."""
    tags = ["O"] * length
    for span in sorted(spans):
        tags[span.start] = f"B-{span.label}"
        for index in range(span.start + 1, span.end):
            tags[index] = f"I-{span.label}"
    return tags
