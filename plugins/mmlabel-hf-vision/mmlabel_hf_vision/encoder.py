"""Hugging Face vision encoders: the vision tower of any transformers checkpoint (CLIP and SigLIP vision towers,
DINOv2, ViT, ConvNeXt, ...) as a sequence of patch tokens, with that checkpoint's own image processor.

The options mirror the built-in `timm` encoder's (`model`, `pretrained`, `model_args`, `freeze`, `cls_token`,
`resize`), so
that `--set image_encoder.name=hf_vision --set image_encoder.model=...` turns a timm recipe into this encoder:

    model = "openai/clip-vit-base-patch16"                  # hub id or local directory: weights, config, processor
    model = "clip_vision_model", pretrained = false,        # a model type: random weights from its default config
    model_args = {image_size = 64, hidden_size = 32, ...}   # config fields to override
"""
import difflib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmlabel import ComponentError, Configured
from mmlabel_hf_vision.config import HFVisionConfig

# Where a family's image processor class defaults differ from the statistics its published checkpoints use
# (facebook/dinov2-*, facebook/convnext-*), a randomly initialised model gets the checkpoints' values.
IMAGENET_NORMALISATION = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
FAMILY_NORMALISATION = {"dinov2": IMAGENET_NORMALISATION, "convnext": IMAGENET_NORMALISATION}

# A timm recipe's `model_args` use timm's names; the error that meets them names the transformers field.
TIMM_NAMES = {"img_size": "image_size", "embed_dim": "hidden_size", "depth": "num_hidden_layers",
              "num_heads": "num_attention_heads", "in_chans": "num_channels"}


