"""Sentences tokenised once per run: each example's words go through the text encoder's `tokenize` once and the row
it gives is kept unpadded; batches are padded from the kept rows (`pad_rows`), equal to what `tokenize` returns for
the whole batch: `tokenize` pads on the right to the batch's longest, `input_ids` with the encoder's `pad_token_id`,
`attention_mask` and `first_subword_index` with 0 and `word_mask` with False, and a sentence's row does not depend on
the other sentences of its batch (truncation at `max_tokens` and the words mapped to nothing are per sentence)."""
from typing import Callable

import numpy as np
import torch

KEYS = ("input_ids", "attention_mask", "first_subword_index", "word_mask")
CHUNK = 256  # sentences per `tokenize` call: the fast tokenizers batch in Rust


class TokenRows:
    """Words (a tuple) -> their unpadded row: `input_ids` and `attention_mask` (tokens,), `first_subword_index` and
    `word_mask` (words,), as numpy arrays (they pickle by value into data-loader workers)."""

    def __init__(self, tokenize: Callable, max_tokens: int, pad_token_id: int):
        self.tokenize = tokenize
        self.max_tokens = max_tokens
        self.pad_token_id = pad_token_id
        self.rows: dict[tuple[str, ...], dict[str, np.ndarray]] = {}

    @classmethod
    def for_encoder(cls, text_encoder, max_tokens: int) -> "TokenRows | None":
        """The rows of `text_encoder`'s `tokenize`; None for an encoder without an int `pad_token_id` (it is then
        asked to tokenise every batch, as before)."""
        pad = getattr(text_encoder, "pad_token_id", None)
        if not isinstance(pad, int) or isinstance(pad, bool):
            return None
        return cls(text_encoder.tokenize, max_tokens, pad)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "tokenize": None}  # workers only read the rows; the encoder stays here

    def fill(self, sentences: list[list[str]]) -> None:
        """Tokenise every sentence not kept yet, in chunks."""
        new = list(dict.fromkeys(key for key in map(tuple, sentences) if key not in self.rows))
        for start in range(0, len(new), CHUNK):
            chunk = new[start:start + CHUNK]
            batch = self.tokenize([list(words) for words in chunk], self.max_tokens)
            arrays = {key: batch[key].numpy() for key in KEYS}
            tokens = arrays["attention_mask"].sum(1)  # right padding: a row's tokens come first
            for row, words in enumerate(chunk):
                self.rows[words] = {
                    "input_ids": arrays["input_ids"][row, :tokens[row]].copy(),
                    "attention_mask": arrays["attention_mask"][row, :tokens[row]].copy(),
                    "first_subword_index": arrays["first_subword_index"][row, :len(words)].copy(),
                    "word_mask": arrays["word_mask"][row, :len(words)].copy(),
                }

    def row(self, words: list[str]) -> dict[str, np.ndarray]:
        key = tuple(words)
        if key not in self.rows:
            self.fill([list(words)])
        return self.rows[key]


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
    for index, row in enumerate(rows):
        for key in KEYS:
            batch[key][index, :len(row[key])] = row[key]
    return {key: torch.from_numpy(value) for key, value in batch.items()}
