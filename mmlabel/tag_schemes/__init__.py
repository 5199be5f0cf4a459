"""The built-in tag schemes, registered like any plugin's: `collapsed5`, `bio` and `bioes`.

A tag scheme is built with the labels of the training split: `build("tag_scheme", "bio", labels=[...])`;
see `mmlabel.tag_schemes.base.TagScheme` for what it provides."""
from mmlabel.hookspecs import hookimpl
from mmlabel.registry import lazy

TAG_SCHEMES = {
    "collapsed5": ("mmlabel.tag_schemes.collapsed5:Collapsed5Scheme",
                   "O, B-POS/NEU/NEG and a label-less I: the DTCA reference's five tags (sentiments only)."),
    "bio": ("mmlabel.tag_schemes.bio:BIOScheme", "B-<label>, I-<label> and O."),
    "bioes": ("mmlabel.tag_schemes.bioes:BIOESScheme", "B-, I-, E- (end), S- (single word) per label, and O."),
}


@hookimpl
def register_tag_schemes(register) -> None:
    for name, (target, description) in TAG_SCHEMES.items():
        register(name, lazy(target, description))
