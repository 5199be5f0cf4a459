"""The one data type every reader yields and every prediction is written as."""
from dataclasses import dataclass, field
from typing import Any

# The labels of aspect-based sentiment, in the order tag schemes and tables list them.
SENTIMENTS: tuple[str, ...] = ("POS", "NEU", "NEG")


@dataclass(frozen=True, order=True)
class Span:
    """A labelled span over word indices: `end` is exclusive. A span predicted from raw text also carries where it
    is in that text (`start_char`, `end_char`, end exclusive); they take no part in comparing spans."""

    start: int
    end: int
    label: str
    start_char: int | None = field(default=None, compare=False)
    end_char: int | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """`{start, end, label}`, with `start_char` and `end_char` where the span has them."""
        offsets = {} if self.start_char is None else {"start_char": self.start_char, "end_char": self.end_char}
        return {"start": self.start, "end": self.end, "label": self.label, **offsets}


@dataclass
class Example:
    """A post: its words, its image file name (or None), its labelled spans, where it was given as raw text, that
    text, and its `context`: free text about the post (a caption, OCR text, retrieved knowledge; `data.context`,
    mmlabel.data.context) that the text encoder reads after the sentence and that carries no tags."""

    id: str
    tokens: list[str]
    image: str | None = None
    spans: list[Span] = field(default_factory=list)
    text: str | None = None
    context: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The example as the JSON object of the `jsonl` format (also the prediction format); `text` only where the
        post was given as raw text, `context` only where it has one."""
        raw = {} if self.text is None else {"text": self.text}
        context = {} if not self.context else {"context": self.context}
        return {"id": self.id, **raw, "tokens": list(self.tokens), "image": self.image,
                "spans": [span.to_dict() for span in self.spans], **context}


def labels_of(examples: list[Example]) -> list[str]:
    """The span labels used in `examples`: sentiments in POS, NEU, NEG order, anything else sorted."""
    found = {span.label for example in examples for span in example.spans}
    return [label for label in SENTIMENTS if label in found] + sorted(found - set(SENTIMENTS))


def is_sentiment_data(examples: list[Example]) -> bool:
    """Whether every span label is a sentiment (MABSA data) rather than an entity type (NER data)."""
    return set(labels_of(examples)) <= set(SENTIMENTS)
