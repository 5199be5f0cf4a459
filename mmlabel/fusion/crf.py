"""A linear-chain CRF over word positions (Lafferty et al., 2001): the negative log-likelihood of the gold tags and a
Viterbi decoder that can forbid a tag scheme's invalid starts, transitions and ends; and the gathering of each word's
first sub-word into a contiguous word sequence.

Both run on the emissions' device without reading a value back to the host: no asserts on masks, no `.item()`, no
Python `if` on a tensor. Decoding reads back once per batch, to hand out Python lists. The CRF only ever sees words,
whose mask is a prefix of each row (real words first, then padding); the data collator checks that on the CPU, once,
and the CRF trusts it (the reference DTCA code gave pytorch-crf a token mask with holes at non-first sub-words).

The parameters are pytorch-crf's (`torchcrf.CRF`, which this module replaced): the same names under `.crf`, drawn in
the same order from the same uniform(-0.1, 0.1), so that seeded runs draw the same numbers and saved runs and
checkpoints load unchanged. pytorch-crf is the tests' independent reference (`tests/test_crf.py`).
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
    and the masks never change what training computes.

    `word_mask` (batch, words) must be a prefix mask: each row's real words first, then padding. Nothing here checks
    it (a check would read the mask back to the host in every step); the data collator does, on the CPU."""

    def __init__(
        self,
        num_tags: int,
        allowed_start: list[bool] | None = None,
        allowed_transitions: list[list[bool]] | None = None,
        allowed_end: list[bool] | None = None,
        constrained: bool = True,
    ):
        super().__init__()
        self.num_tags = num_tags
        self.crf = TransitionScores(num_tags)
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
        """(batch, words, tags) emissions, (batch, words) gold tags and prefix mask -> (batch,) negative
        log-likelihood, computed in float32; 0 for an example without words. Tags at padding positions are ignored
        (they may be -100)."""
        emissions, tags, mask = _pad_empty(emissions.float(), tags, word_mask.bool())
        tags = tags.masked_fill(~mask, 0).clamp(min=0)
        start, transitions, end = self.crf.scores()
        log_partition = forward_algorithm(emissions, mask, start, transitions, end)  # (batch,)
        gold = gold_path_score(emissions, tags, mask, start, transitions, end)  # (batch,)
        has_words = mask[:, 0]
        return torch.where(has_words, log_partition - gold, 0.0)

    def decode(self, emissions: torch.Tensor, word_mask: torch.Tensor) -> list[list[int]]:
        """The best tag sequence of each example (Viterbi), as long as its number of real words; one read back to
        the host per batch."""
        start, transitions, end = self.crf.scores()
        if self.constrained:
            start = start.masked_fill(~self.allowed_start, FORBIDDEN)
            transitions = transitions.masked_fill(~self.allowed_transitions, FORBIDDEN)
            end = end.masked_fill(~self.allowed_end, FORBIDDEN)
        return viterbi(emissions.float(), word_mask.bool(), start, transitions, end)


