"""Built-in image encoders. Registration imports no torch: the classes load when a component is built, and their
options (`mmlabel.image_encoders.configs`) load alone when a recipe is checked."""
from mmlabel.hookspecs import hookimpl
from mmlabel.registry import lazy


@hookimpl
def register_image_encoders(register):
    register("timm", lazy("mmlabel.image_encoders.timm_encoder:TimmImageEncoder",
                          "any timm model (ViT, Swin, DeiT, CNNs) as a sequence of patch tokens",
                          config="mmlabel.image_encoders.configs:TimmConfig"))
