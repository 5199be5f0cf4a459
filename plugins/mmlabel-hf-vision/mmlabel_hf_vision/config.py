"""The options of the `hf_vision` image encoder, apart from the encoder: importing them imports no torch or
transformers, so that `mmlabel recipe check` validates a recipe without loading the encoder."""
from typing import Any, Literal

from pydantic import Field

from mmlabel import ComponentConfig


class HFVisionConfig(ComponentConfig):
    model: str = Field(description="hub id (openai/clip-vit-base-patch16) or local directory of a checkpoint, or, "
                                   "with pretrained = false, a model type (clip_vision_model, siglip_vision_model, "
                                   "dinov2, vit, convnext)")
    pretrained: bool = Field(True, description="load the checkpoint's weights; false: its architecture with random "
                                               "weights")
    model_args: dict[str, Any] = Field(
        {}, description="config fields to override, e.g. {image_size = 64, hidden_size = 32, num_hidden_layers = 2}")
    processor: str | None = Field(
        None, description="hub id or directory of the image processor; default: the checkpoint's own, else the "
                          "family's settings at the config's image size")
    freeze: bool = Field(False, description="keep the encoder's weights fixed")
    cls_token: bool = Field(True, description="keep the class (and register) tokens before the patch tokens")
    resize: Literal["crop", "squash"] = Field(
        "crop", description="crop: the image processor's own resizing (CLIP, DINOv2, ConvNeXt centre-crop); "
                            "squash: resize the whole image to the model's input size, then the processor's "
                            "normalisation")
