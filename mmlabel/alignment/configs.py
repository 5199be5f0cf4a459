"""The options of the built-in alignment losses: importing them imports no torch, so a recipe is checked without
loading a loss (`mmlabel recipe check`)."""
from typing import Literal

from pydantic import Field

from mmlabel.configs import ComponentConfig

COST_DESCRIPTION = ("token-patch cost of the L2-normalised states: mse = |x - y|^2 / dim = 2 (1 - cos) / dim (Eq. 15 "
                    "as printed); cosine = 1 - cos (the authors' code; dim / 2 times larger)")


class EMDConfig(ComponentConfig):
    solver: Literal["exact", "sinkhorn"] = Field(
        "exact", description="exact: POT's network simplex, one problem per example; sinkhorn: GeomLoss within 2%")
    cost: Literal["mse", "cosine"] = Field("mse", description=COST_DESCRIPTION)
    threads: int = Field(0, ge=0, description="threads solving a batch's problems at once (0: one per core)")
    # Used by solver = "sinkhorn" only. Measured against POT's exact `ot.emd2` (tests/test_alignment.py): the
    # error comes from Sinkhorn stopping once epsilon reaches blur**2, so a slow epsilon schedule (scaling 0.995,
    # ~1000 iterations) brings it under 2%; at scaling 0.9 it is up to 35%. Debiasing is unneeded at this blur.
    blur: float = Field(0.01, gt=0, description="sinkhorn solver: entropic blur on the unit sphere")
    scaling: float = Field(0.995, gt=0, lt=1, description="sinkhorn solver: epsilon-scaling ratio")
    debias: bool = Field(False, description="sinkhorn solver: Sinkhorn divergence instead of entropic OT")


class SinkhornConfig(ComponentConfig):
    blur: float = Field(0.05, gt=0, description="entropic blur on the unit sphere (epsilon = blur**2); smaller is closer to EMD")
    scaling: float = Field(0.5, gt=0, lt=1, description="epsilon-scaling ratio; closer to 1 is slower and more exact")
    debias: bool = Field(True, description="Sinkhorn divergence (removes the entropic bias) instead of entropic OT")
    cost: Literal["mse", "cosine"] = Field("mse", description=COST_DESCRIPTION)


class IPOTConfig(ComponentConfig):
    beta: float = Field(0.5, gt=0, description="proximal step size: the entropic weight of each proximal problem "
                                               "(smaller converges in fewer iterations)")
    iterations: int = Field(50, ge=1, description="outer proximal point iterations")
    inner_steps: int = Field(1, ge=1, description="scaling updates of each side per outer iteration")
    cost: Literal["mse", "cosine"] = Field("cosine", description=COST_DESCRIPTION)


class ContrastiveConfig(ComponentConfig):
    temperature: float = Field(0.07, gt=0, description="divides the cosine similarities (CLIP's initial value)")
    symmetric: bool = Field(True, description="average the text -> image and image -> text losses (CLIP); "
                                              "false: text -> image only")


class NoAlignmentConfig(ComponentConfig):
    pass


class MMDConfig(ComponentConfig):
    kernel: Literal["gaussian", "energy"] = Field(
        "gaussian", description="gaussian: exp(-|x - y|^2 / (2 blur^2)); energy: -|x - y| (blur unused)")
    blur: float = Field(0.5, gt=0, description="gaussian kernel: its width on the unit sphere (distances are at "
                                               "most 2)")
