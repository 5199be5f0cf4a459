"""Hugging Face text encoders: any `AutoModel` checkpoint (BERT, RoBERTa, ALBERT, ELECTRA, ...) by hub id or local
directory, or a randomly initialised model of a family, with its tokenizer and word-to-sub-word bookkeeping."""
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmlabel.errors import ComponentError
from mmlabel.configs import Configured
from mmlabel.text_encoders.configs import HFTextConfig


class HFTextEncoder(Configured, nn.Module):
    """A Hugging Face encoder mapping token ids to (batch, tokens, hidden) states, plus the tokenizer that turns
    pre-split words into those ids and records where each word's first sub-word is."""

    Config = HFTextConfig

    def __init__(self, config: HFTextConfig | None = None, **options):
        super().__init__(config, **options)
        self.tokenizer = _load_tokenizer(self.config)
        self.model = _without_pooler(_load_model(self.config, self.tokenizer))
        self.hidden_size: int = self.model.config.hidden_size
        if self.config.freeze:
            self.model.requires_grad_(False)

    @property
    def pad_token_id(self) -> int | None:
        """The id `tokenize` pads `input_ids` with (RoBERTa's position ids count from it), so that sentences tokenised
        once can be padded into batches later (`mmlabel.data.token_rows`); None for a tokenizer that pads on the left
        or has no pad token: such an encoder is asked to tokenise every batch."""
        if self.tokenizer.padding_side != "right" or self.tokenizer.pad_token_id is None:
            return None
        return int(self.tokenizer.pad_token_id)

    accepts_prefix: bool = True
    """Every self-attention layer can attend to image prefix states too (`contracts.PrefixTextEncoder`)."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
                prefix_states: torch.Tensor | None = None, prefix_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, tokens) ids and mask -> (batch, tokens, hidden) last-layer states. With `prefix_states`
        (batch, prefix, hidden) and `prefix_mask` (batch, prefix) bool (default: all True), every self-attention layer
        also attends to the prefix, through its own key and value projections (mmlabel.text_encoders.prefix)."""
        attention_mask = self._prepared_mask(attention_mask)
        if prefix_states is None:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        from mmlabel.text_encoders.prefix import prefixed

        if prefix_states.shape[-1] != self.hidden_size:
            raise ValueError(f"prefix states are {tuple(prefix_states.shape)}; their last size must be the "
                             f"encoder's hidden size {self.hidden_size}")
        if prefix_mask is None:
            prefix_mask = torch.ones(prefix_states.shape[:2], dtype=torch.bool, device=prefix_states.device)
        with prefixed(self.model, prefix_states, prefix_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def _prepared_mask(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """The (batch, tokens) padding mask as the (batch, 1, 1, tokens) mask the attention product takes (bool for
        sdpa, additive float for eager), for the families that accept one prepared (those whose masks
        `transformers.masking_utils.create_bidirectional_mask` builds): built from the 2D mask, transformers first asks
        whether the batch has any padding at all, a read that makes the host wait for the device at every step."""
        implementation = self.model.config._attn_implementation
        if implementation not in ("sdpa", "eager") or not _takes_prepared_masks(self.model):
            return attention_mask
        keep = attention_mask.bool()[:, None, None, :]
        if implementation == "sdpa":
            return keep
        return torch.zeros(keep.shape, dtype=torch.float32, device=keep.device).masked_fill(
            ~keep, torch.finfo(torch.float32).min)

    accepts_context: bool = True
    """`tokenize` reads context text after each sentence (`contracts.ContextTextEncoder`)."""

    def tokenize(self, words: list[list[str]], max_tokens: int, *,
                 contexts: list[str | None] | None = None) -> dict[str, torch.Tensor]:
        """Token ids for pre-split words, padded to the batch's longest, with each word's first sub-word position.

        Returns `input_ids` and `attention_mask` (batch, tokens), `first_subword_index` (batch, words) long and
        `word_mask` (batch, words) bool, False for padding words and for words cut off by `max_tokens`. A word the
        tokenizer maps to nothing (a zero-width space, a control character) is replaced by the unknown token so
        that every word that fits keeps a position. With `contexts` (a str or None per sentence), each sentence is
        encoded as the pair `sentence [SEP] context` (the tokenizer's own pair template), the context truncated,
        never the sentence (`_with_contexts`); the result then also holds `context_mask` (batch, tokens) bool.
        """
        words = _replace_empty_words(self.tokenizer, words)
        if contexts is not None and any(contexts):
            return self._with_contexts(words, max_tokens, contexts)
        encoding = self.tokenizer(
            words, is_split_into_words=True, truncation=True, max_length=max_tokens, padding="longest",
            return_tensors="pt",
        )
        first_subword_index, word_mask = _word_positions(words, [encoding.word_ids(row) for row in range(len(words))])
        return {
            "input_ids": encoding["input_ids"],
            "attention_mask": encoding["attention_mask"],
            "first_subword_index": first_subword_index,
            "word_mask": word_mask,
        }

    def _with_contexts(self, words: list[list[str]], max_tokens: int, contexts: list[str | None]) -> dict:
        """`tokenize` with context: each sentence is first encoded alone (cut at `max_tokens` as without context);
        where that leaves room for the pair's extra special tokens and one context token, it is encoded again as a
        pair with `truncation="only_second"`, which cuts the context alone (a fast tokenizer raises where the
        sentence leaves no room, hence the first pass). The context is split on white space into words."""
        if len(contexts) != len(words):
            raise ValueError(f"{len(contexts)} contexts for {len(words)} sentences")
        alone = self.tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_tokens)
        extra = self.tokenizer.num_special_tokens_to_add(pair=True) - self.tokenizer.num_special_tokens_to_add()
        paired = [row for row, context in enumerate(contexts) if context and context.split()
                  and len(alone["input_ids"][row]) + extra + 1 <= max_tokens]
        pairs = self.tokenizer([words[row] for row in paired], [contexts[row].split() for row in paired],
                               is_split_into_words=True, truncation="only_second", max_length=max_tokens
                               ) if paired else None
        ids, word_ids, context_starts = [], [], []
        pair_index = {row: index for index, row in enumerate(paired)}
        for row in range(len(words)):
            encoding, index = (pairs, pair_index[row]) if row in pair_index else (alone, row)
            ids.append(encoding["input_ids"][index])
            word_ids.append([word if sequence == 0 else None for word, sequence in
                             zip(encoding.word_ids(index), encoding.sequence_ids(index))])
            sequences = encoding.sequence_ids(index)
            context_starts.append(sequences.index(1) if 1 in sequences else len(sequences))
        return self._padded(words, ids, word_ids, context_starts)

    def _padded(self, words, ids: list[list[int]], word_ids: list[list[int | None]], context_starts: list[int]
                ) -> dict[str, torch.Tensor]:
        """Unpadded rows of ids padded to the longest on the tokenizer's padding side; `context_mask` True from
        each row's `context_starts` token to its last real token."""
        tokens = max(len(row) for row in ids)
        left = self.tokenizer.padding_side == "left"
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(ids), tokens), pad if pad is not None else 0, dtype=torch.long)
        attention_mask = torch.zeros(len(ids), tokens, dtype=torch.long)
        context_mask = torch.zeros(len(ids), tokens, dtype=torch.bool)
        shifted = []
        for row, (row_ids, start) in enumerate(zip(ids, context_starts)):
            offset = tokens - len(row_ids) if left else 0
            input_ids[row, offset:offset + len(row_ids)] = torch.tensor(row_ids, dtype=torch.long)
            attention_mask[row, offset:offset + len(row_ids)] = 1
            context_mask[row, offset + start:offset + len(row_ids)] = True
            shifted.append([None] * offset + word_ids[row])
        first_subword_index, word_mask = _word_positions(words, shifted)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "first_subword_index": first_subword_index,
                "word_mask": word_mask, "context_mask": context_mask}

    def export(self, directory: str | Path) -> dict[str, Any]:
        """Write the tokenizer and the architecture (config.json, no weights) to `directory`; return the options that
        rebuild this encoder from there with no download. A run directory keeps them beside its weights."""
        directory = Path(directory)
        self.save_tokenizer(directory)
        self.model.config.save_pretrained(str(directory))
        return {
            "checkpoint": str(directory.resolve()), "tokenizer": str(directory.resolve()), "init": "random",
            "config_overrides": {"vocab_size": self.model.config.vocab_size}, "attn_implementation":
            self.config.attn_implementation, "freeze": self.config.freeze,
        }

    def save_tokenizer(self, directory: str | Path) -> None:
        """Write the tokenizer's files to `directory` (reload with `tokenizer = directory`)."""
        self.tokenizer.save_pretrained(str(directory))


