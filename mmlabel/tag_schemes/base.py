"""What every tag scheme shares: spans -> one tag per word -> spans, and the start, end and transition masks that a
constrained Viterbi decoder uses. A scheme names its tags and says how a span is spelt and continued; the rest is here.

Decoding is lenient: a tag that continues no open span (`O I`, `B-POS I-NEG`) is read as O, and a span that stops
without its closing tag (BIOES's E-) is closed where it stops.
"""
from mmlabel.data.example import Span
from mmlabel.errors import ComponentError
from mmlabel.configs import ComponentConfig, Configured

OUTSIDE = "O"


class TagScheme(Configured):
    """A tag set over `labels` (tag 0 is always O), with `encode`, `decode` and the allowed starts, ends and
    transitions of its tags. Subclasses set `name` and `prefixes` and may override `span_tags`, `continues` and the
    masks. Built through the registry: `build("tag_scheme", "bio", labels=["PER", "LOC"])`."""

    class Config(ComponentConfig):
        pass

    name = ""
    prefixes = "BI"  # the tag prefixes of each label, in the order the tags list them

    def __init__(self, config: ComponentConfig | None = None, *, labels: list[str], **options):
        super().__init__(config, **options)
        self.labels = list(dict.fromkeys(labels))
        if not self.labels:
            raise ComponentError(f"tag_scheme {self.name}: needs at least one label (the training split has no spans)")
        self.tags = self.make_tags()

    def make_tags(self) -> list[str]:
        return [OUTSIDE, *(f"{prefix}-{label}" for label in self.labels for prefix in self.prefixes)]

    def encode(self, spans: list[Span], n_words: int) -> list[str]:
        """One tag per word for non-overlapping `spans` over `n_words` words."""
        tags = [OUTSIDE] * n_words
        for span in sorted(spans):
            self._check(span, tags, n_words)
            for index, tag in zip(range(span.start, span.end), self.span_tags(span)):
                tags[index] = tag
        return tags

    def decode(self, tags: list[str]) -> list[Span]:
        """The spans a tag sequence describes; tags that continue no open span are read as O."""
        spans: list[Span] = []
        start, label = None, None
        for index, tag in enumerate(tags):
            prefix, tag_label = split_tag(tag)
            if start is not None and not self.continues(prefix, tag_label, label):
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
        """Whether each tag (in `tags` order) may open a sentence: continuation tags (I-, E-) may not."""
        return [split_tag(tag)[0] not in ("I", "E") for tag in self.tags]

    def allowed_end(self) -> list[bool]:
        """Whether each tag may close a sentence: any tag, unless the scheme spells a span's end (BIOES)."""
        return [True] * len(self.tags)

    def allowed_transitions(self) -> list[list[bool]]:
        """`allowed[from][to]` over `tags`: False where `to` would continue a span that `from` does not leave open."""
        return [[self.allowed(before, after) for after in self.tags] for before in self.tags]

    def allowed(self, before: str, after: str) -> bool:
        """Whether tag `after` may follow tag `before`."""
        before_prefix, before_label = split_tag(before)
        after_prefix, after_label = split_tag(after)
        if after_prefix in ("I", "E"):
            return before_prefix in ("B", "I") and self.continues(after_prefix, after_label, before_label)
        return True

    def continues(self, prefix: str, tag_label: str | None, open_label: str | None) -> bool:
        """Whether a tag with `prefix` and `tag_label` continues an open span of `open_label`."""
        return prefix in ("I", "E") and tag_label == open_label

    def span_tags(self, span: Span) -> list[str]:
        """The tags of the words of one span."""
        return [f"B-{span.label}"] + [f"I-{span.label}"] * (span.end - span.start - 1)

    def _check(self, span: Span, tags: list[str], n_words: int) -> None:
        if span.label not in self.labels:
            raise ValueError(f"label {span.label!r} is not in the {self.name} scheme's labels {self.labels}")
        if not 0 <= span.start < span.end <= n_words:
            raise ValueError(f"span {span} is outside a sentence of {n_words} words")
        if any(tag != OUTSIDE for tag in tags[span.start:span.end]):
            raise ValueError(f"span {span} overlaps another span: a tag scheme holds non-overlapping spans only")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(labels={self.labels})"


def split_tag(tag: str) -> tuple[str, str | None]:
    """("B", "POS") for "B-POS", ("I", None) for the collapsed "I", ("O", None) for "O"."""
    prefix, _, label = tag.partition("-")
    return prefix, label or None