class HFVisionEncoder(Configured, nn.Module):
    """A transformers vision model mapping (batch, 3, H, W) pixels to (batch, patches, hidden) states and a
    (batch, patches) mask; a CNN's feature map (ConvNeXt) is flattened row by row into tokens."""

    Config = HFVisionConfig

    # What mmlabel's conformance kit builds (`mmlabel.testing.check_component`, `mmlabel plugins check`): a random
    # one-layer CLIP vision tower on 32-pixel images.
    tiny_options = {"model": "clip_vision_model", "pretrained": False,
                    "model_args": {"image_size": 32, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 1,
                                   "num_attention_heads": 2, "intermediate_size": 64}}

    def __init__(self, config: HFVisionConfig | None = None, **options):
        super().__init__(config, **options)
        vision_config = _vision_config(self.config)
        self.model = _create_model(self.config, vision_config)
        self.hidden_size: int = getattr(vision_config, "hidden_size", None) or vision_config.hidden_sizes[-1]
        self.processor = _image_processor(self.config, vision_config)
        self.input_size: tuple[int, int, int] = ProcessorTransform(self.processor).output_size()  # (3, height, width)
        squash_to = self.input_size[1:] if self.config.resize == "squash" else None
        self.transform = ProcessorTransform(self.processor, squash_to)
        # the processor's geometry alone, as uint8, and its normalisation on the device (mmlabel's image store:
        # contracts.ImageEncoderPixels)
        self.pixel_transform = ProcessorTransform(self.processor, squash_to, geometry_only=True)
        self.pixel_signature: str = processor_signature(self.processor, squash_to)
        mean, std, self._pixel_scale = _normalisation(self.processor)
        self.register_buffer("pixel_mean", mean, persistent=False)
        self.register_buffer("pixel_std", std, persistent=False)
        if self.config.freeze:
            self.model.requires_grad_(False)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, 3, H, W) -> states (batch, patches, hidden) and mask (batch, patches), True on every real patch.
        Pixels are `transform`'s (float, normalised) or `pixel_transform`'s (uint8), normalised here."""
        if pixel_values.dtype == torch.uint8:
            pixel_values = self.normalize(pixel_values)
        states = self.model(pixel_values=pixel_values).last_hidden_state
        if states.dim() == 4:  # a CNN's (batch, hidden, H', W') feature map
            states = states.flatten(2).transpose(1, 2)  # (batch, H' * W', hidden)
        elif not self.config.cls_token:
            states = states[:, self._prefix_tokens(states, pixel_values):]
        mask = torch.ones(states.shape[:2], dtype=torch.bool, device=states.device)
        return states, mask

    def normalize(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(batch, 3, H, W) uint8 -> float32 pixels as the processor's rescaling and normalisation give them (with
        both, as its torchvision backend fuses them: (x - mean / factor) / (std / factor))."""
        pixels = pixel_values.float()
        if self._pixel_scale is not None:
            pixels = pixels * self._pixel_scale
        return pixels.sub(self.pixel_mean).div(self.pixel_std)

    def export(self, directory: str | Path) -> dict[str, Any]:
        """Write the architecture (config.json, no weights) and the image processor to `directory`; return the options
        that rebuild this encoder from there with no download (the weights come from the run)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.config.save_pretrained(str(directory))
        self.processor.save_pretrained(str(directory))
        return {"model": str(directory.resolve()), "pretrained": False, "model_args": {}, "processor": None,
                "freeze": self.config.freeze, "cls_token": self.config.cls_token, "resize": self.config.resize}

    def _prefix_tokens(self, states: torch.Tensor, pixel_values: torch.Tensor) -> int:
        """How many class and register tokens come before the patch tokens (CLIP, ViT: 1; DINOv2 with registers:
        1 + registers; SigLIP: 0)."""
        patch = getattr(self.model.config, "patch_size", None)
        if patch is None:
            return 0
        patch_height, patch_width = (patch, patch) if isinstance(patch, int) else patch
        patches = (pixel_values.shape[-2] // patch_height) * (pixel_values.shape[-1] // patch_width)
        return states.shape[1] - patches


class ProcessorTransform:
    """PIL RGB image -> (3, H, W) float tensor through the image processor (picklable, for data-loader workers). With
    `squash_to` (height, width) the whole image is resized to that size first (bicubic) and the processor only
    rescales and normalises it: nothing is cropped, whatever the family's processor would do. With `geometry_only`,
    the processor neither rescales nor normalises, and the pixels come as uint8."""

    def __init__(self, processor, squash_to: tuple[int, int] | None = None, geometry_only: bool = False):
        self.processor = processor
        self.squash_to = tuple(squash_to) if squash_to is not None else None
        self.geometry_only = geometry_only

    def __call__(self, image) -> torch.Tensor:
        options = {"do_rescale": False, "do_normalize": False} if self.geometry_only else {}
        if self.squash_to is not None:
            from PIL import Image

            height, width = self.squash_to
            image = image.resize((width, height), Image.Resampling.BICUBIC)
            options.update(do_resize=False, do_center_crop=False)
        pixels = self.processor(images=image, return_tensors="pt", **options)["pixel_values"][0]
        if self.geometry_only and pixels.dtype != torch.uint8:  # a backend that resizes in floats
            pixels = pixels.round().clamp(0, 255).to(torch.uint8)
        return pixels

    def output_size(self) -> tuple[int, int, int]:
        from PIL import Image

        return tuple(self(Image.new("RGB", (320, 240))).shape)

    def __repr__(self) -> str:
        squash = f", squash_to={self.squash_to}" if self.squash_to is not None else ""
        geometry = ", geometry_only=True" if self.geometry_only else ""
        return f"ProcessorTransform({self.processor!r}{squash}{geometry})"


# The processor settings that rescale and normalise: left out of the geometry's signature, done by `normalize`.
NORMALISATION_KEYS = ("do_rescale", "rescale_factor", "do_normalize", "image_mean", "image_std")


def processor_signature(processor, squash_to: tuple[int, int] | None) -> str:
    """The geometry of `ProcessorTransform(processor, squash_to, geometry_only=True)`, as one line: the processor's
    settings but its normalisation (size, crop, resampling, ...), and the squash size."""
    import json

    settings = {key: value for key, value in processor.to_dict().items() if key not in NORMALISATION_KEYS}
    settings["squash_to"] = list(squash_to) if squash_to is not None else None
    return "hf_vision " + json.dumps(settings, sort_keys=True, default=str)


def _normalisation(processor) -> tuple[torch.Tensor, torch.Tensor, float | None]:
    """(mean, std) as (1, 3, 1, 1) float32 tensors and the rescaling factor left to apply first (None where it is
    fused into them), so that `(x * factor - mean) / std` is the processor's own arithmetic."""
    rescale = bool(getattr(processor, "do_rescale", False))
    factor = float(getattr(processor, "rescale_factor", 1 / 255))
    if getattr(processor, "do_normalize", False):
        mean, std = (torch.tensor(_per_channel(getattr(processor, key)), dtype=torch.float32)
                     for key in ("image_mean", "image_std"))
        if rescale:  # transformers' fused form: the mean and std scaled by 1 / factor, then one normalisation
            return (mean * (1.0 / factor)).view(1, 3, 1, 1), (std * (1.0 / factor)).view(1, 3, 1, 1), None
        return mean.view(1, 3, 1, 1), std.view(1, 3, 1, 1), None
    zeros, ones = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    return zeros, ones, factor if rescale else None


def _per_channel(value) -> list[float]:
    values = [float(value)] * 3 if isinstance(value, (int, float)) else [float(item) for item in value]
    return values * 3 if len(values) == 1 else values


def _vision_config(config: HFVisionConfig):
    """The vision tower's transformers config (a CLIP or SigLIP checkpoint's `vision_config`), with `model_args`."""
    from transformers import AutoConfig

    if _is_model_type(config.model):
        if config.pretrained:
            raise ComponentError(f"image_encoder.model: {config.model!r} is a model type, which has no weights: set "
                                 f"pretrained = false for a random {config.model} model, or give a hub id or directory")
        _check_model_args(config.model_args, AutoConfig.for_model(config.model))
        return AutoConfig.for_model(config.model, **config.model_args)
    try:
        loaded = AutoConfig.from_pretrained(_expand(config.model))
    except (OSError, ValueError) as error:
        raise ComponentError(_missing_message("config", config.model, error)) from None
    vision_config = loaded.vision_config if getattr(loaded, "vision_config", None) is not None else loaded
    _check_model_args(config.model_args, vision_config)
    for key, value in config.model_args.items():  # as transformers' from_pretrained(**kwargs) sets them
        setattr(vision_config, key, value)
    return vision_config


