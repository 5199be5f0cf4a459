"""The late-fusion concatenation head: one vector per image, pooled from its patch states, projected to the text
size and concatenated to every word's state, then an MLP, tag scores and a CRF over words. It is the generic
late-fusion baseline (no single source paper): every word sees the same image vector, with no attention:

    image  = Linear(pool(patch states))                       # pool: the first state ("cls") or the real patches' mean
    word   = [text state of the word's first sub-word ; image]  # (batch, words, 2 * text_dim)
    emissions = Linear(Dropout(MLP(word)))                    # (batch, words, tags), Viterbi

with MLP = Linear(2 * text_dim, mlp_ratio * text_dim), GELU, Dropout, Linear(., text_dim).

Without image states (a text-only model) the image half is zeros.
"""
import torch
from torch import nn

from mmlabel.fusion.base import CRFHead, masked_mean, real_patch_mask
from mmlabel.fusion.configs import ConcatConfig
from mmlabel.fusion.crf import gather_words


class ConcatHead(CRFHead):
    """A pooled image vector concatenated to every word state, an MLP and a CRF."""

    Config = ConcatConfig

    def __init__(self, config: ConcatConfig | None = None, **arguments):
        super().__init__(config, **arguments)  # text_dim, num_tags, image_dim, the allowed tag moves, options
        text_dim, image_dim, num_tags = self.text_dim, self.image_dim, self.num_tags
        self.image_projection = nn.Linear(image_dim, text_dim) if image_dim is not None else None
        hidden = max(1, round(text_dim * self.config.mlp_ratio))
        self.mlp = nn.Sequential(nn.Linear(2 * text_dim, hidden), nn.GELU(), nn.Dropout(self.config.dropout),
                                 nn.Linear(hidden, text_dim))
        self.emissions = nn.Linear(text_dim, num_tags)

    def forward(self, text_states: torch.Tensor, first_subword_index: torch.Tensor,
                image_states: torch.Tensor | None = None, image_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, tokens, text_dim) text states, (batch, words) first sub-word positions, optional
        (batch, patches, image_dim) image states and (batch, patches) mask -> (batch, words, tags) emissions."""
        words = gather_words(text_states, first_subword_index)  # (batch, words, text_dim)
        image = torch.zeros_like(words[:, 0])
        if self._check_image(image_states):
            image = self.image_projection(self.pooled(image_states, image_mask))
        fused = torch.cat([words, image[:, None].expand_as(words)], -1)  # (batch, words, 2 * text_dim)
        return self.emissions(self.dropout(self.mlp(fused)))

    def pooled(self, image_states: torch.Tensor, image_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, patches, image_dim) -> (batch, image_dim): the image vector under `pool` (zeros for an image
        without a real patch, or whose first patch is padding under `cls`)."""
        mask = real_patch_mask(image_states, image_mask)
        if self.config.pool == "cls":
            return image_states[:, 0] * mask[:, :1].to(image_states.dtype)
        return masked_mean(image_states, mask)
