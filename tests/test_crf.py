"""The word-level CRF: its likelihood and Viterbi decoding against brute force over every tag sequence."""
import itertools

import pytest
import torch

from mmlabel.fusion.crf import WordCRF, gather_words

# BIO with one type: O = 0, B = 1, I = 2. I may only follow B or I; a sentence may not start with I.
O, B, I = 0, 1, 2
ALLOWED_START = [True, True, False]
ALLOWED_TRANSITIONS = [[True, True, False], [True, True, True], [True, True, True]]
# A made-up end constraint (no sentence ends on B), so that the brute-force reference also checks the end mask.
ALLOWED_END = [True, False, True]


def sequence_score(crf: WordCRF, emissions: torch.Tensor, tags: tuple[int, ...]) -> float:
    """The CRF's score of one tag sequence, computed from its parameters independently of pytorch-crf."""
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
    assert decoded == crf.crf.decode(emissions, mask)  # agrees with pytorch-crf's own decoder
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
    unconstrained = crf.crf.decode(emissions, mask)
    assert any(not allowed(tags) for tags in unconstrained)  # the constraint made a difference


def test_under_bioes_no_decoded_sentence_ends_inside_a_span():
    from mmlabel.registry import get

    scheme = get("tag_scheme", "bioes").build({}, labels=["PER", "LOC", "ORG"])
    masks = {"allowed_start": scheme.allowed_start(), "allowed_transitions": scheme.allowed_transitions(),
             "allowed_end": scheme.allowed_end()}
    num_tags = len(scheme.tags)
    head = get("fusion_head", "dtca").build({}, text_dim=8, num_tags=num_tags, **masks)  # masks pass through the head
    free = get("fusion_head", "dtca").build({"constrained": False}, text_dim=8, num_tags=num_tags, **masks)
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


def test_mask_with_holes_is_refused():
    """The reference code gave pytorch-crf a token mask with holes at non-first sub-words."""
    crf = random_crf(3, 0)
    with pytest.raises(ValueError, match="contiguous"):
        crf.decode(torch.randn(1, 3, 3), torch.tensor([[True, False, True]]))


def test_gather_words_takes_first_subwords():
    states = torch.arange(2 * 5).float().view(2, 5, 1)
    index = torch.tensor([[1, 3, 4], [1, 2, 0]])
    assert gather_words(states, index)[..., 0].tolist() == [[1, 3, 4], [6, 7, 5]]
