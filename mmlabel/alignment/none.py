"""No alignment loss: the ablation beta = 0 expressed as a component."""
import torch
from torch import nn

from mmlabel.alignment.configs import NoAlignmentConfig
from mmlabel.configs import Configured


class NoAlignment(Configured, nn.Module):
    """No alignment: a zero loss per example, for the ablation beta = 0 expressed as a component."""

    Config = NoAlignmentConfig

    def __init__(self, config: NoAlignmentConfig | None = None, **options):
        super().__init__(config, **options)

    def forward(self, text_states, text_mask, image_states, image_mask) -> torch.Tensor:
        return text_states.new_zeros(text_states.shape[0], dtype=torch.float32)
