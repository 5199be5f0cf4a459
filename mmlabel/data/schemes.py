"""Tag schemes: how labelled spans become one tag per word and back, and which tag sequences are valid (the masks a
constrained Viterbi decoder uses).

- `collapsed5`: B-POS, B-NEU, B-NEG, I, O. The reference MABSA recipe's five tags: `I` continues the open span and
  takes its sentiment. Only for the sentiment labels POS, NEU, NEG.
- `bio`: B-<label>, I-<label> and O (7 tags for MABSA).
- `bioes`: B-, I-, E- (end), S- (single word) per label, and O.

Decoding is lenient: a tag that continues no open span (`O I`, `B-POS I-NEG`) is read as O; in `bioes` a span that
stops without its E- tag is closed where it stops.
"""
from dataclasses import dataclass

from mmlabel.data.example import SENTIMENTS, Span

OUTSIDE = "O"
SCHEMES = ("collapsed5", "bio", "bioes")


@dataclass
class TagScheme:
    """A tag set over `labels`, with `encode`, `decode` and the allowed starts and transitions of its tags."""

    name: str
    labels: list[str]
    tags: list[str]

    def encode(self, spans: list[Span], n_words: int) -> list[str]:
        """One tag per word for non-overlapping `spans` over `n_words` words."""
        tags = [OUTSIDE] * n_words
        for span in sorted(spans):
            self._check(span, tags, n_words)
            for index, tag in zip(range(span.start, span.end), self._span_tags(span)):
                tags[index] = tag
        return tags

    def decode(self, tags: list[str]) -> list[Span]:
        """The spans a tag sequence describes; tags that continue no open span are read as O."""
        spans: list[Span] = []
        start, label = None, None
        for index, tag in enumerate(tags):
            prefix, tag_label = _split(tag)
            if start is not None and not self._continues(prefix, tag_label, label):
                spans.append(Span(start, index, label))
                start, label = None, None
            if prefix in ("B", "S"):
                start, label = index, tag_label
            if prefix in ("E", "S") and start is not None:
                spans.append(Span(start, index + 1, label))
                start, label = None, None
        if start is not None:
            spans.append(Span(start, len(tags), label))
        return spans

    def allowed_start(self) -> list[bool]:
        """Whether each tag (in `tags` order) may open a sentence: continuation tags may not."""
        return [_split(tag)[0] not in ("I", "E") for tag in self.tags]

    def allowed_end(self) -> list[bool]:
        """Whether each tag may close a sentence (in `bioes` a span must end with E- or S-)."""
        if self.name != "bioes":
            return [True] * len(self.tags)
        return [_split(tag)[0] not in ("B", "I") for tag in self.tags]

    def allowed_transitions(self) -> list[list[bool]]:
        """`allowed[from][to]` over `tags`: False where `to` would continue a span that `from` does not leave open."""
        return [[self._allowed(before, after) for after in self.tags] for before in self.tags]

    def _allowed(self, before: str, after: str) -> bool:
        before_prefix, before_label = _split(before)
        after_prefix, after_label = _split(after)
        opens = before_prefix in ("B", "I")
        if after_prefix in ("I", "E"):
            return opens and (self.name == "collapsed5" or before_label == after_label)
        # In bioes an open span must be closed by I-/E- before anything else starts.
        return not (self.name == "bioes" and before_prefix in ("B", "I"))

    def _continues(self, prefix: str, tag_label: str | None, label: str | None) -> bool:
        if prefix not in ("I", "E"):
            return False
        return self.name == "collapsed5" or tag_label == label

    def _span_tags(self, span: Span) -> list[str]:
        length = span.end - span.start
        if self.name == "collapsed5":
            return [f"B-{span.label}"] + ["I"] * (length - 1)
        if self.name == "bio":
            return [f"B-{span.label}"] + [f"I-{span.label}"] * (length - 1)
        if length == 1:
            return [f"S-{span.label}"]
        return [f"B-{span.label}"] + [f"I-{span.label}"] * (length - 2) + [f"E-{span.label}"]

    def _check(self, span: Span, tags: list[str], n_words: int) -> None:
        if span.label not in self.labels:
            raise ValueError(f"label {span.label!r} is not in the {self.name} scheme's labels {self.labels}")
        if not 0 <= span.start < span.end <= n_words:
            raise ValueError(f"span {span} is outside a sentence of {n_words} words")
        if any(tag != OUTSIDE for tag in tags[span.start:span.end]):
            raise ValueError(f"span {span} overlaps another span: a tag scheme holds non-overlapping spans only")


def make_scheme(name: str, labels: list[str]) -> TagScheme:
    """The tag scheme `name` (collapsed5, bio, bioes) over `labels`; O is always tag 0."""
    labels = list(dict.fromkeys(labels))
    if name == "collapsed5":
        if not set(labels) <= set(SENTIMENTS):
            raise ValueError(f"collapsed5 is for the sentiments {', '.join(SENTIMENTS)}, not {labels}; use bio or bioes")
        return TagScheme(name, list(SENTIMENTS), [OUTSIDE, *(f"B-{label}" for label in SENTIMENTS), "I"])
    prefixes = {"bio": "BI", "bioes": "BIES"}.get(name)
    if prefixes is None:
        raise ValueError(f"unknown tag scheme {name!r}; available: {', '.join(SCHEMES)}")
    if not labels:
        raise ValueError(f"the {name} scheme needs at least one label")
    return TagScheme(name, labels, [OUTSIDE, *(f"{prefix}-{label}" for label in labels for prefix in prefixes)])


def _split(tag: str) -> tuple[str, str | None]:
    """("B", "POS") for "B-POS", ("I", None) for the collapsed "I", ("O", None) for "O"."""
    prefix, _, label = tag.partition("-")
    return prefix, label or None
