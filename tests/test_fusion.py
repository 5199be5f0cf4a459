"""The `dtca` fusion head: shapes, masks, the text-only path and configuration errors."""
import pytest
import torch

from mmlabel.errors import ComponentError
from mmlabel import registry
from mmlabel.registry import get


def build(**runtime):
    options = runtime.pop("options", {})
    return registry.build("fusion_head", {"name": "dtca", **options}, **runtime)


def test_emissions_per_word_from_text_and_image():
    torch.manual_seed(0)
    head = build(text_dim=32, image_dim=48, num_tags=5).eval()
    assert head.cross_attention.num_heads == 8
    text, image = torch.randn(2, 9, 32), torch.randn(2, 6, 48)
    index = torch.tensor([[1, 2, 4, 0], [1, 3, 0, 0]])
    emissions = head(text, index, image, torch.ones(2, 6, dtype=torch.bool))
    assert emissions.shape == (2, 4, 5)
    text_only = head(text, index)  # no image: the text states alone
    assert text_only.shape == (2, 4, 5) and not torch.allclose(text_only, emissions)


def test_masked_patches_are_not_attended():
    torch.manual_seed(0)
    head = build(text_dim=16, image_dim=16, num_tags=3, options={"heads": 2}).eval()
    text, image = torch.randn(1, 4, 16), torch.randn(1, 6, 16)
    index = torch.tensor([[1, 2]])
    mask = torch.tensor([[True, True, True, True, False, False]])
    before = head(text, index, image, mask)
    image[:, 4:] = 100.0
    assert torch.allclose(head(text, index, image, mask), before)
    assert not torch.allclose(head(text, index, image, torch.ones(1, 6, dtype=torch.bool)), before)


def test_example_without_a_real_patch_stays_finite():
    head = build(text_dim=16, image_dim=16, num_tags=3, options={"heads": 2}).eval()
    emissions = head(torch.randn(1, 4, 16), torch.tensor([[1, 2]]), torch.randn(1, 6, 16), torch.zeros(1, 6, dtype=torch.bool))
    assert torch.isfinite(emissions).all()


def test_bad_configurations_are_errors():
    with pytest.raises(ComponentError, match="not divisible by 8 heads"):
        build(text_dim=30, image_dim=16, num_tags=3)
    with pytest.raises(ComponentError, match="fusion_head.heeds"):
        get("fusion_head", "dtca").validate({"heeds": 4}, where="fusion_head")
    head = build(text_dim=16, image_dim=None, num_tags=3)
    with pytest.raises(ValueError, match="without an image encoder"):
        head(torch.randn(1, 4, 16), torch.tensor([[1]]), torch.randn(1, 2, 16))


def test_constrained_option_reaches_the_crf():
    start, transitions = [True, True, False], [[True, True, False], [True] * 3, [True] * 3]
    assert build(text_dim=16, num_tags=3, allowed_start=start, allowed_transitions=transitions).crf.constrained
    assert not build(text_dim=16, num_tags=3, options={"constrained": False}).crf.constrained
