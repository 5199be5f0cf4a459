"""The options of the built-in fusion heads: importing them imports no torch, so a recipe is checked without loading
a head (`mmlabel recipe check`)."""
from typing import Literal

from pydantic import Field

from mmlabel.configs import ComponentConfig


class CRFHeadConfig(ComponentConfig):
    """Options every CRF head has (`mmlabel.fusion.base.CRFHead`)."""

    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the fused word states before the emissions")
    constrained: bool = Field(True, description="forbid the tag scheme's invalid starts, transitions and ends "
                                                "(start -> I, O -> I, B- -> end in bioes) in decoding")


class DTCAConfig(ComponentConfig):
    heads: int = Field(8, ge=1, description="attention heads of the text-to-image cross-attention")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on attention weights, MLP and fused states")
    mlp_ratio: float = Field(4.0, gt=0, description="MLP hidden size as a multiple of the text hidden size")
    constrained: bool = Field(True, description="forbid the tag scheme's invalid starts, transitions and ends "
                                                "(start -> I, O -> I, B- -> end in bioes) in decoding")


class ConcatConfig(CRFHeadConfig):
    pool: Literal["cls", "mean"] = Field(
        "mean", description="the image vector: `cls`, the first patch state (a ViT's class token: keep the image "
                            "encoder's `cls_token = true`), or `mean`, the mean of the real patches")
    mlp_ratio: float = Field(1.0, gt=0, description="MLP hidden size as a multiple of the text hidden size")


class GatedConfig(CRFHeadConfig):
    heads: int = Field(8, ge=1, description="attention heads of the word-to-patch cross-attention")
    attention_dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the cross-attention weights")


class PrefixConfig(CRFHeadConfig):
    pass


class TextConfig(CRFHeadConfig):
    pass
