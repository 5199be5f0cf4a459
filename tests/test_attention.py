"""The optional `attention` member of the fusion-head contract: dtca's word-to-patch weights, checked against
nn.MultiheadAttention's weights computed by hand; the Tagger's per-example attention; the patch grid and the heat
maps the report draws from them."""
import math

import pytest
import torch

from mmlabel import contracts
from mmlabel.data.example import Span
from mmlabel.fusion.dtca import DTCAHead
from mmlabel.kinds import KINDS
from mmlabel.report.heatmap import patch_grid, span_heat
from model_helpers import tiny_image_options


def _inputs(text_dim=8, image_dim=6):
    generator = torch.Generator().manual_seed(0)
    image_mask = torch.ones(3, 5, dtype=torch.bool)
    image_mask[1, 3:] = False  # two padded patches
    image_mask[2] = False  # no image at all
    return {"text_states": torch.randn(3, 7, text_dim, generator=generator),
            "first_subword_index": torch.tensor([[1, 2, 4, 5], [1, 3, 4, 6], [1, 2, 3, 4]]),
            "image_states": torch.randn(3, 5, image_dim, generator=generator), "image_mask": image_mask}


def _by_hand(head: DTCAHead, inputs: dict) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) per head over the real patches, averaged over heads, at first sub-words."""
    attention, heads = head.cross_attention, head.config.heads
    dim = attention.embed_dim
    bias_q, bias_k, _ = attention.in_proj_bias.split(dim)
    queries = inputs["text_states"] @ attention.q_proj_weight.T + bias_q  # (batch, tokens, dim)
    keys = inputs["image_states"] @ attention.k_proj_weight.T + bias_k  # (batch, patches, dim)
    queries = queries.unflatten(-1, (heads, dim // heads)).transpose(1, 2)  # (batch, heads, tokens, head_dim)
    keys = keys.unflatten(-1, (heads, dim // heads)).transpose(1, 2)
    scores = queries @ keys.transpose(-1, -2) / math.sqrt(dim // heads)  # (batch, heads, tokens, patches)
    scores = scores.masked_fill(~inputs["image_mask"][:, None, None, :], float("-inf"))
    weights = torch.nan_to_num(scores.softmax(-1), nan=0.0).mean(1)  # (batch, tokens, patches)
    index = inputs["first_subword_index"][:, :, None].expand(-1, -1, weights.shape[-1])
    return weights.gather(1, index)


def test_dtca_attention_is_multihead_attention_by_hand():
    torch.manual_seed(0)
    head = DTCAHead(text_dim=8, image_dim=6, num_tags=5, heads=2).eval()
    inputs = _inputs()
    weights = head.attention(**inputs)
    assert weights.shape == (3, 4, 5)
    assert torch.allclose(weights, _by_hand(head, inputs), atol=1e-6)
    assert torch.allclose(weights[:2].sum(-1), torch.ones(2, 4), atol=1e-6)  # rows sum to 1 over real patches
    assert (weights[1, :, 3:] == 0).all() and (weights[1, :, :3] > 0).all()  # padded patches get nothing
    assert (weights[2] == 0).all()  # an example without a real patch: no attention anywhere


def test_attention_leaves_the_emissions_unchanged():
    """The weights come from the same cross-attention `forward` uses: asking for them changes nothing."""
    torch.manual_seed(0)
    head = DTCAHead(text_dim=8, image_dim=6, num_tags=5, heads=2).eval()
    inputs = _inputs()
    before = head(**inputs)
    head.attention(**inputs)
    assert torch.equal(before, head(**inputs))


def test_text_only_dtca_has_no_attention_to_give():
    head = DTCAHead(text_dim=8, num_tags=5, heads=2)
    with pytest.raises(ValueError, match="without an image encoder"):
        head.attention(**_inputs())


def test_attention_is_optional_in_the_contract_but_checked_where_present():
    torch.manual_seed(0)
    head = DTCAHead(text_dim=8, image_dim=6, num_tags=5, heads=2)
    assert contracts.problems(KINDS["fusion_head"], head) == []

    class WithoutAttention(DTCAHead):
        attention = None

    class WrongAttention(DTCAHead):
        def attention(self, text_states):
            return text_states

    assert contracts.problems(KINDS["fusion_head"], WithoutAttention(text_dim=8, image_dim=6, num_tags=5, heads=2)) == []
    (problem,) = contracts.problems(KINDS["fusion_head"], WrongAttention(text_dim=8, image_dim=6, num_tags=5, heads=2))
    assert problem.startswith("`attention(text_states)` cannot be called as `attention(text_states, "
                              "first_subword_index, image_states, image_mask)`")


def test_the_kit_checks_attention_rows_and_padding():
    """A head whose attention leaks onto padded patches fails the conformance kit's attention check."""
    from mmlabel.testing import ContractViolation, check_factory

    class Leaky(DTCAHead):
        def attention(self, text_states, first_subword_index, image_states, image_mask=None):
            words = first_subword_index.shape[1]
            return torch.full((text_states.shape[0], words, image_states.shape[1]), 1 / image_states.shape[1])

    check_factory("fusion_head", DTCAHead, heads=2)
    with pytest.raises(ContractViolation, match="attention gives weight to padded patches"):
        check_factory("fusion_head", Leaky, heads=2)


@pytest.mark.parametrize(("family", "expected"), [("vit", (1, 4, 4)), ("deit", (2, 4, 4)), ("swin", (0, 4, 4))])
def test_patch_grid_of_timm_encoders(family, expected):
    from mmlabel.registry import build

    encoder = build("image_encoder", {"name": "timm", **tiny_image_options(family)}).eval()
    states, _ = encoder(torch.zeros(1, *encoder.input_size))
    assert patch_grid(encoder, states.shape[1]) == expected


class _Encoder:
    def __init__(self, height, width):
        self.input_size = (3, height, width)


@pytest.mark.parametrize(("size", "tokens", "expected"), [
    ((224, 224), 197, (1, 14, 14)), ((224, 224), 201, (5, 14, 14)), ((224, 224), 49, (0, 7, 7)),
    ((224, 448), 1 + 14 * 28, (1, 14, 28)), ((224, 224), 7, (3, 2, 2)), ((224, 448), 1, None)])
def test_patch_grid_from_the_number_of_tokens(size, tokens, expected):
    assert patch_grid(_Encoder(*size), tokens) == expected


def test_span_heat_averages_the_words_over_the_grid_cells():
    attention = torch.zeros(3, 5)  # 3 words; a class token then a 2 x 2 grid
    attention[1] = torch.tensor([0.6, 0.1, 0.1, 0.1, 0.1])
    attention[2] = torch.tensor([0.0, 0.4, 0.2, 0.2, 0.2])
    # cells: the mean of (0.1, 0.1, 0.1, 0.1) and (0.4, 0.2, 0.2, 0.2) = (0.25, 0.15, 0.15, 0.15), scaled to 15 at most
    assert span_heat(attention, Span(1, 3, "POS"), (1, 2, 2)) == "f999"
    assert span_heat(attention, Span(0, 1, "POS"), (1, 2, 2)) == ""  # a word without attention (cut off)
