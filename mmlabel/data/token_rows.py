"""Sentences tokenised once per run: each example's words go through the text encoder's `tokenize` once and the row
it gives is kept unpadded; batches are padded from the kept rows (`pad_rows`), equal to what `tokenize` returns for
the whole batch: `tokenize` pads on the right to the batch's longest, `input_ids` with the encoder's `pad_token_id`,
`attention_mask` and `first_subword_index` with 0 and `word_mask` with False, and a sentence's row does not depend on
the other sentences of its batch (truncation at `max_tokens` and the words mapped to nothing are per sentence).

A post with context (`Example.context`, for an encoder that reads it: `contracts.ContextTextEncoder`) is kept under
its words and its context, and its row also holds `context_mask` (tokens,)."""
from typing import Callable

import numpy as np
import torch

KEYS = ("input_ids", "attention_mask", "first_subword_index", "word_mask")
TOKEN_KEYS = ("input_ids", "attention_mask", "context_mask")  # one entry per token; the others, one per word
CHUNK = 256  # sentences per `tokenize` call: the fast tokenizers batch in Rust


class TokenRows:
    """Words (a tuple) -> their unpadded row: `input_ids` and `attention_mask` (tokens,), `first_subword_index` and
    `word_mask` (words,), as numpy arrays (they pickle by value into data-loader workers)."""

    def __init__(self, tokenize: Callable, max_tokens: int, pad_token_id: int, reads_context: bool = False):
        self.tokenize = tokenize
        self.max_tokens = max_tokens
        self.pad_token_id = pad_token_id
        self.reads_context = reads_context  # whether `tokenize` takes `contexts=` (contracts.ContextTextEncoder)
        self.rows: dict[tuple[tuple[str, ...], str], dict[str, np.ndarray]] = {}

    @classmethod
    def for_encoder(cls, text_encoder, max_tokens: int) -> "TokenRows | None":
        """The rows of `text_encoder`'s `tokenize`; None for an encoder without an int `pad_token_id` (it is then
        asked to tokenise every batch, as before)."""
        pad = getattr(text_encoder, "pad_token_id", None)
        if not isinstance(pad, int) or isinstance(pad, bool):
            return None
        from mmlabel.contracts import declares

        return cls(text_encoder.tokenize, max_tokens, pad, declares(text_encoder, "accepts_context"))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "tokenize": None}  # workers only read the rows; the encoder stays here

    def fill(self, sentences: list[list[str]], contexts: list[str | None] | None = None) -> None:
        """Tokenise every sentence (with its context, where `contexts` gives one) not kept yet, in chunks."""
        keys = [_key(words, context) for words, context in zip(sentences, contexts or [None] * len(sentences))]
        new = list(dict.fromkeys(key for key in keys if key not in self.rows))
        for start in range(0, len(new), CHUNK):
            chunk = new[start:start + CHUNK]
            words = [list(sentence) for sentence, _ in chunk]
            with_context = self.reads_context and any(context for _, context in chunk)
            batch = (self.tokenize(words, self.max_tokens, contexts=[context or None for _, context in chunk])
                     if with_context else self.tokenize(words, self.max_tokens))
            arrays = {key: batch[key].numpy() for key in (*KEYS, "context_mask") if key in batch}
            tokens = arrays["attention_mask"].sum(1)  # right padding: a row's tokens come first
            for row, key in enumerate(chunk):
                self.rows[key] = {name: value[row, :tokens[row] if name in TOKEN_KEYS else len(key[0])].copy()
                                  for name, value in arrays.items()}

    def row(self, words: list[str], context: str | None = None) -> dict[str, np.ndarray]:
        key = _key(words, context)
        if key not in self.rows:
            self.fill([list(words)], [context])
        return self.rows[key]


def _key(words, context: str | None) -> tuple[tuple[str, ...], str]:
    return tuple(words), context or ""


def pad_rows(rows: list[dict[str, np.ndarray]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """A batch of kept rows padded to its longest: what `tokenize` gives for the batch's sentences."""
    tokens = max(len(row["input_ids"]) for row in rows)
    words = max(len(row["word_mask"]) for row in rows)
    first = rows[0]
    batch = {
        "input_ids": np.full((len(rows), tokens), pad_token_id, dtype=first["input_ids"].dtype),
        "attention_mask": np.zeros((len(rows), tokens), dtype=first["attention_mask"].dtype),
        "first_subword_index": np.zeros((len(rows), words), dtype=first["first_subword_index"].dtype),
        "word_mask": np.zeros((len(rows), words), dtype=first["word_mask"].dtype),
    }
    if any("context_mask" in row for row in rows):  # rows without context have none: False there
        batch["context_mask"] = np.zeros((len(rows), tokens), dtype=bool)
    for index, row in enumerate(rows):
        for key in batch:
            if key in row:
                batch[key][index, :len(row[key])] = row[key]
    return {key: torch.from_numpy(value) for key, value in batch.items()}
