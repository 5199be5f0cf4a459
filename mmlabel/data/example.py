"""The one data type every reader yields and every prediction is written as."""
from dataclasses import dataclass, field
from typing import Any

# The labels of aspect-based sentiment, in the order tag schemes and tables list them.
SENTIMENTS: tuple[str, ...] = ("POS", "NEU", "NEG")


@dataclass(frozen=True, order=True)
class Span:
    """A labelled span over word indices: `end` is exclusive."""

    start: int
    end: int
    label: str


@dataclass
class Example:
    """A post: its words, its image file name (or None) and its labelled spans."""

    id: str
    tokens: list[str]
    image: str | None = None
    spans: list[Span] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The example as the JSON object of the `jsonl` format (also the prediction format)."""
        return {
            "id": self.id,
            "tokens": list(self.tokens),
            "image": self.image,
            "spans": [{"start": s.start, "end": s.end, "label": s.label} for s in self.spans],
        }


def labels_of(examples: list[Example]) -> list[str]:
    """The span labels used in `examples`: sentiments in POS, NEU, NEG order, anything else sorted."""
    found = {span.label for example in examples for span in example.spans}
    return [label for label in SENTIMENTS if label in found] + sorted(found - set(SENTIMENTS))


def is_sentiment_data(examples: list[Example]) -> bool:
    """Whether every span label is a sentiment (MABSA data) rather than an entity type (NER data)."""
    return set(labels_of(examples)) <= set(SENTIMENTS)
