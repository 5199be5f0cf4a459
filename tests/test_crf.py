"""The word-level CRF: its likelihood, gradients and Viterbi decoding against brute force over every tag sequence and
against pytorch-crf (`torchcrf`, a dev dependency) as an independent implementation; its parameters' layout against
pytorch-crf's (seeded runs, saved runs); and that it reads nothing back from the device but the decoded paths."""
import itertools

import pytest
import torch
import torchcrf

from mmlabel.fusion.crf import FORBIDDEN, WordCRF, gather_words
from mmlabel.testing.host_reads import no_host_reads

# BIO with one type: O = 0, B = 1, I = 2. I may only follow B or I; a sentence may not start with I.
O, B, I = 0, 1, 2
ALLOWED_START = [True, True, False]
ALLOWED_TRANSITIONS = [[True, True, False], [True, True, True], [True, True, True]]
# A made-up end constraint (no sentence ends on B), so that the brute-force reference also checks the end mask.
ALLOWED_END = [True, False, True]


def sequence_score(crf: WordCRF, emissions: torch.Tensor, tags: tuple[int, ...]) -> float:
    """The CRF's score of one tag sequence, computed from its parameters independently of any CRF code."""
    score = (crf.crf.start_transitions[tags[0]] + crf.crf.end_transitions[tags[-1]]).detach()
    score = score + sum(emissions[i, t] for i, t in enumerate(tags))
    score = score + sum(crf.crf.transitions[a, b] for a, b in zip(tags, tags[1:]))
    return score.item()


def allowed(tags, allowed_end=ALLOWED_END) -> bool:
    return (ALLOWED_START[tags[0]] and allowed_end[tags[-1]]
            and all(ALLOWED_TRANSITIONS[a][b] for a, b in zip(tags, tags[1:])))


def random_crf(num_tags: int, seed: int, constrained: bool = True, allowed_end=ALLOWED_END) -> WordCRF:
    torch.manual_seed(seed)
    masks = (ALLOWED_START, ALLOWED_TRANSITIONS, allowed_end) if num_tags == 3 else (None, None, None)
    crf = WordCRF(num_tags, *masks, constrained=constrained)
    with torch.no_grad():
        for parameter in crf.parameters():
            parameter.normal_(0, 2)
    return crf


@pytest.mark.parametrize("seed", range(6))
def test_viterbi_equals_brute_force(seed):
    num_tags = 3 + seed % 2
    crf = random_crf(num_tags, seed, constrained=False)
    lengths = [4, 1, 3, 2]
    emissions = torch.randn(len(lengths), max(lengths), num_tags) * 2
    mask = torch.tensor([[i < n for i in range(max(lengths))] for n in lengths])
    decoded = crf.decode(emissions, mask)
    assert decoded == oracle(crf).decode(emissions, mask)  # agrees with pytorch-crf's decoder
    for row, length in enumerate(lengths):
        candidates = itertools.product(range(num_tags), repeat=length)
        best = max(candidates, key=lambda tags: sequence_score(crf, emissions[row], tags))
        assert decoded[row] == list(best)


@pytest.mark.parametrize("seed", range(6))
def test_constrained_viterbi_is_the_best_allowed_sequence(seed):
    crf = random_crf(3, seed, constrained=True)
    with torch.no_grad():  # make the forbidden moves attractive, so that only the constraint stops them
        crf.crf.transitions[O, I] = 5.0
        crf.crf.start_transitions[I] = 5.0
        crf.crf.end_transitions[B] = 5.0
    emissions = torch.randn(3, 5, 3)
    emissions[:, :, I] += 2
    emissions[:, -1, B] += 2
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] + [False] * 4])
    decoded = crf.decode(emissions, mask)
    for row, length in enumerate(mask.sum(1).tolist()):
        candidates = [tags for tags in itertools.product(range(3), repeat=length) if allowed(tags)]
        best = max(candidates, key=lambda tags: sequence_score(crf, emissions[row], tags))
        assert decoded[row] == list(best)
        assert decoded[row][0] != I and decoded[row][-1] != B and (O, I) not in zip(decoded[row], decoded[row][1:])
    unconstrained = oracle(crf).decode(emissions, mask)
    assert any(not allowed(tags) for tags in unconstrained)  # the constraint made a difference


