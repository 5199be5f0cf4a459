"""The one data type every reader yields and every prediction is written as."""
from dataclasses import dataclass, field


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
