"""The entropic Wasserstein distance (Sinkhorn) between a sentence's token states and its image's patch states,
computed with GeomLoss (Feydy et al., "Interpolating between Optimal Transport and MMD using Sinkhorn
Divergences", AISTATS 2019), as used by DTCA (Yu et al., "Dual-Encoder Transformers with Cross-modal Alignment for
Multimodal Aspect-based Sentiment Analysis", AACL 2022).

Each side carries uniform mass over its real elements only (padding tokens and padded patches carry none). The cost
between a token and a patch (`cost`) is the mean squared error between their L2-normalised vectors (Eq. 15 as
printed: |x - y|^2 / dim = 2 (1 - cos) / dim) or the cosine distance 1 - cos (the authors' code).
"""
import torch
import torch.nn.functional as F
from torch import nn

from mmlabel.alignment.base import check_sizes
from mmlabel.alignment.configs import SinkhornConfig
from mmlabel.configs import Configured

# Unit vectors are at most 2 apart; a fixed diameter keeps GeomLoss's epsilon schedule independent of the batch
# (it would otherwise be estimated from every point, padding included, and differ between batches).
UNIT_SPHERE_DIAMETER = 2.0


class SinkhornAlignment(Configured, nn.Module):
    """Entropic optimal transport between token and patch states (GeomLoss `sinkhorn`), one distance per example."""

    Config = SinkhornConfig

    def __init__(self, config: SinkhornConfig | None = None, **options):
        super().__init__(config, **options)
        from geomloss import SamplesLoss

        # GeomLoss's p = 2 cost is |x - y|^2 / 2, which on unit vectors is exactly 1 - cos (the `cosine` cost); the
        # `mse` cost |x - y|^2 / D is that times 2 / D (see `_cost_scale`).
        self.samples_loss = SamplesLoss(
            "sinkhorn", p=2, blur=self.config.blur, scaling=self.config.scaling, debias=self.config.debias,
            diameter=UNIT_SPHERE_DIAMETER, backend="tensorized",
        )

    def forward(
        self, text_states: torch.Tensor, text_mask: torch.Tensor, image_states: torch.Tensor, image_mask: torch.Tensor
    ) -> torch.Tensor:
        """(batch, tokens, dim), (batch, tokens) bool, (batch, patches, dim), (batch, patches) bool -> (batch,).
        An example without a real token or patch gets 0."""
        check_sizes(text_states, image_states)
        dim = text_states.shape[-1]
        with torch.autocast(device_type=text_states.device.type, enabled=False):
            text = F.normalize(text_states.float(), dim=-1)
            image = F.normalize(image_states.float(), dim=-1)
            empty = ~text_mask.any(1) | ~image_mask.any(1)
            text_weights = _uniform(text_mask, empty)
            image_weights = _uniform(image_mask, empty)
            distance = self.samples_loss(text_weights, text, image_weights, image) * _cost_scale(self.config.cost, dim)
        return distance.masked_fill(empty, 0.0)


def unit_cost(text_states: torch.Tensor, image_states: torch.Tensor, cost: str = "mse") -> torch.Tensor:
    """(batch, tokens, patches) costs between the L2-normalised vectors: `mse` |x - y|^2 / dim = 2 (1 - cos) / dim
    (Eq. 15), `cosine` 1 - cos (the authors' code). Float64 in, float64 out; else float32."""
    dtype = torch.float64 if text_states.dtype == torch.float64 else torch.float32
    text = F.normalize(text_states.to(dtype), dim=-1)
    image = F.normalize(image_states.to(dtype), dim=-1)
    distance = (1.0 - torch.bmm(text, image.transpose(1, 2))).clamp_min(0.0)  # 1 - cos
    return distance * _cost_scale(cost, text.shape[-1])


def _cost_scale(cost: str, dim: int) -> float:
    """The factor from 1 - cos (GeomLoss's p = 2 cost on unit vectors) to the chosen cost."""
    return 2.0 / dim if cost == "mse" else 1.0


def _uniform(mask: torch.Tensor, empty: torch.Tensor) -> torch.Tensor:
    """(batch, n) weights summing to 1 over the real elements; an empty example spreads its mass over all of them
    (its distance is discarded, this only keeps it finite)."""
    mask = mask | empty[:, None]
    weights = mask.float()
    return weights / weights.sum(1, keepdim=True)
