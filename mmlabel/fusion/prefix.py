"""The early-fusion prefix head, in the spirit of HVPNeT (Chen et al., "Good Visual Guidance Make A Better Extractor:
Hierarchical Visual Prefix for Multimodal Entity and Relation Extraction", Findings of NAACL 2022; reference code
github.com/zjunlp/HVPNeT): the image conditions the words from the
text encoder's first layer on. The head maps the patch states to prefix states of the text size; the model hands
them to the text encoder, every self-attention layer of which also attends to them (each layer's own key and value
projections make that layer's prefix keys and values: `contracts.PrefixTextEncoder`); the head then tags the
resulting word states:

    prefix    = LayerNorm(Linear(tanh(Linear(patch states))))       # (batch, patches, text_dim), real patches only
    text      = TextEncoder(tokens, prefix in every self-attention layer)
    emissions = Linear(Dropout(text state of each word's first sub-word))   # (batch, words, tags), Viterbi

HVPNeT makes each layer's prefix keys and values with the head's own projections, from a pyramid of ResNet feature
maps mixed by a per-layer gate; here one mapping of the image encoder's patch states serves every layer, and the
layers' own projections differ. It needs a text encoder that accepts prefixes (`hf`; `TaggingModel` says so in one
line otherwise). Without an image (a text-only model) it is the `text` head.
"""
import torch
from torch import nn

from mmlabel.fusion.base import CRFHead, real_patch_mask
from mmlabel.fusion.configs import PrefixConfig
from mmlabel.fusion.crf import gather_words


class PrefixHead(CRFHead):
    """Early fusion: patch states become key/value prefixes of every text self-attention layer; a linear layer and
    a CRF tag the words."""

    Config = PrefixConfig

    def __init__(self, config: PrefixConfig | None = None, **arguments):
        super().__init__(config, **arguments)  # text_dim, num_tags, image_dim, the allowed tag moves, options
        text_dim, image_dim, num_tags = self.text_dim, self.image_dim, self.num_tags
        # The model routes `prefix(image)` into the text encoder where this is True (`contracts.PrefixFusionHead`).
        self.needs_prefix: bool = image_dim is not None
        self.prefix_projection = None
        if image_dim is not None:
            self.prefix_projection = nn.Sequential(nn.Linear(image_dim, text_dim), nn.Tanh(),
                                                   nn.Linear(text_dim, text_dim), nn.LayerNorm(text_dim))
        self.emissions = nn.Linear(text_dim, num_tags)

    def prefix(self, image_states: torch.Tensor, image_mask: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, patches, image_dim) image states and (batch, patches) mask -> prefix states
        (batch, patches, text_dim) and their mask (batch, patches) bool, for every self-attention layer of the text
        encoder."""
        self._check_image(image_states)
        return self.dropout(self.prefix_projection(image_states)), real_patch_mask(image_states, image_mask)

    def forward(self, text_states: torch.Tensor, first_subword_index: torch.Tensor,
                image_states: torch.Tensor | None = None, image_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, tokens, text_dim) text states (the image already in them, through the prefixes), (batch, words)
        first sub-word positions -> (batch, words, tags) emissions; `image_states` and `image_mask` are not used
        again here."""
        return self.emissions(self.dropout(gather_words(text_states, first_subword_index)))
