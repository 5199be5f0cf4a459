"""A linear-chain CRF over word positions (pytorch-crf for the likelihood, a Viterbi decoder that can forbid a tag
scheme's invalid starts, transitions and ends), and the gathering of each word's first sub-word into a contiguous
word sequence.

pytorch-crf needs a contiguous mask that starts on: the reference DTCA code gave it a token-level mask with holes at
non-first sub-words. Here the CRF only ever sees words, whose mask is a prefix of each row.
"""
import torch
from torch import nn

# Score given to a forbidden transition: finite, so that an example with no allowed path still decodes, not NaN.
FORBIDDEN = -1e4


class WordCRF(nn.Module):
    """CRF over (batch, words, tags) emissions: negative log-likelihood per example and Viterbi decoding.

    A tag scheme's masks (lists of bools over its tags, True where allowed) restrict decoding when `constrained` is
    True (the default): `allowed_start[tag]` (may a sentence open with this tag), `allowed_transitions[from][to]`
    (may `to` follow `from`) and `allowed_end[tag]` (may a sentence close with this tag: BIOES forbids ending on B-
    or I-). A mask left as None allows everything. Viterbi then returns the best sequence among the allowed ones:
    the start, transition and end scores of forbidden moves are replaced by `FORBIDDEN` before decoding. With
    `constrained=False` the masks are kept but decoding is free. The likelihood is always over every tag sequence,
    as in AllenNLP's CRF: the gold sequences obey the masks, so training lowers the scores of forbidden moves anyway,
    and the masks never change what training computes."""

    def __init__(
        self,
        num_tags: int,
        allowed_start: list[bool] | None = None,
        allowed_transitions: list[list[bool]] | None = None,
        allowed_end: list[bool] | None = None,
        constrained: bool = True,
    ):
        super().__init__()
        from torchcrf import CRF

        self.num_tags = num_tags
        self.crf = CRF(num_tags, batch_first=True)
        self.constrained = constrained
        start, end = (torch.ones(num_tags, dtype=torch.bool) if mask is None else torch.tensor(mask)
                      for mask in (allowed_start, allowed_end))
        transitions = (torch.ones(num_tags, num_tags, dtype=torch.bool) if allowed_transitions is None
                       else torch.tensor(allowed_transitions))
        if start.shape != (num_tags,) or end.shape != (num_tags,) or transitions.shape != (num_tags, num_tags):
            raise ValueError(f"allowed_start and allowed_end must have {num_tags} entries and allowed_transitions "
                             f"{num_tags}x{num_tags}")
        self.register_buffer("allowed_start", start, persistent=False)
        self.register_buffer("allowed_transitions", transitions, persistent=False)
        self.register_buffer("allowed_end", end, persistent=False)

    def neg_log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """(batch, words, tags) emissions, (batch, words) gold tags and mask -> (batch,) negative log-likelihood;
        0 for an example without words."""
        emissions, mask, has_words = _prepare(emissions, word_mask)
        tags = tags.masked_fill(~mask, 0).clamp(min=0)  # padding may be -100 in the batch; the CRF ignores it anyway
        log_likelihood = self.crf(emissions, tags, mask=mask, reduction="none")
        return -log_likelihood.masked_fill(~has_words, 0.0)

    def decode(self, emissions: torch.Tensor, word_mask: torch.Tensor) -> list[list[int]]:
        """The best tag sequence of each example (Viterbi), as long as its number of real words."""
        emissions, mask, has_words = _prepare(emissions, word_mask)
        start, transitions, end = self.crf.start_transitions, self.crf.transitions, self.crf.end_transitions
        if self.constrained:
            start = start.masked_fill(~self.allowed_start, FORBIDDEN)
            transitions = transitions.masked_fill(~self.allowed_transitions, FORBIDDEN)
            end = end.masked_fill(~self.allowed_end, FORBIDDEN)
        paths = viterbi(emissions, mask, start.float(), transitions.float(), end.float())
        return [path if keep else [] for path, keep in zip(paths, has_words.tolist())]


def viterbi(
    emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, transitions: torch.Tensor, end: torch.Tensor
) -> list[list[int]]:
    """Best paths under score = start[y0] + sum emissions[i, yi] + sum transitions[yi-1, yi] + end[ylast], for
    (batch, words, tags) emissions and a (batch, words) prefix mask."""
    score = start + emissions[:, 0]  # (batch, tags)
    backpointers = []
    for position in range(1, emissions.shape[1]):
        candidates = score[:, :, None] + transitions[None] + emissions[:, position, None, :]  # (batch, from, to)
        best, previous = candidates.max(dim=1)
        score = torch.where(mask[:, position, None], best, score)
        backpointers.append(previous)
    score = score + end
    lengths = mask.sum(1).tolist()
    last_tags = score.argmax(1).tolist()
    backpointers = torch.stack(backpointers, 1).tolist() if backpointers else []
    paths = []
    for row, (length, tag) in enumerate(zip(lengths, last_tags)):
        path = [tag]
        for position in range(length - 1, 0, -1):
            tag = backpointers[row][position - 1][tag]
            path.append(tag)
        paths.append(path[::-1])
    return paths


def gather_words(token_states: torch.Tensor, first_subword_index: torch.Tensor) -> torch.Tensor:
    """(batch, tokens, hidden) states -> (batch, words, hidden): each word's first sub-word, words contiguous."""
    index = first_subword_index[:, :, None].expand(-1, -1, token_states.shape[-1])
    return token_states.gather(1, index)


def _prepare(emissions: torch.Tensor, word_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Emissions in float32 and a mask whose first position is on (pytorch-crf's requirement), plus which rows have
    words at all; a mask with holes is a caller's bug and fails here rather than being silently misread."""
    mask = word_mask.bool()
    if (mask[:, 1:] & ~mask[:, :-1]).any():
        raise ValueError("word_mask must be contiguous (real words first, then padding)")
    has_words = mask[:, 0].clone() if mask.shape[1] else torch.zeros(mask.shape[0], dtype=torch.bool, device=mask.device)
    if mask.shape[1] == 0:
        emissions = emissions.new_zeros(emissions.shape[0], 1, emissions.shape[2])
        mask = mask.new_zeros(mask.shape[0], 1)
    mask = mask.clone()
    mask[:, 0] = True
    return emissions.float(), mask, has_words
