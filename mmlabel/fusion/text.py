"""The text-only fusion head: the text-only baseline as a component (the "text" rows of multimodal NER and MABSA
papers' tables, e.g. the RoBERTa row of DTCA's Table 2, Yu et al., AACL 2022). No image at all:

    emissions = Linear(Dropout(text state of each word's first sub-word))      # (batch, words, tags), Viterbi

It works with `image_encoder = none` (the baseline as the papers ran it). With an image encoder in the recipe the
head ignores the image states it is given: predictions never see the image, while the image still reaches the
alignment loss (`loss.beta`), which then only shapes the text encoder's training.
"""
import torch
from torch import nn

from mmlabel.fusion.base import CRFHead
from mmlabel.fusion.configs import TextConfig
from mmlabel.fusion.crf import gather_words


class TextHead(CRFHead):
    """A linear layer from each word's text state to tag scores, and a CRF; image states are ignored."""

    Config = TextConfig

    def __init__(self, config: TextConfig | None = None, **arguments):
        super().__init__(config, **arguments)  # text_dim, num_tags, image_dim, the allowed tag moves, options
        self.emissions = nn.Linear(self.text_dim, self.num_tags)

    def forward(self, text_states: torch.Tensor, first_subword_index: torch.Tensor,
                image_states: torch.Tensor | None = None, image_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, tokens, text_dim) text states, (batch, words) first sub-word positions -> (batch, words, tags)
        emissions; `image_states` and `image_mask` are accepted and ignored."""
        return self.emissions(self.dropout(gather_words(text_states, first_subword_index)))
