"""The joint tagging model: a text encoder, an optional image encoder, a fusion head with its CRF, a text-only
auxiliary tagger and a token-patch alignment loss, trained on L = w * L_crf + alpha * L_text + beta * L_align, where
L_crf is the CRF's negative log-likelihood averaged (`crf_reduction = "mean"`) or summed (`"sum"`, as the authors' code
did) over the batch and w is `crf_weight` (the authors divided the sum by 10). docs/model.md, "Loss balance", works
out how these choices weigh the three terms against each other.

The text-only baseline is the same model without an image encoder (no alignment then); the ablations are alpha = 0
and beta = 0. Predictions always come from the fusion head's Viterbi decoding.
"""
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from mmlabel.contracts import declares, describe
from mmlabel.errors import ComponentError
from mmlabel.fusion.crf import gather_words

# why word-to-patch attention is refused (Tagger.predict's ValueError, the server's 422)
NO_ATTENTION = "this model has no word-to-patch attention (text only, or a fusion head without `attention`)"


@dataclass
class ModelOutput:
    """A forward pass: the loss to optimise, its detached parts (`crf`, `text`, `align`) raw and weighted, and the
    word emissions. Raw: the CRF's negative log-likelihood per sentence (batch mean), the text tagger's cross-entropy
    per word, the alignment distance per sentence; weighted: what each adds to `loss` (they sum to it)."""

    loss: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    weighted_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    emissions: torch.Tensor | None = None  # (batch, words, tags)


