"""What the `text`, `concat`, `gated` and `prefix` fusion heads share: the options of the CRF they end in, the CRF
itself (negative log-likelihood per example, Viterbi decoding over words) and the mean of image states over real
patches."""
import torch
from torch import nn

from mmlabel.configs import Configured
from mmlabel.fusion.configs import CRFHeadConfig
from mmlabel.fusion.crf import WordCRF


class CRFHead(Configured, nn.Module):
    """Base of a fusion head that scores words and tags them with a CRF: subclasses set `Config` (a subclass of
    `CRFHeadConfig`, in `mmlabel.fusion.configs`), build their layers after `super().__init__(config, **arguments)`
    and define `forward` (emissions (batch, words, tags)); `loss` and `decode` are the CRF's. The arguments are the
    fusion-head factory's (`contracts.FusionHead`); a head built without a config gets `Config(**options)`."""

    Config = CRFHeadConfig

    def __init__(self, config: CRFHeadConfig | None = None, *, text_dim: int, num_tags: int,
                 image_dim: int | None = None, allowed_start: list[bool] | None = None,
                 allowed_transitions: list[list[bool]] | None = None, allowed_end: list[bool] | None = None,
                 **options):
        super().__init__(config, **options)
        self.text_dim, self.image_dim, self.num_tags = text_dim, image_dim, num_tags
        self.dropout = nn.Dropout(self.config.dropout)
        self.crf = WordCRF(num_tags, allowed_start, allowed_transitions, allowed_end,
                           constrained=self.config.constrained)

    def loss(self, emissions: torch.Tensor, tags: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """(batch,) CRF negative log-likelihood of the gold tags."""
        return self.crf.neg_log_likelihood(emissions, tags, word_mask)

    def decode(self, emissions: torch.Tensor, word_mask: torch.Tensor) -> list[list[int]]:
        """Viterbi tag ids per example, one per real word."""
        return self.crf.decode(emissions, word_mask)

    def _check_image(self, image_states: torch.Tensor | None) -> bool:
        """Whether there is an image to fuse; an image given to a head built without one is a caller's bug."""
        if image_states is not None and self.image_dim is None:
            raise ValueError(f"this {type(self).__name__} was built without an image encoder (image_dim=None)")
        return image_states is not None


def real_patch_mask(image_states: torch.Tensor, image_mask: torch.Tensor | None) -> torch.Tensor:
    """(batch, patches) bool: the mask given, or every patch real."""
    if image_mask is None:
        return torch.ones(image_states.shape[:2], dtype=torch.bool, device=image_states.device)
    return image_mask.bool()


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(batch, items, dim) states, (batch, items) bool mask -> (batch, dim) mean over real items; 0 where none."""
    weights = mask.to(states.dtype)[:, :, None]
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1)
