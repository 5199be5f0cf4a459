"""Built-in fusion heads. Registration imports no torch: the classes load when a component is built."""
from mmlabel.hookspecs import hookimpl
from mmlabel.registry import lazy


@hookimpl
def register_fusion_heads(register):
    register("dtca", lazy("mmlabel.fusion.dtca:DTCAHead",
                          "DTCA: text-to-image cross-attention, MLP, LayerNorms, CRF over words"))
    register("text", lazy("mmlabel.fusion.text:TextHead",
                          "text only: a linear layer over each word's text state, CRF; the image is ignored"))
    register("concat", lazy("mmlabel.fusion.concat:ConcatHead",
                            "late fusion: pooled image vector (cls or mean) concatenated to every word, MLP, CRF"))
    register("gated", lazy("mmlabel.fusion.gated:GatedHead",
                           "UMT's visual gate: word-to-patch attention let in by a per-word sigmoid gate, CRF"))
    register("prefix", lazy("mmlabel.fusion.prefix:PrefixHead",
                            "early fusion (HVPNeT-style): patches as key/value prefixes of every text layer, CRF"))
