"""BIO (Ramshaw and Marcus, "Text Chunking using Transformation-Based Learning", 1995, in its IOB2 form): B-<label>
opens a span, I-<label> continues it, O is outside; 2 x labels + 1 tags (7 for the three sentiments)."""
from mmlabel.tag_schemes.base import TagScheme


class BIOScheme(TagScheme):
    """B-<label>, I-<label> and O: an I- must continue a span of its own label."""

    class Config(TagScheme.Config):
        pass

    name = "bio"
    prefixes = "BI"
