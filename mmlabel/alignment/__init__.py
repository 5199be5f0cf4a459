"""Built-in token-patch alignment losses. Registration imports no torch: the classes load when a loss is built, and
their options (`mmlabel.alignment.configs`) load alone when a recipe is checked."""
from mmlabel.hookspecs import hookimpl
from mmlabel.registry import lazy

# name -> (class in mmlabel.alignment, its Config in mmlabel.alignment.configs, description)
LOSSES = {
    "emd": ("emd:EMDAlignment", "EMDConfig",
            "earth mover's distance between token and patch states, solved exactly (POT network simplex)"),
    "sinkhorn": ("sinkhorn:SinkhornAlignment", "SinkhornConfig",
                 "debiased Sinkhorn divergence between token and patch states, configurable blur"),
    "ipot": ("ipot:IPOTAlignment", "IPOTConfig",
             "inexact proximal point optimal transport, cosine cost (the DTCA authors' alignment)"),
    "mmd": ("mmd:MMDAlignment", "MMDConfig",
            "maximum mean discrepancy between token and patch states, Gaussian or energy kernel"),
    "contrastive": ("contrastive:ContrastiveAlignment", "ContrastiveConfig",
                    "InfoNCE between each post's pooled text and pooled image against the batch's others"),
    "none": ("none:NoAlignment", "NoAlignmentConfig", "no alignment loss (always zero)"),
}


@hookimpl
def register_alignment_losses(register):
    for name, (target, config, description) in LOSSES.items():
        register(name, lazy(f"mmlabel.alignment.{target}", description, config=f"mmlabel.alignment.configs:{config}"))