class TransitionScores(nn.Module):
    """The CRF's parameters, laid out as pytorch-crf's `CRF` (names, order, initialisation), so that state dicts
    and optimiser states saved when `WordCRF.crf` was a `torchcrf.CRF` load unchanged: (tags,) start and end
    scores and (from, to) transition scores."""

    def __init__(self, num_tags: int):
        super().__init__()
        self.start_transitions = nn.Parameter(torch.empty(num_tags))
        self.end_transitions = nn.Parameter(torch.empty(num_tags))
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """pytorch-crf's initialisation, drawn in its order."""
        nn.init.uniform_(self.start_transitions, -0.1, 0.1)
        nn.init.uniform_(self.end_transitions, -0.1, 0.1)
        nn.init.uniform_(self.transitions, -0.1, 0.1)

    def scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Start, transition and end scores in float32 (a no-op unless the model was cast)."""
        return self.start_transitions.float(), self.transitions.float(), self.end_transitions.float()


def forward_algorithm(emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, transitions: torch.Tensor,
                      end: torch.Tensor) -> torch.Tensor:
    """(batch,) log of the sum over every tag sequence of exp(score), for (batch, words, tags) emissions and a
    (batch, words) prefix mask; a row without words gets the value of its first position (the caller masks it)."""
    score = start + emissions[:, 0]  # (batch, tags)
    moves = transitions + emissions[:, 1:, None, :]  # (batch, words - 1, from, to): one op instead of one per word
    for step_moves, step_mask in zip(moves.unbind(1), mask[:, 1:, None].unbind(1)):
        extended = torch.logsumexp(score[:, :, None] + step_moves, dim=1)  # (batch, to)
        score = torch.where(step_mask, extended, score)  # padding: the row's sum stays as it was
    return torch.logsumexp(score + end, dim=1)


def gold_path_score(emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, start: torch.Tensor,
                    transitions: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """(batch,) score of the given tag sequences (tags in range at every position, padding included), counting the
    words of the (batch, words) prefix mask; a row without words gets the score of its first tag alone."""
    word_scores = emissions.gather(2, tags[:, :, None])[:, :, 0]  # (batch, words)
    step_scores = transitions[tags[:, :-1], tags[:, 1:]]  # (batch, words - 1): the move into each later word
    last_position = (mask.sum(1) - 1).clamp(min=0)  # (batch,)
    last_tags = tags.gather(1, last_position[:, None])[:, 0]
    return (start[tags[:, 0]] + end[last_tags] + torch.where(mask, word_scores, 0.0).sum(1)
            + torch.where(mask[:, 1:], step_scores, 0.0).sum(1))


def viterbi(
    emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, transitions: torch.Tensor, end: torch.Tensor
) -> list[list[int]]:
    """Best paths under score = start[y0] + sum emissions[i, yi] + sum transitions[yi-1, yi] + end[ylast], for
    (batch, words, tags) emissions and a (batch, words) prefix mask, as lists as long as each row's real words: the
    search runs on the device (`viterbi_paths`), then paths and lengths come back in one read."""
    paths, lengths = viterbi_paths(emissions, mask, start, transitions, end)
    rows = torch.cat([lengths[:, None], paths], dim=1).tolist()  # the batch's one read back to the host
    return [row[1:1 + row[0]] for row in rows]


def viterbi_paths(
    emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, transitions: torch.Tensor, end: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`viterbi` without leaving the device: (batch, words) best tags (each row's positions past its length hold
    filler) and (batch,) lengths."""
    batch, words, num_tags = emissions.shape
    lengths = mask.sum(1)  # (batch,)
    if words == 0:
        return torch.zeros(batch, 0, dtype=torch.long, device=emissions.device), lengths
    score = start + emissions[:, 0]  # (batch, tags)
    moves = transitions + emissions[:, 1:, None, :]  # (batch, words - 1, from, to)
    backpointers = []  # per position from the second: (batch, to) the best previous tag
    for step_moves, step_mask in zip(moves.unbind(1), mask[:, 1:, None].unbind(1)):
        best, previous = (score[:, :, None] + step_moves).max(dim=1)
        score = torch.where(step_mask, best, score)
        backpointers.append(previous)
    tag = (score + end).argmax(dim=1, keepdim=True)  # (batch, 1) the last real word's tag
    if words == 1:
        return tag, lengths
    # Padding positions point each tag to itself, so that walking back from the last column carries a row's last
    # tag unchanged to its own last word, then follows its backpointers: one gather per position.
    stay = torch.arange(num_tags, device=emissions.device)
    backpointers = torch.where(mask[:, 1:, None], torch.stack(backpointers, dim=1), stay)  # (batch, words - 1, tags)
    path = [tag]
    for step_backpointers in reversed(backpointers.unbind(1)):
        tag = step_backpointers.gather(1, tag)  # (batch, 1)
        path.append(tag)
    return torch.cat(path[::-1], dim=1), lengths


def gather_words(token_states: torch.Tensor, first_subword_index: torch.Tensor) -> torch.Tensor:
    """(batch, tokens, hidden) states -> (batch, words, hidden): each word's first sub-word, words contiguous."""
    index = first_subword_index[:, :, None].expand(-1, -1, token_states.shape[-1])
    return token_states.gather(1, index)


def _pad_empty(emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch with no word positions at all gets one padding position, so that every row has a first position;
    the shapes decide this, not the values."""
    if mask.shape[1] > 0:
        return emissions, tags, mask
    batch, _, num_tags = emissions.shape
    return emissions.new_zeros(batch, 1, num_tags), tags.new_zeros(batch, 1), mask.new_zeros(batch, 1)
