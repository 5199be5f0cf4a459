"""Built-in fusion heads. Registration imports no torch: the classes load when a component is built."""
from mmlabel.hookspecs import hookimpl
from mmlabel.registry import lazy


@hookimpl
def register_fusion_heads(register):
    register("dtca", lazy("mmlabel.fusion.dtca:DTCAHead",
                          "DTCA: text-to-image cross-attention, MLP, LayerNorms, CRF over words"))
