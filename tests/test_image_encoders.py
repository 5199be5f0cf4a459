"""The `timm` image encoder: ViT, DeiT, Swin and a CNN as patch-token sequences, each with its own preprocessing."""
import numpy as np
import pytest
import torch
from PIL import Image

from mmlabel.errors import ComponentError
from mmlabel import registry
from model_helpers import TINY_IMAGES, tiny_image_options


def build(options):
    return registry.build("image_encoder", {"name": "timm", **options})


@pytest.mark.parametrize(("family", "patches"), [("vit", 1 + 16), ("deit", 2 + 16), ("swin", 4 * 4)])
def test_patch_tokens_and_mask(family, patches):
    encoder = build(tiny_image_options(family))
    states, mask = encoder(torch.randn(2, *encoder.input_size))
    assert states.shape == (2, patches, encoder.hidden_size)
    assert mask.shape == (2, patches) and mask.dtype == torch.bool and mask.all()


@pytest.mark.parametrize(("family", "prefix"), [("vit", 1), ("deit", 2)])
def test_class_tokens_can_be_dropped(family, prefix):
    torch.manual_seed(0)
    keep = build(tiny_image_options(family)).eval()
    drop = build({**tiny_image_options(family), "cls_token": False}).eval()
    drop.load_state_dict(keep.state_dict())
    pixels = torch.randn(1, *keep.input_size)
    with_class, _ = keep(pixels)
    without, mask = drop(pixels)
    assert without.shape[1] == with_class.shape[1] - prefix == mask.shape[1]
    assert torch.allclose(without, with_class[:, prefix:])


def test_cnn_feature_map_is_flattened_to_tokens():
    encoder = build({"model": "resnet10t", "pretrained": False})
    states, mask = encoder(torch.randn(2, 3, 64, 64))
    assert states.shape == (2, 4, encoder.hidden_size) and mask.shape == (2, 4)  # a 2x2 map of 64 px / 32


def test_transform_comes_from_the_models_own_data_config():
    """The reference code normalised every encoder's input like ViT's (mean = std = 0.5)."""
    vit, deit = build(tiny_image_options("vit")), build(tiny_image_options("deit"))
    image = Image.fromarray(np.full((50, 70, 3), 200, dtype=np.uint8))
    vit_pixels, deit_pixels = vit.transform(image), deit.transform(image)
    assert vit_pixels.shape == deit_pixels.shape == (3, 32, 32)  # img_size of model_args, not the pretrained 224
    assert torch.allclose(vit_pixels[0], torch.full((32, 32), (200 / 255 - 0.5) / 0.5), atol=1e-3)
    assert torch.allclose(deit_pixels[0], torch.full((32, 32), (200 / 255 - 0.485) / 0.229), atol=1e-3)


def wide_photo() -> Image.Image:
    """A 3:1 photo, grey with a red left edge and a blue right edge (each a fifteenth of the width)."""
    pixels = np.full((100, 300, 3), 128, dtype=np.uint8)
    pixels[:, :20] = [255, 0, 0]
    pixels[:, -20:] = [0, 0, 255]
    return Image.fromarray(pixels)


def test_squash_keeps_both_edges_of_a_wide_photo_and_crop_loses_them(tmp_path):
    """The pretrained ViT's own config (224 pixels, crop_pct 0.9): crop keeps the middle third of a 3:1 photo."""
    import pickle

    options = {"model": "vit_base_patch16_224", "pretrained": False,
               "model_args": {"depth": 1, "embed_dim": 32, "num_heads": 2}}
    crop, squash = build(options), build({**options, "resize": "squash"})
    cropped, squashed = crop.transform(wide_photo()), squash.transform(wide_photo())
    assert cropped.shape == squashed.shape == (3, 224, 224)
    # normalised with mean = std = 0.5: a full channel is 1, an empty one -1, the grey middle about 0
    assert squashed[0, :, 0].mean() == pytest.approx(1.0, abs=0.02) and squashed[2, :, 0].mean() < -0.9
    assert squashed[2, :, -1].mean() == pytest.approx(1.0, abs=0.02) and squashed[0, :, -1].mean() < -0.9
    assert cropped[0, :, 0].abs().max() < 0.05 and cropped[2, :, -1].abs().max() < 0.05  # both edges cut off
    rebuilt = build(squash.export(tmp_path / "image_encoder"))
    assert rebuilt.config.resize == "squash" and torch.equal(rebuilt.transform(wide_photo()), squashed)
    assert "squash" in (tmp_path / "image_encoder" / "transform.json").read_text()
    assert torch.equal(pickle.loads(pickle.dumps(squash.transform))(wide_photo()), squashed)


def test_checkpoint_path_loads_local_weights(tmp_path):
    options = tiny_image_options("swin")
    encoder = build(options).eval()
    torch.save(encoder.model.state_dict(), tmp_path / "swin.pth")
    reloaded = build({**options, "checkpoint_path": str(tmp_path / "swin.pth")}).eval()
    pixels = torch.randn(1, *encoder.input_size)
    assert torch.allclose(reloaded(pixels)[0], encoder(pixels)[0])


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ComponentError, match="no such file"):
        build({**tiny_image_options("vit"), "checkpoint_path": str(tmp_path / "missing.pth")})
    with pytest.raises(ComponentError, match="did you mean 'vit_base_patch16_224'"):
        build({"model": "vit_base_patch16_22", "pretrained": False})


def test_freeze():
    encoder = build({**tiny_image_options("vit"), "freeze": True})
    assert not any(parameter.requires_grad for parameter in encoder.parameters())


def test_tiny_families_are_the_named_architectures():
    assert {family: build(tiny_image_options(family)).model.__class__.__name__ for family in TINY_IMAGES} == {
        "vit": "VisionTransformer", "deit": "VisionTransformerDistilled", "swin": "SwinTransformer"}


@pytest.mark.parametrize("family", ["vit", "swin"])
def test_the_attention_kernel_follows_the_option_and_the_device_and_changes_nothing_else(family):
    """`auto` writes attention out on a CPU (faster there, docs/performance.md); `sdpa` and `eager` force a kernel.
    Both kernels compute the same states."""
    torch.manual_seed(0)
    encoders = {kernel: build({**tiny_image_options(family), "attention": kernel}).eval()
                for kernel in ("auto", "sdpa", "eager")}
    for encoder in encoders.values():
        encoder.load_state_dict(encoders["auto"].state_dict())
    pixels = torch.randn(2, *encoders["auto"].input_size)
    states = {kernel: encoder(pixels)[0] for kernel, encoder in encoders.items()}
    for kernel, fused in (("auto", False), ("sdpa", True), ("eager", False)):
        switches = [m.fused_attn for m in encoders[kernel].modules() if hasattr(m, "fused_attn")]
        assert switches and set(switches) == {fused}, kernel
    torch.testing.assert_close(states["sdpa"], states["eager"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(states["auto"], states["eager"])
    encoders["auto"]._choose_attention(torch.device("cuda"))  # only flips switches: no GPU needed
    assert {m.fused_attn for m in encoders["auto"].modules() if hasattr(m, "fused_attn")} == {True}