def _check_model_args(model_args: dict[str, Any], vision_config) -> None:
    """transformers keeps unknown config keys silently; a misspelt (or timm-named) one is an error here."""
    for key in model_args:
        if not hasattr(vision_config, key):
            raise ComponentError(f"image_encoder.model_args.{key}: {vision_config.model_type} has no config field "
                                 f"{key!r}{_field_hint(key, vision_config)}")


def _create_model(config: HFVisionConfig, vision_config) -> nn.Module:
    from transformers import AutoModel

    try:
        if not config.pretrained:
            return AutoModel.from_config(vision_config)
        return AutoModel.from_pretrained(_expand(config.model), config=vision_config)
    except ValueError as error:  # a config with no base model class in transformers
        raise ComponentError(f"image_encoder.model: transformers has no vision model for {vision_config.model_type!r}: "
                             f"{str(error).splitlines()[0]}") from None
    except OSError as error:
        raise ComponentError(_missing_message("weights", config.model, error)) from None
    except RuntimeError as error:  # weights of another shape than the config with `model_args` describes
        reason = str(error).strip().splitlines()[0].rstrip(":.")
        raise ComponentError(f"image_encoder.model_args: the weights of {config.model!r} do not fit the architecture "
                             f"{dict(config.model_args)} describes: {reason}") from None


def _image_processor(config: HFVisionConfig, vision_config):
    """The checkpoint's own image processor (or the one `processor` names); with none saved, the family's processor
    class sized to the config's image size, normalised as the family's published checkpoints are."""
    from transformers import AutoImageProcessor

    if config.processor is not None:
        try:
            return AutoImageProcessor.from_pretrained(_expand(config.processor))
        except (OSError, ValueError) as error:
            raise ComponentError(_missing_message("image processor", config.processor, error, key="processor")) from None
    if not _is_model_type(config.model):
        try:
            return AutoImageProcessor.from_pretrained(_expand(config.model))
        except OSError:
            pass  # the checkpoint saved no processor settings: the family's, below
    return _family_processor(vision_config)


def _family_processor(vision_config):
    processor_class, family = _family_processor_class(vision_config.model_type)
    options = dict(FAMILY_NORMALISATION.get(family, {}))
    size = getattr(vision_config, "image_size", None)
    if size:
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        default = processor_class()
        if _size_field(default.size, "shortest_edge") is not None:
            options["size"] = {"shortest_edge": min(height, width)}
            if getattr(default, "do_center_crop", False) and getattr(default, "crop_size", None) is not None:
                options["crop_size"] = {"height": height, "width": width}
        else:
            options["size"] = {"height": height, "width": width}
    return processor_class(**options)


def _family_processor_class(model_type: str):
    """The image processor class of `model_type`'s family (clip_vision_model -> clip, dinov2_with_registers ->
    dinov2) and that family's name."""
    import transformers
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES

    for family in (model_type, model_type.removesuffix("_vision_model"), model_type.split("_")[0]):
        names = IMAGE_PROCESSOR_MAPPING_NAMES.get(family)
        if names:
            # transformers 5 maps a family to {backend: class name}, 4 to (slow, fast)
            candidates = [names.get("torchvision"), names.get("pil")] if isinstance(names, dict) else list(names)
            name = next(candidate for candidate in candidates if candidate)
            return getattr(transformers, name), family
    raise ComponentError(f"image_encoder.processor: transformers knows no image processor for {model_type!r}; give "
                         f"`processor` (the hub id or directory of one)")


def _size_field(size, key: str):
    return size.get(key) if isinstance(size, dict) else getattr(size, key, None)


def _is_model_type(name: str) -> bool:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return name in CONFIG_MAPPING_NAMES and not Path(name).expanduser().is_dir()


def _expand(source: str) -> str:
    expanded = Path(source).expanduser()
    return str(expanded) if expanded.exists() else source


def _field_hint(key: str, vision_config) -> str:
    if key in TIMM_NAMES and hasattr(vision_config, TIMM_NAMES[key]):
        return f" (timm's {key} is {TIMM_NAMES[key]} here)"
    close = difflib.get_close_matches(key, vision_config.to_dict(), n=3)
    return f"; did you mean {', '.join(repr(name) for name in close)}?" if close else ""


def _missing_message(what: str, source: str, error: Exception, key: str = "model") -> str:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    reason = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else type(error).__name__
    offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
    close = difflib.get_close_matches(source, CONFIG_MAPPING_NAMES, n=3)
    types = f"; model types like yours: {', '.join(close)}" if close else ""
    if "/" not in source and not Path(source).expanduser().exists():  # a timm name left over from a timm recipe?
        types += "; hub ids look like \"openai/clip-vit-base-patch16\""
    return (f"image_encoder.{key}: cannot load the {what} of {source!r}{offline}: {reason}. Give a local directory, "
            f"or download it once and point HF_HOME at that cache with HF_HUB_OFFLINE=1, or use a model type such as "
            f"\"clip_vision_model\" with pretrained = false for random weights{types}")

