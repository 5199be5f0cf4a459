"""mmlabel-hf-vision: the image encoder `hf_vision`, any Hugging Face transformers vision model as patch tokens.

Registering imports no torch or transformers: the encoder class loads when a recipe first builds it, and its options
(`mmlabel_hf_vision.config`) load alone when a recipe is checked."""
from mmlabel import hookimpl, lazy

__version__ = "0.1.0"


@hookimpl
def register_image_encoders(register):
    register("hf_vision", lazy("mmlabel_hf_vision.encoder:HFVisionEncoder",
                               "any Hugging Face vision model (CLIP, SigLIP, DINOv2, ViT, ConvNeXt) as patch tokens",
                               config="mmlabel_hf_vision.config:HFVisionConfig"))
