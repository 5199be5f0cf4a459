"""Maximum mean discrepancy (MMD) between a sentence's token states and its image's patch states (Gretton et al., "A
Kernel Two-Sample Test", JMLR 2012), computed with GeomLoss's kernel norms (Feydy et al., "Interpolating between
Optimal Transport and MMD using Sinkhorn Divergences", AISTATS 2019).

Each side is a measure with uniform weights over its real elements and zero weight on padding, on the L2-normalised
states (as for the transport losses: the unit sphere, where one blur fits every hidden size). The value is GeomLoss's
`SamplesLoss(kernel)`, half the squared MMD:

    1/2 sum_ij a_i a_j k(x_i, x_j) + 1/2 sum_ij b_i b_j k(y_i, y_j) - sum_ij a_i b_j k(x_i, y_j)

with k(x, y) = exp(-|x - y|^2 / (2 blur^2)) (`gaussian`) or -|x - y| (`energy`, no blur; GeomLoss computes |x - y|
as sqrt(max(|x - y|^2, 1e-8)), so a point's distance to itself is 1e-4, not 0).
"""
import torch
import torch.nn.functional as F
from torch import nn

from mmlabel.alignment.base import check_sizes
from mmlabel.alignment.configs import MMDConfig
from mmlabel.configs import Configured


class MMDAlignment(Configured, nn.Module):
    """Maximum mean discrepancy (GeomLoss kernel norm, Gaussian or energy kernel), one value per example."""

    Config = MMDConfig

    def __init__(self, config: MMDConfig | None = None, **options):
        super().__init__(config, **options)
        from geomloss import SamplesLoss

        self.samples_loss = SamplesLoss(self.config.kernel, blur=self.config.blur, backend="tensorized")

    def forward(
        self, text_states: torch.Tensor, text_mask: torch.Tensor, image_states: torch.Tensor, image_mask: torch.Tensor
    ) -> torch.Tensor:
        """(batch, tokens, dim), (batch, tokens) bool, (batch, patches, dim), (batch, patches) bool -> (batch,).
        An example without a real token or patch gets 0."""
        check_sizes(text_states, image_states)
        dtype = torch.float64 if text_states.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=text_states.device.type, enabled=False):
            text = F.normalize(text_states.to(dtype), dim=-1)
            image = F.normalize(image_states.to(dtype), dim=-1)
            text_mask, image_mask = text_mask.bool(), image_mask.bool()
            empty = ~text_mask.any(1) | ~image_mask.any(1)
            value = self.samples_loss(_weights(text_mask, dtype), text, _weights(image_mask, dtype), image)
        return value.masked_fill(empty, 0.0)


def _weights(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, n) uniform weights over the real elements, zero on padding (all zero for an example with none)."""
    weights = mask.to(dtype)
    return weights / weights.sum(1, keepdim=True).clamp_min(1.0)
