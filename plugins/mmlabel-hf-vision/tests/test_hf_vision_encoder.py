"""The `hf_vision` encoder honours mmlabel's image encoder contract for every family, with tiny random configs:
(batch, patches, hidden) states and a bool mask, the family's own preprocessing, and an export that rebuilds the
same model offline."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mmlabel import ComponentError
from mmlabel_hf_vision.encoder import HFVisionEncoder

VIT_SIZES = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
TINY = {
    "clip_vision_model": {**VIT_SIZES, "intermediate_size": 64},
    "siglip_vision_model": {**VIT_SIZES, "intermediate_size": 64},
    "dinov2": {**VIT_SIZES, "mlp_ratio": 2},
    "vit": {**VIT_SIZES, "intermediate_size": 64},
    "dinov2_with_registers": {**VIT_SIZES, "mlp_ratio": 2, "num_register_tokens": 2},
    "convnext": {"image_size": 32, "num_stages": 2, "hidden_sizes": [8, 16], "depths": [1, 1]},
}
# class + register tokens before the 4 x 4 = 16 patch tokens of a 32-pixel image in 8-pixel patches
PREFIX = {"clip_vision_model": 1, "siglip_vision_model": 0, "dinov2": 1, "vit": 1, "dinov2_with_registers": 3}
# the first channel's mean and std each family's published checkpoints normalise with
CHANNEL_0 = {"clip_vision_model": (0.48145466, 0.26862954), "siglip_vision_model": (0.5, 0.5),
             "dinov2": (0.485, 0.229), "vit": (0.5, 0.5), "dinov2_with_registers": (0.485, 0.229),
             "convnext": (0.485, 0.229)}
GREY = Image.fromarray(np.full((50, 70, 3), 200, dtype=np.uint8))


def tiny(model_type: str, **options) -> HFVisionEncoder:
    torch.manual_seed(0)
    return HFVisionEncoder(model=model_type, pretrained=False, model_args=TINY[model_type], **options).eval()


@pytest.mark.parametrize("model_type", list(TINY))
def test_forward_gives_patch_states_and_a_mask(model_type):
    encoder = tiny(model_type)
    assert encoder.input_size == (3, 32, 32)
    states, mask = encoder(torch.randn(2, *encoder.input_size))
    patches = PREFIX.get(model_type, 0) + 16
    assert states.shape == (2, patches, encoder.hidden_size)
    assert mask.shape == (2, patches) and mask.dtype == torch.bool and mask.all()


@pytest.mark.parametrize("model_type", [name for name, prefix in PREFIX.items() if prefix])
def test_class_and_register_tokens_can_be_dropped(model_type):
    keep, drop = tiny(model_type), tiny(model_type, cls_token=False)
    drop.load_state_dict(keep.state_dict())
    pixels = torch.randn(1, *keep.input_size)
    with_prefix, _ = keep(pixels)
    patches, mask = drop(pixels)
    assert patches.shape[1] == mask.shape[1] == 16
    assert torch.equal(patches, with_prefix[:, PREFIX[model_type]:])


@pytest.mark.parametrize("model_type", list(TINY))
def test_transform_is_the_familys_preprocessing_at_the_configs_size(model_type):
    pixels = tiny(model_type).transform(GREY)
    mean, std = CHANNEL_0[model_type]
    assert pixels.shape == (3, 32, 32) and pixels.dtype == torch.float32
    assert torch.allclose(pixels[0], torch.full((32, 32), (200 / 255 - mean) / std), atol=1e-3)


@pytest.mark.parametrize("model_type", list(TINY))
def test_export_rebuilds_the_same_encoder_offline(model_type, tmp_path):
    encoder = tiny(model_type, cls_token=False)
    options = encoder.export(tmp_path / "image_encoder")
    assert options["model"] == str((tmp_path / "image_encoder").resolve()) and options["pretrained"] is False
    assert {path.name for path in (tmp_path / "image_encoder").iterdir()} == {"config.json", "preprocessor_config.json"}
    rebuilt = HFVisionEncoder(**options).eval()
    rebuilt.load_state_dict(encoder.state_dict())  # the run's weights, loaded over the rebuilt architecture
    pixels = torch.randn(2, *encoder.input_size)
    assert torch.equal(rebuilt(pixels)[0], encoder(pixels)[0])
    assert torch.equal(rebuilt.transform(GREY), encoder.transform(GREY))
    assert rebuilt.input_size == encoder.input_size and rebuilt.hidden_size == encoder.hidden_size


def wide_photo() -> Image.Image:
    """A 3:1 photo, grey with a red left edge and a blue right edge (each a fifteenth of the width)."""
    pixels = np.full((100, 300, 3), 128, dtype=np.uint8)
    pixels[:, :20] = [255, 0, 0]
    pixels[:, -20:] = [0, 0, 255]
    return Image.fromarray(pixels)


@pytest.mark.parametrize("model_type", ["clip_vision_model", "dinov2", "convnext"])  # the families that crop
def test_squash_keeps_both_edges_of_a_wide_photo_and_crop_loses_them(model_type, tmp_path):
    import pickle

    crop, squash = tiny(model_type), tiny(model_type, resize="squash")
    mean, std = CHANNEL_0[model_type]
    red = (1.0 - mean) / std  # the red channel of a red pixel, normalised
    cropped, squashed = crop.transform(wide_photo()), squash.transform(wide_photo())
    assert cropped.shape == squashed.shape == (3, 32, 32)
    assert squashed[0, :, 0].mean() == pytest.approx(red, abs=0.05)  # the red left edge is in the first column
    assert squashed[2, :, -1].mean() > squashed[2, :, 0].mean() + 1  # and the blue right edge in the last
    assert cropped[0, :, 0].mean() < red - 1  # the centre crop starts inside the grey middle
    rebuilt = HFVisionEncoder(**squash.export(tmp_path / "image_encoder"))
    assert rebuilt.config.resize == "squash" and torch.equal(rebuilt.transform(wide_photo()), squashed)
    assert torch.equal(pickle.loads(pickle.dumps(squash.transform))(wide_photo()), squashed)


@pytest.mark.parametrize("resize", ["crop", "squash"])
@pytest.mark.parametrize("model_type", list(TINY))
def test_uint8_pixels_normalised_on_the_device_equal_the_processors_float_pixels(model_type, resize, tmp_path):
    """mmlabel's image store keeps `pixel_transform`'s uint8 pixels (the processor's resizing and cropping alone);
    `forward` normalises them as the processor's rescaling and normalisation did."""
    encoder = tiny(model_type, resize=resize)
    photo = Image.fromarray(np.random.default_rng(2).integers(0, 255, (90, 150, 3), dtype=np.uint8))
    pixels = encoder.pixel_transform(photo)
    floats = encoder.transform(photo)
    assert pixels.dtype == torch.uint8 and pixels.shape == floats.shape == encoder.input_size
    assert (encoder.normalize(pixels[None])[0] - floats).abs().max() <= 1e-6
    with torch.no_grad():
        assert torch.allclose(encoder(pixels[None])[0], encoder(floats[None])[0], atol=1e-5)
    rebuilt = HFVisionEncoder(**encoder.export(tmp_path / "image_encoder"))
    assert rebuilt.pixel_signature == encoder.pixel_signature  # a reloaded run finds the photos it stored
    assert encoder.pixel_signature != tiny(model_type, resize="squash" if resize == "crop" else "crop").pixel_signature


def test_pretrained_vision_tower_of_a_local_clip_checkpoint(tmp_path):
    """A whole CLIP checkpoint (text and vision towers, with its processor): the vision tower's weights are loaded."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(1)
    text = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
            "vocab_size": 99, "bos_token_id": 0, "eos_token_id": 1}
    clip = CLIPModel(CLIPConfig(vision_config=TINY["clip_vision_model"], text_config=text)).eval()
    clip.save_pretrained(tmp_path)
    CLIPImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    encoder = HFVisionEncoder(model=str(tmp_path)).eval()
    pixels = torch.randn(1, 3, 32, 32)
    assert torch.equal(encoder(pixels)[0], clip.vision_model(pixel_values=pixels).last_hidden_state)
    assert encoder.processor.size.shortest_edge == 40  # the checkpoint's own processor settings


def test_a_checkpoint_without_processor_settings_gets_its_familys(tmp_path):
    saved = tiny("dinov2")
    saved.model.save_pretrained(tmp_path)
    encoder = HFVisionEncoder(model=str(tmp_path)).eval()
    assert encoder.input_size == (3, 32, 32)
    assert encoder.processor.image_mean == pytest.approx([0.485, 0.456, 0.406])
    pixels = torch.randn(1, 3, 32, 32)
    assert torch.equal(encoder(pixels)[0], saved(pixels)[0])


def test_weights_that_do_not_fit_the_overridden_config_are_one_error(tmp_path):
    tiny("vit").model.save_pretrained(tmp_path)
    with pytest.raises(ComponentError, match=r"image_encoder.model_args: the weights of .* do not fit the architecture"):
        HFVisionEncoder(model=str(tmp_path), model_args={"hidden_size": 48})


def test_processor_option_names_another_processor(tmp_path):
    from transformers import SiglipImageProcessor

    SiglipImageProcessor(size={"height": 40, "width": 40}).save_pretrained(tmp_path)
    encoder = tiny("dinov2", processor=str(tmp_path))  # DINOv2 interpolates its position embeddings
    assert encoder.input_size == (3, 40, 40)
    assert encoder(torch.randn(1, 3, 40, 40))[0].shape == (1, 1 + 25, 32)


def test_freeze_keeps_the_weights_fixed():
    assert not any(parameter.requires_grad for parameter in tiny("vit", freeze=True).parameters())
    assert all(parameter.requires_grad for parameter in tiny("vit").parameters())


@pytest.mark.parametrize(("options", "message"), [
    ({"model": "clip_vision_model", "pretrained": False, "model_args": {"img_size": 64}},
     "image_encoder.model_args.img_size: clip_vision_model has no config field 'img_size' (timm's img_size is "
     "image_size here)"),
    ({"model": "clip_vision_model", "pretrained": False, "model_args": {"hiden_size": 64}},
     "image_encoder.model_args.hiden_size: clip_vision_model has no config field 'hiden_size'; did you mean "
     "'hidden_size'"),
    ({"model": "clip_vision_model"}, "image_encoder.model: 'clip_vision_model' is a model type, which has no weights"),
])
def test_bad_options_are_errors_naming_the_key(options, message):
    with pytest.raises(ComponentError) as error:
        HFVisionEncoder(**options)
    assert str(error.value).startswith(message)


def test_a_missing_local_directory_offline_is_one_actionable_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ComponentError, match=r"image_encoder.model: cannot load the config of .*pretrained = false"):
        HFVisionEncoder(model=str(tmp_path / "missing"))


def test_registering_the_plugin_imports_no_torch():
    """pluggy imports every plugin at start-up: `mmlabel list` must not pay for torch and transformers."""
    code = ("import sys, mmlabel_hf_vision; from mmlabel.hookspecs import hookimpl; found = []; "
            "mmlabel_hf_vision.register_image_encoders(lambda name, factory: found.append((name, factory))); "
            "print(found[0][0], found[0][1].target, 'torch' in sys.modules, 'transformers' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["hf_vision", "mmlabel_hf_vision.encoder:HFVisionEncoder", "False", "False"]
