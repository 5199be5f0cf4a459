"""The options of the built-in image encoders: importing them imports no torch, so a recipe is checked without loading
an encoder (`mmlabel recipe check`)."""
from typing import Any, Literal

from pydantic import Field

from mmlabel.configs import ComponentConfig


class TimmConfig(ComponentConfig):
    model: str = Field("vit_base_patch16_224", description="timm model name")
    pretrained: bool = Field(True, description="load timm's pretrained weights (from the hub or its cache)")
    checkpoint_path: str | None = Field(None, description="local weights file to load instead (timm checkpoint)")
    freeze: bool = Field(False, description="keep the encoder's weights fixed")
    cls_token: bool = Field(True, description="keep the class (and distillation, register) tokens of a ViT/DeiT")
    model_args: dict[str, Any] = Field(
        {}, description="keyword arguments of timm.create_model, e.g. {img_size = 32, depth = 2, embed_dim = 64}")
    resize: Literal["crop", "squash"] = Field(
        "crop", description="crop: resize the short side and centre-crop, as the model's data config says; squash: "
                            "resize the whole image to the input size (aspect ratio not kept, nothing cut off)")
    attention: Literal["auto", "sdpa", "eager"] = Field(
        "auto", description="attention kernel: sdpa (PyTorch's fused kernel), eager (written out) or auto: eager on "
                            "a CPU, where it measured faster (docs/performance.md), sdpa elsewhere")
