"""The visual-gate fusion head of UMT (Yu et al., "Improving Multimodal Named Entity Recognition via Entity Span
Detection with Unified Multimodal Transformer", ACL 2020; reference code github.com/jefferyYu/UMT,
`MTCCMBertForMMTokenClassificationCRF`): each word attends to the image patches, and a sigmoid gate computed from the
word and what it attended to decides, dimension by dimension, how much of the attended image enters the word's state:

    image    = Linear(patch states)                                     # to the text size
    attended = CrossAttention(query=word, key=value=image)              # (batch, words, text_dim), real patches only
    gate     = sigmoid(Linear([word ; attended]))                       # (batch, words, text_dim), in (0, 1)
    emissions = Linear(Dropout([word ; gate * attended]))               # (batch, words, tags), Viterbi

`gate_values(...)` returns the gate for inspection. UMT's other parts (the coupled image-to-text and text-to-text
cross-attention layers that refine the word states before the gate, and the auxiliary entity-span CRF) are left out:
this head is the gate itself over the text encoder's states. Without image states the image half is zeros.
"""
import torch
from torch import nn

from mmlabel.errors import ComponentError
from mmlabel.fusion.base import CRFHead, real_patch_mask
from mmlabel.fusion.configs import GatedConfig
from mmlabel.fusion.crf import gather_words


class GatedHead(CRFHead):
    """Word-to-patch cross-attention whose result enters each word through a sigmoid gate (UMT), and a CRF."""

    Config = GatedConfig

    def __init__(self, config: GatedConfig | None = None, **arguments):
        super().__init__(config, **arguments)  # text_dim, num_tags, image_dim, the allowed tag moves, options
        text_dim, image_dim, num_tags = self.text_dim, self.image_dim, self.num_tags
        if image_dim is not None:
            if text_dim % self.config.heads:
                raise ComponentError(f"fusion_head.heads: the text hidden size {text_dim} is not divisible by "
                                     f"{self.config.heads} heads")
            self.image_projection = nn.Linear(image_dim, text_dim)
            self.cross_attention = nn.MultiheadAttention(text_dim, self.config.heads, batch_first=True,
                                                         dropout=self.config.attention_dropout)
            self.gate = nn.Linear(2 * text_dim, text_dim)
        else:
            self.image_projection = self.cross_attention = self.gate = None
        self.emissions = nn.Linear(2 * text_dim, num_tags)

    def forward(self, text_states: torch.Tensor, first_subword_index: torch.Tensor,
                image_states: torch.Tensor | None = None, image_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, tokens, text_dim) text states, (batch, words) first sub-word positions, optional
        (batch, patches, image_dim) image states and (batch, patches) mask -> (batch, words, tags) emissions."""
        words, gate, attended = self._fuse(text_states, first_subword_index, image_states, image_mask)
        return self.emissions(self.dropout(torch.cat([words, gate * attended], -1)))

    def gate_values(self, text_states: torch.Tensor, first_subword_index: torch.Tensor,
                    image_states: torch.Tensor | None = None, image_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The visual gate of each word, (batch, words, text_dim) in (0, 1): 1 lets the attended image through in
        full, 0 shuts it out (mean over the last dimension for one figure per word). Zeros without an image or for
        an image without a real patch. Same arguments as `forward`; call `eval()` first for dropout-free values."""
        return self._fuse(text_states, first_subword_index, image_states, image_mask)[1]

    def _fuse(self, text_states, first_subword_index, image_states, image_mask):
        words = gather_words(text_states, first_subword_index)  # (batch, words, text_dim)
        if not self._check_image(image_states):
            zeros = torch.zeros_like(words)
            return words, zeros, zeros
        mask = real_patch_mask(image_states, image_mask)
        # An example with no real patch would make softmax NaN: let it see every patch, then drop the result.
        no_image = ~mask.any(1)
        image = self.image_projection(image_states)  # (batch, patches, text_dim)
        attended, _ = self.cross_attention(words, image, image, key_padding_mask=~(mask | no_image[:, None]),
                                           need_weights=False)
        gate = torch.sigmoid(self.gate(torch.cat([words, attended], -1)))
        gate = gate.masked_fill(no_image[:, None, None], 0.0)
        return words, gate, attended