# Byte-level BPE tokenizers refuse pre-split words unless each word gets its leading space back.
_PREFIX_SPACE_TOKENIZERS = ("Roberta", "GPT2", "Bart", "Longformer", "Deberta", "Camembert", "XLMRoberta")


def _load_tokenizer(config: HFTextConfig):
    from transformers import AutoTokenizer

    source = config.tokenizer or config.checkpoint
    if source is None:
        raise ComponentError("text_encoder: give a `checkpoint` or a `tokenizer` (hub id or local directory)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        if type(tokenizer).__name__.startswith(_PREFIX_SPACE_TOKENIZERS) and not getattr(tokenizer, "add_prefix_space", False):
            tokenizer = AutoTokenizer.from_pretrained(source, add_prefix_space=True)
    except (OSError, ValueError) as error:
        raise ComponentError(_missing_message("tokenizer", source, error)) from None
    return tokenizer


def _load_model(config: HFTextConfig, tokenizer) -> nn.Module:
    from transformers import AutoModel

    model_config = _model_config(config)
    if config.init == "random":
        # The embedding table and pad id must match the tokenizer, whatever the family's defaults are.
        overrides = config.config_overrides
        if "vocab_size" not in overrides:
            model_config.vocab_size = max(len(tokenizer), 1)
        if "pad_token_id" not in overrides and tokenizer.pad_token_id is not None:
            model_config.pad_token_id = tokenizer.pad_token_id
        return _with_attention(lambda **kw: AutoModel.from_config(model_config, **kw), config.attn_implementation)
    try:
        return _with_attention(
            lambda **kw: AutoModel.from_pretrained(config.checkpoint, config=model_config, **kw), config.attn_implementation
        )
    except OSError as error:
        raise ComponentError(_missing_message("weights", config.checkpoint, error)) from None


def _without_pooler(model: nn.Module) -> nn.Module:
    """Drop the pooling layer (a dense layer over the first token, for sentence classification) that the tagger never
    uses: it would hold optimiser state for nothing and make DDP look for gradients that never come. Only families
    built to run without one (`add_pooling_layer` in their constructor: BERT, RoBERTa, ALBERT, ...) lose it."""
    import inspect

    if getattr(model, "pooler", None) is not None and "add_pooling_layer" in inspect.signature(type(model)).parameters:
        model.pooler = None
    return model


def _model_config(config: HFTextConfig):
    from transformers import AutoConfig

    overrides = dict(config.config_overrides)
    if config.init == "random" and config.model_type is not None:
        if config.checkpoint is None or not Path(config.checkpoint).is_dir():
            return AutoConfig.for_model(config.model_type, **overrides)
    if config.checkpoint is None:
        raise ComponentError("text_encoder: give a `checkpoint` (hub id or local directory), or `init = \"random\"` "
                             "with a `model_type` such as \"roberta\"")
    try:
        return AutoConfig.from_pretrained(config.checkpoint, **overrides)
    except (OSError, ValueError) as error:
        raise ComponentError(_missing_message("config", config.checkpoint, error)) from None


def _with_attention(build, attn_implementation: str | None):
    if attn_implementation is None:
        return build()
    try:
        return build(attn_implementation=attn_implementation)
    except (ValueError, ImportError):
        if attn_implementation != "sdpa":
            raise
        return build(attn_implementation="eager")


def _takes_prepared_masks(model: nn.Module) -> bool:
    """Whether the model's family builds its attention masks with `create_bidirectional_mask`, which passes a
    prepared 4D mask through as it is (BERT, RoBERTa, ALBERT, ELECTRA, ...)."""
    import sys

    return "create_bidirectional_mask" in vars(sys.modules[type(model).__module__])


def _word_positions(words: list[list[str]], word_ids: list[list[int | None]]) -> tuple[torch.Tensor, torch.Tensor]:
    """`first_subword_index` (batch, words) long and `word_mask` (batch, words) bool from each row's token-to-word
    map (None on special, context and padding tokens)."""
    longest = max((len(sentence) for sentence in words), default=0)
    first_subword_index = torch.zeros(len(words), longest, dtype=torch.long)
    word_mask = torch.zeros(len(words), longest, dtype=torch.bool)
    for row, row_words in enumerate(word_ids):
        for position, word in reversed(list(enumerate(row_words))):
            if word is not None:
                first_subword_index[row, word] = position
                word_mask[row, word] = True
    return first_subword_index, word_mask


def _replace_empty_words(tokenizer, words: list[list[str]]) -> list[list[str]]:
    distinct = sorted({word for sentence in words for word in sentence})
    if not distinct:
        return words
    pieces = tokenizer([[word] for word in distinct], is_split_into_words=True, add_special_tokens=False)["input_ids"]
    empty = {word for word, ids in zip(distinct, pieces) if not ids}
    if not empty:
        return words
    return [[tokenizer.unk_token if word in empty else word for word in sentence] for sentence in words]


def _missing_message(what: str, source: str, error: Exception) -> str:
    offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
    reason = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else type(error).__name__
    return (
        f"text_encoder: cannot load the {what} of {source!r}{offline}: {reason}. Give `checkpoint` as a local "
        f"directory (a `save_pretrained` folder), or download it once and point HF_HOME at that cache with "
        f"HF_HUB_OFFLINE=1, or use init = \"random\" with model_type for an untrained encoder"
    )
