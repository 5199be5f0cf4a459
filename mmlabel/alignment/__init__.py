"""Built-in token-patch alignment losses. Registration imports no torch: the classes load when a loss is built."""
from mmlabel.hookspecs import hookimpl
from mmlabel.registry import lazy


@hookimpl
def register_alignment_losses(register):
    register("emd", lazy("mmlabel.alignment.emd:EMDAlignment",
                         "earth mover's distance between token and patch states, solved exactly (POT network simplex)"))
    register("sinkhorn", lazy("mmlabel.alignment.sinkhorn:SinkhornAlignment",
                              "debiased Sinkhorn divergence between token and patch states, configurable blur"))
    register("ipot", lazy("mmlabel.alignment.ipot:IPOTAlignment",
                          "inexact proximal point optimal transport, cosine cost (the DTCA authors' alignment)"))
    register("mmd", lazy("mmlabel.alignment.mmd:MMDAlignment",
                         "maximum mean discrepancy between token and patch states, Gaussian or energy kernel"))
    register("contrastive", lazy("mmlabel.alignment.contrastive:ContrastiveAlignment",
                                 "InfoNCE between each post's pooled text and pooled image against the batch's others"))
    register("none", lazy("mmlabel.alignment.none:NoAlignment", "no alignment loss (always zero)"))
