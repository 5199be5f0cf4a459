"""Built-in fusion heads. Registration imports no torch: the classes load when a component is built, and their
options (`mmlabel.fusion.configs`) load alone when a recipe is checked."""
from mmlabel.hookspecs import hookimpl
from mmlabel.registry import lazy

# name -> (class in mmlabel.fusion, its Config in mmlabel.fusion.configs, description)
HEADS = {
    "dtca": ("dtca:DTCAHead", "DTCAConfig", "DTCA: text-to-image cross-attention, MLP, LayerNorms, CRF over words"),
    "text": ("text:TextHead", "TextConfig",
             "text only: a linear layer over each word's text state, CRF; the image is ignored"),
    "concat": ("concat:ConcatHead", "ConcatConfig",
               "late fusion: pooled image vector (cls or mean) concatenated to every word, MLP, CRF"),
    "gated": ("gated:GatedHead", "GatedConfig",
              "UMT's visual gate: word-to-patch attention let in by a per-word sigmoid gate, CRF"),
    "prefix": ("prefix:PrefixHead", "PrefixConfig",
               "early fusion (HVPNeT-style): patches as key/value prefixes of every text layer, CRF"),
}


@hookimpl
def register_fusion_heads(register):
    for name, (target, config, description) in HEADS.items():
        register(name, lazy(f"mmlabel.fusion.{target}", description, config=f"mmlabel.fusion.configs:{config}"))