def test_under_bioes_no_decoded_sentence_ends_inside_a_span():
    from mmlabel.registry import build

    scheme = build("tag_scheme", "bioes", labels=["PER", "LOC", "ORG"])
    masks = {"allowed_start": scheme.allowed_start(), "allowed_transitions": scheme.allowed_transitions(),
             "allowed_end": scheme.allowed_end()}
    num_tags = len(scheme.tags)
    head = build("fusion_head", "dtca", text_dim=8, num_tags=num_tags, **masks)  # masks pass through the head
    free = build("fusion_head", {"name": "dtca", "constrained": False}, text_dim=8, num_tags=num_tags, **masks)
    torch.manual_seed(0)
    lengths = torch.randint(1, 9, (64,))
    mask = torch.arange(8)[None] < lengths[:, None]
    emissions = torch.randn(64, 8, num_tags) * 3
    open_tags = [i for i, tag in enumerate(scheme.tags) if tag[0] in "BI"]
    last = [tags[-1] for tags in free.decode(emissions, mask)]
    assert any(tag in open_tags for tag in last)  # unconstrained, random emissions do end inside spans
    decoded = head.decode(emissions, mask)
    assert [len(tags) for tags in decoded] == lengths.tolist()
    assert not any(tags[-1] in open_tags for tags in decoded)
    for tags in decoded:
        names = [scheme.tags[i] for i in tags]
        assert scheme.encode(scheme.decode(names), len(names)) == names  # every decoded sequence is a valid one


def test_negative_log_likelihood_equals_brute_force():
    """The likelihood is over every tag sequence: the masks (the end mask included) only restrict decoding."""
    crf = random_crf(3, 0)
    emissions = torch.randn(2, 3, 3)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    tags = torch.tensor([[1, 2, 0], [0, 1, -100]])  # padding tag values are ignored
    loss = crf.neg_log_likelihood(emissions, tags, mask)
    for row, length in enumerate([3, 2]):
        scores = torch.tensor([sequence_score(crf, emissions[row], t)
                               for t in itertools.product(range(3), repeat=length)])
        gold = sequence_score(crf, emissions[row], tuple(tags[row, :length].tolist()))
        assert loss[row].item() == pytest.approx(torch.logsumexp(scores, 0).item() - gold, abs=1e-4)


def test_empty_examples_decode_to_nothing_and_cost_nothing():
    crf = random_crf(3, 0)
    emissions = torch.randn(2, 2, 3, requires_grad=True)
    mask = torch.tensor([[True, True], [False, False]])
    loss = crf.neg_log_likelihood(emissions, torch.zeros(2, 2, dtype=torch.long), mask)
    assert loss[1] == 0 and loss[0] > 0
    loss.sum().backward()
    assert torch.isfinite(emissions.grad).all()
    assert [len(path) for path in crf.decode(emissions, mask)] == [2, 0]


def test_gather_words_takes_first_subwords():
    states = torch.arange(2 * 5).float().view(2, 5, 1)
    index = torch.tensor([[1, 3, 4], [1, 2, 0]])
    assert gather_words(states, index)[..., 0].tolist() == [[1, 3, 4], [6, 7, 5]]


# -- against pytorch-crf ---------------------------------------------------------------------------------------------

def oracle(crf: WordCRF, masked: bool = False) -> torchcrf.CRF:
    """A pytorch-crf CRF with `crf`'s scores (copies, with their own gradients); `masked`: the scores our constrained
    decoding uses, forbidden moves at `FORBIDDEN`."""
    reference = torchcrf.CRF(crf.num_tags, batch_first=True)
    scores = {"start_transitions": crf.allowed_start, "end_transitions": crf.allowed_end,
              "transitions": crf.allowed_transitions}
    with torch.no_grad():
        for name, allowed_moves in scores.items():
            value = getattr(crf.crf, name).detach()
            getattr(reference, name).copy_(value.masked_fill(~allowed_moves, FORBIDDEN) if masked else value)
    return reference


