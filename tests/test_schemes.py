"""Tag schemes: spans -> tags -> spans is the identity, lenient decoding, and the transition masks."""
import pytest
from hypothesis import given, strategies as st

from mmlabel.data.example import Span
from mmlabel.data.schemes import SCHEMES, make_scheme

LABELS = {"collapsed5": ["POS", "NEU", "NEG"], "bio": ["POS", "NEU", "NEG"], "bioes": ["PER", "LOC", "ORG", "MISC"]}


@st.composite
def spans_in_sentence(draw, labels):
    """(n_words, non-overlapping spans) over a random sentence."""
    n_words = draw(st.integers(1, 25))
    cuts = sorted(draw(st.sets(st.integers(0, n_words), max_size=12)) | {0, n_words})
    spans = []
    for start, end in zip(cuts, cuts[1:]):
        if draw(st.booleans()):
            spans.append(Span(start, end, draw(st.sampled_from(labels))))
    return n_words, spans


@pytest.mark.parametrize("name", SCHEMES)
@given(data=st.data())
def test_spans_to_tags_to_spans_is_identity(name, data):
    scheme = make_scheme(name, LABELS[name])
    n_words, spans = data.draw(spans_in_sentence(LABELS[name]))
    tags = scheme.encode(spans, n_words)
    assert len(tags) == n_words and set(tags) <= set(scheme.tags)
    assert scheme.decode(tags) == sorted(spans)


@pytest.mark.parametrize("name", SCHEMES)
@given(data=st.data())
def test_encoded_sequences_obey_the_transition_masks(name, data):
    scheme = make_scheme(name, LABELS[name])
    n_words, spans = data.draw(spans_in_sentence(LABELS[name]))
    ids = [scheme.tags.index(tag) for tag in scheme.encode(spans, n_words)]
    allowed = scheme.allowed_transitions()
    assert scheme.allowed_start()[ids[0]] and scheme.allowed_end()[ids[-1]]
    assert all(allowed[before][after] for before, after in zip(ids, ids[1:]))


def test_tag_sets():
    assert make_scheme("collapsed5", ["POS", "NEU", "NEG"]).tags == ["O", "B-POS", "B-NEU", "B-NEG", "I"]
    assert len(make_scheme("bio", ["POS", "NEU", "NEG"]).tags) == 7
    assert len(make_scheme("bioes", ["PER", "LOC"]).tags) == 9


def test_collapsed5_continues_the_open_sentiment():
    scheme = make_scheme("collapsed5", ["POS", "NEU", "NEG"])
    assert scheme.encode([Span(1, 3, "NEG")], 4) == ["O", "B-NEG", "I", "O"]
    assert scheme.decode(["B-POS", "I", "B-NEU", "I", "I"]) == [Span(0, 2, "POS"), Span(2, 5, "NEU")]


def test_collapsed5_refuses_entity_labels():
    with pytest.raises(ValueError, match="bio or bioes"):
        make_scheme("collapsed5", ["PER"])


@pytest.mark.parametrize("name, tags, expected", [
    ("collapsed5", ["O", "I", "I", "B-POS"], [Span(3, 4, "POS")]),  # I with nothing open is O
    ("bio", ["I-POS", "B-NEG", "I-POS", "I-NEG"], [Span(1, 2, "NEG")]),  # I of another label ends the span, reads as O
    ("bioes", ["E-PER", "B-PER", "I-PER", "O", "S-LOC"], [Span(1, 3, "PER"), Span(4, 5, "LOC")]),  # unclosed B..I
])
def test_invalid_sequences_decode_leniently(name, tags, expected):
    assert make_scheme(name, LABELS[name]).decode(tags) == expected


def test_transition_masks_forbid_continuing_nothing():
    bio = make_scheme("bio", ["POS", "NEG"])
    index = {tag: i for i, tag in enumerate(bio.tags)}
    allowed = bio.allowed_transitions()
    assert not allowed[index["O"]][index["I-POS"]]
    assert not allowed[index["B-NEG"]][index["I-POS"]]
    assert allowed[index["B-POS"]][index["I-POS"]] and allowed[index["I-POS"]][index["I-POS"]]
    assert not bio.allowed_start()[index["I-POS"]] and bio.allowed_start()[index["B-POS"]]
    collapsed = make_scheme("collapsed5", ["POS", "NEU", "NEG"])
    c = {tag: i for i, tag in enumerate(collapsed.tags)}
    assert not collapsed.allowed_transitions()[c["O"]][c["I"]]
    assert collapsed.allowed_transitions()[c["B-NEU"]][c["I"]] and not collapsed.allowed_start()[c["I"]]
    bioes = make_scheme("bioes", ["PER"])
    e = {tag: i for i, tag in enumerate(bioes.tags)}
    assert not bioes.allowed_transitions()[e["B-PER"]][e["O"]] and bioes.allowed_transitions()[e["B-PER"]][e["E-PER"]]
    assert not bioes.allowed_end()[e["I-PER"]] and bioes.allowed_end()[e["S-PER"]]


def test_encode_refuses_overlaps_and_unknown_labels():
    scheme = make_scheme("bio", ["PER"])
    with pytest.raises(ValueError, match="overlaps"):
        scheme.encode([Span(0, 2, "PER"), Span(1, 3, "PER")], 4)
    with pytest.raises(ValueError, match="not in the bio scheme"):
        scheme.encode([Span(0, 1, "LOC")], 2)
    with pytest.raises(ValueError, match="unknown tag scheme"):
        make_scheme("iob2", ["PER"])
