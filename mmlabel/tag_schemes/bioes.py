"""BIOES (also BILOU; Ratinov and Roth, "Design Challenges and Misconceptions in Named Entity Recognition", 2009):
B- begins, I- continues, E- ends a span of several words, S- is a span of one word, O is outside; 4 x labels + 1 tags.

A span must be closed by E- before anything else starts, and a sentence may not end inside a span: the end mask
(`allowed_end`) forbids B- and I- as the last tag."""
from mmlabel.data.example import Span
from mmlabel.tag_schemes.base import TagScheme, split_tag


class BIOESScheme(TagScheme):
    """B-, I-, E-, S- per label and O, with the end of every span spelt out."""

    class Config(TagScheme.Config):
        pass

    name = "bioes"
    prefixes = "BIES"

    def span_tags(self, span: Span) -> list[str]:
        length = span.end - span.start
        if length == 1:
            return [f"S-{span.label}"]
        return [f"B-{span.label}"] + [f"I-{span.label}"] * (length - 2) + [f"E-{span.label}"]

    def allowed(self, before: str, after: str) -> bool:
        if split_tag(after)[0] not in ("I", "E") and split_tag(before)[0] in ("B", "I"):
            return False  # an open span must be closed by I-/E- before anything else starts
        return super().allowed(before, after)

    def allowed_end(self) -> list[bool]:
        """A sentence may not end inside a span: B- and I- may not be the last tag."""
        return [split_tag(tag)[0] not in ("B", "I") for tag in self.tags]