class TaggingModel(nn.Module):
    """Words (+ image) in, a tag per word out. Build it from a recipe with `from_recipe`, or from components:

        text = HFTextEncoder(checkpoint="roberta-base")
        image = TimmImageEncoder(model="vit_base_patch16_224")
        head = DTCAHead(text_dim=text.hidden_size, image_dim=image.hidden_size, num_tags=5)
        model = TaggingModel(text, head, image_encoder=image, alignment_loss=EMDAlignment(), alpha=0.6, beta=0.6)
    """

    def __init__(
        self,
        text_encoder: nn.Module,
        fusion_head: nn.Module,
        image_encoder: nn.Module | None = None,
        alignment_loss: nn.Module | None = None,
        alpha: float = 0.6,
        beta: float = 0.6,
        crf_reduction: str = "mean",
        crf_weight: float = 1.0,
        align_context: bool = False,
    ):
        super().__init__()
        self.text_encoder = text_encoder
        self.image_encoder = image_encoder
        self.fusion_head = fusion_head
        self.alignment_loss = alignment_loss
        self.alpha, self.beta = alpha, beta
        if crf_reduction not in ("mean", "sum"):
            raise ValueError(f"crf_reduction must be 'mean' or 'sum', not {crf_reduction!r}")
        self.crf_reduction, self.crf_weight = crf_reduction, crf_weight
        self.align_context = align_context  # the alignment loss over the context's tokens too (`loss.align_context`)
        self.num_tags: int = fusion_head.num_tags
        if declares(fusion_head, "needs_prefix") and not declares(text_encoder, "accepts_prefix"):
            raise ComponentError(f"{describe('fusion_head', fusion_head)} puts the image into the text encoder's "
                                 f"layers, and {describe('text_encoder', text_encoder)} does not accept prefixes "
                                 f"(`accepts_prefix`): use text_encoder 'hf'")
        # The text-only auxiliary tagger: linear + softmax over the text encoder's states (DTCA's L_text).
        self.text_head = nn.Linear(text_encoder.hidden_size, self.num_tags)
        # Alignment compares token and patch states in one space: image states are projected when sizes differ.
        needs_projection = image_encoder is not None and image_encoder.hidden_size != text_encoder.hidden_size
        self.image_projection = (nn.Linear(image_encoder.hidden_size, text_encoder.hidden_size)
                                 if needs_projection else nn.Identity())

    @classmethod
    def from_recipe(
        cls,
        recipe,
        num_tags: int,
        allowed_start: list[bool] | None = None,
        allowed_transitions: list[list[bool]] | None = None,
        allowed_end: list[bool] | None = None,
    ) -> "TaggingModel":
        """The model a recipe describes, every part built through the registry; `allowed_*` come from the tag scheme."""
        from mmlabel.registry import build

        text_encoder = build("text_encoder", recipe.text_encoder)
        image_encoder = build("image_encoder", recipe.image_encoder) if recipe.image_encoder is not None else None
        fusion_head = build(
            "fusion_head", recipe.fusion_head, text_dim=text_encoder.hidden_size,
            image_dim=image_encoder.hidden_size if image_encoder is not None else None, num_tags=num_tags,
            allowed_start=allowed_start, allowed_transitions=allowed_transitions, allowed_end=allowed_end,
        )
        alignment_loss = build("alignment_loss", recipe.alignment_loss) if image_encoder is not None else None
        return cls(text_encoder, fusion_head, image_encoder=image_encoder, alignment_loss=alignment_loss,
                   alpha=recipe.loss.alpha, beta=recipe.loss.beta, crf_reduction=recipe.loss.crf_reduction,
                   crf_weight=recipe.loss.crf_weight, align_context=recipe.loss.align_context)

    @classmethod
    def for_scheme(cls, recipe, scheme) -> "TaggingModel":
        """The recipe's model over a tag scheme's tags, decoding only the sequences the scheme allows."""
        return cls.from_recipe(recipe, len(scheme.tags), scheme.allowed_start(), scheme.allowed_transitions(),
                               scheme.allowed_end())

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        """The joint loss of a batch with `tags` (batch, words); padding tags are ignored through `word_mask`."""
        text_states, image_states, image_mask = self._states(batch)
        # started now, joined last: an alignment loss solved on the host (the exact EMD) works while the device runs
        # the fusion head, the CRF and the text tagger
        align_loss = self._begin_align_loss(text_states, self.alignment_text_mask(batch), image_states, image_mask)
        emissions = self.fusion_head(text_states, batch["first_subword_index"], image_states, image_mask)
        word_mask = batch["word_mask"].bool()
        crf_losses = self.fusion_head.loss(emissions, batch["tags"], word_mask)  # (batch,)
        losses = {"crf": crf_losses.mean(), "text": self._text_loss(text_states, batch, word_mask),
                  "align": align_loss()}
        crf_term = crf_losses.sum() if self.crf_reduction == "sum" else losses["crf"]
        weighted = {"crf": self.crf_weight * crf_term, "text": self.alpha * losses["text"],
                    "align": self.beta * losses["align"]}
        loss = weighted["crf"] + weighted["text"] + weighted["align"]
        return ModelOutput(loss=loss, losses={key: value.detach() for key, value in losses.items()},
                           weighted_losses={key: value.detach() for key, value in weighted.items()},
                           emissions=emissions)

    def train(self, mode: bool = True) -> "TaggingModel":
        """Train mode, except for a frozen image encoder: a fixed feature extractor runs in eval mode (no dropout),
        so its states do not depend on the step and can be cached."""
        super().train(mode)
        from mmlabel.feature_cache import is_frozen

        if is_frozen(self.image_encoder):
            self.image_encoder.eval()
        return self

    @torch.no_grad()
    def decode(self, batch: dict[str, torch.Tensor]) -> list[list[int]]:
        """Viterbi tag ids per example, one per real word (call `eval()` first for deterministic results)."""
        emissions = self._encode(batch)[3]
        return self.fusion_head.decode(emissions, batch["word_mask"].bool())

    def text_prefix(self, image_states: torch.Tensor | None, image_mask: torch.Tensor | None) -> dict:
        """Early fusion: the keyword arguments of the text encoder's `forward`, `prefix_states` and `prefix_mask`
        from the fusion head's `prefix`, where the head asks for it and there is an image; else none."""
        if image_states is None or not declares(self.fusion_head, "needs_prefix"):
            return {}
        prefix_states, prefix_mask = self.fusion_head.prefix(image_states, image_mask)
        return {"prefix_states": prefix_states, "prefix_mask": prefix_mask}

    @property
    def has_attention(self) -> bool:
        """Whether `decode_with_attention` works: the model reads images and its fusion head has the optional
        `attention`."""
        return self.image_encoder is not None and getattr(self.fusion_head, "attention", None) is not None

    def decode_with_attention(self, batch: dict[str, torch.Tensor]) -> tuple[list[list[int]], torch.Tensor]:
        """`decode` and the fusion head's word-to-patch attention (its optional `attention` member) from one encoding
        pass: the tag ids per example and the (batch, words, patches) weights, the patches being the image
        encoder's tokens in its order."""
        if not self.has_attention:
            raise ValueError(NO_ATTENTION)
        text_states, image_states, image_mask = self._states(batch)
        first = batch["first_subword_index"]
        emissions = self.fusion_head(text_states, first, image_states, image_mask)
        weights = self.fusion_head.attention(text_states, first, image_states, image_mask)
        return self.fusion_head.decode(emissions, batch["word_mask"].bool()), weights

    def _encode(self, batch):
        text_states, image_states, image_mask = self._states(batch)
        emissions = self.fusion_head(text_states, batch["first_subword_index"], image_states, image_mask)
        return text_states, image_states, image_mask, emissions

    def _states(self, batch):
        if declares(self.fusion_head, "needs_prefix"):  # early fusion: the image first, into the text encoder
            image_states, image_mask = self._image_states(batch)
            text_states = self.text_encoder(batch["input_ids"], batch["attention_mask"],
                                            **self.text_prefix(image_states, image_mask))
        else:  # text first, as always: the order in which dropout draws random numbers is kept
            text_states = self.text_encoder(batch["input_ids"], batch["attention_mask"])  # (batch, tokens, text_dim)
            image_states, image_mask = self._image_states(batch)
        return text_states, image_states, image_mask

    def _image_states(self, batch):
        """(batch, patches, image_dim) states and (batch, patches) mask, or None and None without an image."""
        if "image_states" in batch:  # cached states of a frozen image encoder (mmlabel.feature_cache)
            return batch["image_states"], batch["image_mask"]
        if self.image_encoder is not None:
            return self.image_encoder(batch["pixel_values"])
        return None, None

    def _text_loss(self, text_states, batch, word_mask) -> torch.Tensor:
        """Cross-entropy of the text-only tagger on first sub-words, averaged over real words (0 for a batch without
        any): masked, not indexed by the mask, whose result's size the host would have to wait for."""
        logits = self.text_head(gather_words(text_states, batch["first_subword_index"]))  # (batch, words, tags)
        per_word = F.cross_entropy(logits.float().flatten(0, 1), batch["tags"].flatten().clamp(min=0),
                                   reduction="none").view(word_mask.shape)
        mask = word_mask.to(per_word.dtype)
        return (per_word * mask).sum() / mask.sum().clamp(min=1.0)

    def alignment_text_mask(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(batch, tokens) bool: the tokens the alignment loss aligns with the patches: the real tokens, less the
        context's (`context_mask`, where the batch has context) unless `align_context`. The image is aligned with
        the sentence it illustrates; context text (a caption, OCR) is about the image already."""
        mask = batch["attention_mask"].bool()
        if "context_mask" in batch and not self.align_context:
            mask = mask & ~batch["context_mask"].bool()
        return mask

    def _begin_align_loss(self, text_states, text_mask, image_states, image_mask) -> Callable[[], torch.Tensor]:
        """The batch mean of the alignment loss, as a function that returns it: a loss with the optional `begin`
        member (`contracts.DeferredAlignmentLoss`) starts its work here and finishes when it is called."""
        if image_states is None or self.alignment_loss is None or self.beta == 0:
            zero = text_states.new_zeros((), dtype=torch.float32)
            return lambda: zero
        arguments = (text_states, text_mask, self.image_projection(image_states), image_mask)
        if callable(getattr(self.alignment_loss, "begin", None)):
            finish = self.alignment_loss.begin(*arguments)
            return lambda: finish().mean()
        distances = self.alignment_loss(*arguments)
        return lambda: distances.mean()