def ragged_batch(seed: int, num_tags: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random (batch, words, tags) emissions, gold tags (-100 at padding) and a prefix mask whose rows have varied
    lengths: one full row, one of 1 word, one of 0 words (from seed 1 on), and random ones."""
    generator = torch.Generator().manual_seed(seed)
    words = 1 + seed % 7
    lengths = [words, 1] + ([0] if seed else []) + torch.randint(0, words + 1, (seed % 5,), generator=generator).tolist()
    mask = torch.arange(words)[None] < torch.tensor(lengths)[:, None]
    emissions = torch.randn(len(lengths), words, num_tags, generator=generator) * 3
    tags = torch.randint(0, num_tags, mask.shape, generator=generator).masked_fill(~mask, -100)
    return emissions, tags, mask


def random_masks(num_tags: int, generator: torch.Generator) -> tuple[list, list, list]:
    """Random allowed starts, transitions and ends, with tag 0 always allowed so that an allowed path exists."""
    start, end = (torch.rand(num_tags, generator=generator) < 0.6 for _ in range(2))
    transitions = torch.rand(num_tags, num_tags, generator=generator) < 0.6
    start[0] = end[0] = transitions[0, 0] = True
    return start.tolist(), transitions.tolist(), end.tolist()


CASES = [(seed, 2 + seed % 6) for seed in range(12)]  # (seed, number of tags)


@pytest.mark.parametrize("seed, num_tags", CASES)
def test_negative_log_likelihood_and_its_gradients_equal_pytorch_crf(seed, num_tags):
    crf = random_crf(num_tags, seed)
    reference = oracle(crf)
    emissions, tags, mask = ragged_batch(seed, num_tags)
    emissions.requires_grad_(True)
    loss = crf.neg_log_likelihood(emissions, tags, mask)
    weights = torch.rand(loss.shape)  # gradients of a weighted sum, so that each row's own gradient counts
    loss.backward(weights)
    ours = emissions.grad.clone(), {name: p.grad for name, p in crf.crf.named_parameters()}

    emissions.grad = None
    rows = mask[:, 0]  # pytorch-crf refuses rows without words: expect 0 for those, and no gradient
    expected = torch.zeros_like(loss)
    expected[rows] = -reference(emissions[rows], tags[rows].clamp(min=0), mask[rows], reduction="none")
    expected.backward(weights)

    assert loss.detach() == pytest.approx(expected.detach(), abs=1e-5)
    assert (loss[~rows] == 0).all() and (loss[rows] > 0).all()
    assert torch.allclose(ours[0], emissions.grad, atol=1e-5)
    assert (ours[0][~rows] == 0).all()
    for name, parameter in reference.named_parameters():  # no gradient (None) where a batch has a single position
        expected_gradient = torch.zeros_like(parameter) if parameter.grad is None else parameter.grad
        assert torch.allclose(ours[1][name], expected_gradient, atol=1e-5), name


@pytest.mark.parametrize("seed, num_tags", CASES)
def test_decoding_equals_pytorch_crf(seed, num_tags):
    generator = torch.Generator().manual_seed(seed)
    free = random_crf(num_tags, seed, constrained=False)
    constrained = WordCRF(num_tags, *random_masks(num_tags, generator))
    constrained.load_state_dict(free.state_dict())
    emissions, _, mask = ragged_batch(seed, num_tags)
    rows = mask[:, 0].tolist()
    lengths = mask.sum(1).tolist()

    decoded = free.decode(emissions, mask)
    assert [len(path) for path in decoded] == lengths
    assert [path for path, keep in zip(decoded, rows) if keep] == oracle(free).decode(emissions[rows], mask[rows])

    decoded = constrained.decode(emissions, mask)
    assert [len(path) for path in decoded] == lengths
    assert ([path for path, keep in zip(decoded, rows) if keep]
            == oracle(constrained, masked=True).decode(emissions[rows], mask[rows]))
    start, transitions, end = (getattr(constrained, f"allowed_{part}").tolist()
                               for part in ("start", "transitions", "end"))
    for path in filter(None, decoded):
        assert start[path[0]] and end[path[-1]] and all(transitions[a][b] for a, b in zip(path, path[1:]))


def test_decoding_a_batch_without_word_positions():
    crf = random_crf(3, 0)
    assert crf.decode(torch.zeros(2, 0, 3), torch.zeros(2, 0, dtype=torch.bool)) == [[], []]
    loss = crf.neg_log_likelihood(torch.zeros(2, 0, 3), torch.zeros(2, 0, dtype=torch.long),
                                  torch.zeros(2, 0, dtype=torch.bool))
    assert loss.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("constrained", [True, False])
def test_likelihood_and_decoding_read_nothing_back_but_the_paths(constrained):
    crf = random_crf(3, 0, constrained=constrained)
    emissions, tags, mask = ragged_batch(3, 3)
    emissions.requires_grad_(True)
    with no_host_reads() as calls:
        crf.neg_log_likelihood(emissions, tags, mask).sum().backward()
    assert not calls
    with no_host_reads(allowed={"tolist": 1}) as calls:
        paths = crf.decode(emissions.detach(), mask)
    assert calls == {"tolist": 1}
    assert [len(path) for path in paths] == mask.sum(1).tolist()


# -- parameters: pytorch-crf's layout --------------------------------------------------------------------------------

def test_parameters_are_drawn_as_pytorch_crf_drew_them():
    """A seeded run draws the same numbers as when WordCRF wrapped pytorch-crf, and leaves the generator where it
    left it."""
    torch.manual_seed(7)
    ours = WordCRF(5, *random_masks(5, torch.Generator().manual_seed(0)))
    after_ours = torch.rand(3)
    torch.manual_seed(7)
    theirs = torchcrf.CRF(5, batch_first=True)
    after_theirs = torch.rand(3)
    assert [name for name, _ in ours.named_parameters()] == [f"crf.{name}" for name, _ in theirs.named_parameters()]
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters()))
    assert torch.equal(after_ours, after_theirs)
    assert all(-0.1 <= value <= 0.1 for p in ours.parameters() for value in p.flatten().tolist())


def test_a_state_dict_and_optimiser_state_saved_with_pytorch_crf_load():
    """Runs saved when WordCRF held a `torchcrf.CRF` as `.crf` (keys `fusion_head.crf.crf.transitions`...): their
    weights load by name, and a checkpoint's optimiser state (ordered by `parameters()`) lands on the same
    parameters."""

    class OldWordCRF(torch.nn.Module):  # the old layout: pytorch-crf nested as `.crf`
        def __init__(self, num_tags):
            super().__init__()
            self.crf = torchcrf.CRF(num_tags, batch_first=True)

    old_head = torch.nn.Sequential()
    old_head.add_module("crf", OldWordCRF(4))
    with torch.no_grad():
        for parameter in old_head.parameters():
            parameter.normal_()
    old_optimiser = torch.optim.AdamW(old_head.parameters(), lr=0.1)
    old_head.crf.crf(torch.randn(2, 3, 4), torch.zeros(2, 3, dtype=torch.long),
                     torch.ones(2, 3, dtype=torch.bool)).backward()
    old_optimiser.step()

    head = torch.nn.Sequential()
    head.add_module("crf", WordCRF(4))
    assert list(head.state_dict()) == list(old_head.state_dict()) == [
        "crf.crf.start_transitions", "crf.crf.end_transitions", "crf.crf.transitions"]
    head.load_state_dict(old_head.state_dict())  # strict
    optimiser = torch.optim.AdamW(head.parameters(), lr=0.1)
    optimiser.load_state_dict(old_optimiser.state_dict())
    for new, old in zip(head.parameters(), old_head.parameters()):
        assert torch.equal(new, old)
        assert torch.equal(optimiser.state[new]["exp_avg"], old_optimiser.state[old]["exp_avg"])
