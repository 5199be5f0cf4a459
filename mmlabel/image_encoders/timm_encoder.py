"""timm image encoders: any `timm.create_model` name (ViT, DeiT, Swin, CNNs) as a sequence of patch tokens, with the
image transform of that model's own data config (mean, std, size, interpolation), the image either centre-cropped as
that config says (`resize = "crop"`) or squashed whole to the model's input size (`"squash"`, what the DTCA authors'
code did: a wide tweet photo keeps both its edges)."""
import difflib
import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from mmlabel.errors import ComponentError
from mmlabel.configs import Configured
from mmlabel.image_encoders.configs import TimmConfig


class TimmImageEncoder(Configured, nn.Module):
    """A timm backbone mapping (batch, 3, H, W) pixels to (batch, patches, hidden) states and a (batch, patches) mask;
    a Swin or CNN feature map is flattened row by row into tokens."""

    Config = TimmConfig

    def __init__(self, config: TimmConfig | None = None, **options):
        super().__init__(config, **options)
        self.model = _create_model(self.config)
        self.hidden_size: int = self.model.num_features
        self.num_prefix_tokens: int = getattr(self.model, "num_prefix_tokens", 0) or 0
        data_config = _data_config(self.model, self.config.model_args)
        self.input_size: tuple[int, int, int] = tuple(data_config["input_size"])  # (3, height, width) the model expects
        self.transform: Callable = _transform(data_config, self.config.resize)
        # the same steps without the normalisation: timm's geometry, ending in uint8 (contracts.ImageEncoderPixels)
        self.pixel_transform: Callable = _transform(data_config, self.config.resize, normalize=False)
        self.pixel_signature: str = "timm " + "; ".join(repr(step) for step in self.pixel_transform.transforms)
        # what the float transform's ToTensor and Normalize do, done on the device (not saved with the weights)
        self.register_buffer("pixel_mean", torch.tensor(data_config["mean"], dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("pixel_std", torch.tensor(data_config["std"], dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        if self.config.freeze:
            self.model.requires_grad_(False)
        self._fused_attention: bool | None = None  # what timm's attention blocks use now; None: as timm built them

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, 3, H, W) -> states (batch, patches, hidden) and mask (batch, patches), True on every real patch.
        Pixels are `transform`'s (float, normalised) or `pixel_transform`'s (uint8), normalised here."""
        if pixel_values.dtype == torch.uint8:
            pixel_values = self.normalize(pixel_values)
        self._choose_attention(pixel_values.device)
        features = self.model.forward_features(pixel_values)
        if features.dim() == 4:
            if getattr(self.model, "output_fmt", "NCHW") == "NCHW":
                features = features.permute(0, 2, 3, 1)  # (batch, H', W', hidden)
            features = features.flatten(1, 2)  # (batch, H' * W', hidden)
        elif not self.config.cls_token and self.num_prefix_tokens:
            features = features[:, self.num_prefix_tokens:]
        mask = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
        return features, mask

    def normalize(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(batch, 3, H, W) uint8 -> float32 pixels as `transform` gives them: torchvision's ToTensor (/ 255) and
        Normalize ((x - mean) / std), the same float32 operations in the same order."""
        return pixel_values.float().div(255).sub(self.pixel_mean).div(self.pixel_std)

    def _choose_attention(self, device: torch.device) -> None:
        """Set timm's per-block `fused_attn` switch (ViT, DeiT, Swin) from the `attention` option and the device."""
        fused = self.config.attention == "sdpa" or (self.config.attention == "auto" and device.type != "cpu")
        if fused == self._fused_attention:
            return
        for module in self.model.modules():
            if hasattr(module, "fused_attn"):
                module.fused_attn = fused
        self._fused_attention = fused

    def export(self, directory: str | Path) -> dict[str, Any]:
        """Write the image transform's settings to `directory` (for the record); return the options that rebuild
        this architecture with no download (the weights come from the run)."""
        import json

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        settings = {"model": self.config.model, "input_size": list(self.input_size), "resize": self.config.resize,
                    "transform": repr(self.transform), "pixel_signature": self.pixel_signature}
        (directory / "transform.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        return {"model": self.config.model, "pretrained": False, "checkpoint_path": None, "freeze": self.config.freeze,
                "cls_token": self.config.cls_token, "model_args": self.config.model_args,
                "resize": self.config.resize, "attention": self.config.attention}


def _create_model(config: TimmConfig) -> nn.Module:
    import timm

    if config.checkpoint_path is not None and not Path(config.checkpoint_path).is_file():
        raise ComponentError(f"image_encoder.checkpoint_path: no such file: {config.checkpoint_path}")
    if ":" not in config.model and not timm.is_model(config.model):  # "hf-hub:..." names are resolved by timm
        close = difflib.get_close_matches(config.model, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(repr(name) for name in close)}?" if close else ""
        raise ComponentError(f"image_encoder.model: timm has no model {config.model!r}{hint}")
    pretrained = config.pretrained and config.checkpoint_path is None
    try:
        return timm.create_model(
            config.model, pretrained=pretrained, num_classes=0, checkpoint_path=config.checkpoint_path or "",
            **config.model_args,
        )
    except (OSError, RuntimeError) as error:
        if not pretrained:
            raise
        reason = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else type(error).__name__
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise ComponentError(
            f"image_encoder: cannot load timm's pretrained weights of {config.model!r}{offline}: {reason}. Download "
            f"them once and point HF_HOME at that cache with HF_HUB_OFFLINE=1, or give checkpoint_path (a local "
            f"file), or set pretrained = false for random weights"
        ) from None


def _data_config(model: nn.Module, model_args: dict[str, Any]) -> dict[str, Any]:
    """The model's own preprocessing (size, mean, std, interpolation, crop); `img_size` in `model_args` sets the size,
    which timm's pretrained config would otherwise keep at the pretrained resolution."""
    from timm.data import resolve_data_config

    overrides = {}
    if "img_size" in model_args:
        size = model_args["img_size"]
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        overrides["input_size"] = (3, height, width)
        overrides["crop_pct"] = 1.0
    return resolve_data_config(overrides, model=model)


def _transform(data_config: dict[str, Any], resize: str = "crop", normalize: bool = True) -> Callable:
    """PIL image -> (3, H, W) normalised float tensor, as the model was trained to see it (without `normalize`: the
    same geometry ending in a uint8 tensor); `squash` resizes the whole image to (H, W) instead of cropping its
    centre (timm's crop_mode "squash" with nothing cropped)."""
    from timm.data import create_transform

    if resize == "squash":
        data_config = {**data_config, "crop_mode": "squash", "crop_pct": 1.0}
    return create_transform(**data_config, is_training=False, normalize=normalize)
