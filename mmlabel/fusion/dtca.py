"""The DTCA fusion head (Yu et al., "Dual-Encoder Transformers with Cross-modal Alignment for Multimodal Aspect-based
Sentiment Analysis", AACL 2022): text states attend to image patch states, then an MLP, two LayerNorms and two
residual connections (the first adds the text states), a linear layer to emission scores and a CRF over words.

    fused  = LayerNorm(text + CrossAttention(query=text, key=value=image))
    output = LayerNorm(fused + MLP(fused))
    emissions = Linear(output at each word's first sub-word)      # (batch, words, tags), decoded by Viterbi

Without image states (the text-only baseline) the cross-attention term is left out.
"""
import torch
from torch import nn

from mmlabel.errors import ComponentError
from mmlabel.fusion.crf import WordCRF, gather_words
from mmlabel.configs import Configured
from mmlabel.fusion.configs import DTCAConfig


class DTCAHead(Configured, nn.Module):
    """Text-to-image cross-attention fusion with a CRF: emissions per word, CRF loss per example, Viterbi decoding."""

    Config = DTCAConfig

    def __init__(
        self,
        config: DTCAConfig | None = None,
        *,
        text_dim: int,
        num_tags: int,
        image_dim: int | None = None,
        allowed_start: list[bool] | None = None,
        allowed_transitions: list[list[bool]] | None = None,
        allowed_end: list[bool] | None = None,
        **options,
    ):
        super().__init__(config, **options)
        self.text_dim, self.image_dim, self.num_tags = text_dim, image_dim, num_tags
        if image_dim is not None:
            if text_dim % self.config.heads:
                raise ComponentError(f"fusion_head.heads: the text hidden size {text_dim} is not divisible by "
                                     f"{self.config.heads} heads")
            self.cross_attention = nn.MultiheadAttention(
                text_dim, self.config.heads, dropout=self.config.dropout, kdim=image_dim, vdim=image_dim, batch_first=True
            )
        else:
            self.cross_attention = None
        self.attention_norm = nn.LayerNorm(text_dim)
        hidden = max(1, round(text_dim * self.config.mlp_ratio))
        self.mlp = nn.Sequential(
            nn.Linear(text_dim, hidden), nn.GELU(), nn.Dropout(self.config.dropout), nn.Linear(hidden, text_dim)
        )
        self.output_norm = nn.LayerNorm(text_dim)
        self.dropout = nn.Dropout(self.config.dropout)
        self.emissions = nn.Linear(text_dim, num_tags)
        self.crf = WordCRF(num_tags, allowed_start, allowed_transitions, allowed_end,
                           constrained=self.config.constrained)

    def forward(
        self,
        text_states: torch.Tensor,
        first_subword_index: torch.Tensor,
        image_states: torch.Tensor | None = None,
        image_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(batch, tokens, text_dim) text states, (batch, words) first sub-word positions, optional
        (batch, patches, image_dim) image states and (batch, patches) mask -> (batch, words, tags) emissions."""
        attended = torch.zeros_like(text_states)
        if image_states is not None:
            if self.cross_attention is None:
                raise ValueError("this dtca head was built without an image encoder (image_dim=None)")
            attended = self._attend(text_states, image_states, image_mask)
        fused = self.attention_norm(text_states + self.dropout(attended))
        output = self.output_norm(fused + self.dropout(self.mlp(fused)))
        return self.emissions(gather_words(output, first_subword_index))

    def loss(self, emissions: torch.Tensor, tags: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """(batch,) CRF negative log-likelihood of the gold tags."""
        return self.crf.neg_log_likelihood(emissions, tags, word_mask)

    def decode(self, emissions: torch.Tensor, word_mask: torch.Tensor) -> list[list[int]]:
        """Viterbi tag ids per example, one per real word."""
        return self.crf.decode(emissions, word_mask)

    def attention(self, text_states: torch.Tensor, first_subword_index: torch.Tensor, image_states: torch.Tensor,
                  image_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, words, patches) weights of the cross-attention from each word's first sub-word to the patches,
        averaged over heads (the optional `attention` member of the fusion-head contract; in eval mode, since the
        weights are taken after attention dropout): rows sum to 1 over real patches, padded patches get 0."""
        if self.cross_attention is None:
            raise ValueError("this dtca head was built without an image encoder (image_dim=None): it has no attention")
        _, weights = self._cross_attention(text_states, image_states, image_mask, need_weights=True)
        return gather_words(weights, first_subword_index)  # (batch, words, patches)

    def _attend(self, text_states, image_states, image_mask):
        attended, _ = self._cross_attention(text_states, image_states, image_mask, need_weights=False)
        return attended  # (batch, tokens, text_dim)

    def _cross_attention(self, text_states, image_states, image_mask, need_weights: bool):
        """The attended states (batch, tokens, text_dim) and, with `need_weights`, the head-averaged weights
        (batch, tokens, patches); both 0 for an example without a real patch."""
        if image_mask is None:
            image_mask = torch.ones(image_states.shape[:2], dtype=torch.bool, device=image_states.device)
        # An example with no real patch would make softmax NaN: let it see every patch, then drop the result.
        no_image = ~image_mask.any(1)
        ignore = ~(image_mask | no_image[:, None])
        attended, weights = self.cross_attention(text_states, image_states, image_states, key_padding_mask=ignore,
                                                 need_weights=need_weights, average_attn_weights=True)
        if weights is not None:
            weights = weights.masked_fill(no_image[:, None, None], 0.0)
        return attended.masked_fill(no_image[:, None, None], 0.0), weights
