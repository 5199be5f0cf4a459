"""The collapsed five-tag scheme of the DTCA reference code (Yu et al., AACL 2022): B-POS, B-NEU, B-NEG, I and O.
`I` continues the open span and takes its sentiment, so the tag set does not grow with the labels; it is only for
the sentiment labels POS, NEU and NEG (entity types need `bio` or `bioes`)."""
from mmlabel.data.example import SENTIMENTS, Span
from mmlabel.errors import ComponentError
from mmlabel.tag_schemes.base import OUTSIDE, TagScheme


class Collapsed5Scheme(TagScheme):
    """O, B-POS, B-NEU, B-NEG and a label-less I: the reference MABSA recipe's tags."""

    class Config(TagScheme.Config):
        pass

    name = "collapsed5"

    def __init__(self, config: TagScheme.Config | None = None, *, labels: list[str], **options):
        if not set(labels) <= set(SENTIMENTS):
            raise ComponentError(f"tag_scheme collapsed5 is for the sentiments {', '.join(SENTIMENTS)}, not "
                                 f"{sorted(set(labels))}; use bio or bioes")
        super().__init__(config, labels=list(SENTIMENTS), **options)

    def make_tags(self) -> list[str]:
        return [OUTSIDE, *(f"B-{label}" for label in self.labels), "I"]

    def continues(self, prefix: str, tag_label: str | None, open_label: str | None) -> bool:
        return prefix == "I"

    def span_tags(self, span: Span) -> list[str]:
        return [f"B-{span.label}"] + ["I"] * (span.end - span.start - 1)
