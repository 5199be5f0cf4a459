"""Tag schemes: spans -> tags -> spans is the identity, lenient decoding, and the transition masks; built through the
registry like every component, so a plugin can add one."""
import pytest
from hypothesis import given, strategies as st

from conftest import registered
from mmlabel.data.example import Span
from mmlabel.errors import ComponentError
from mmlabel.hookspecs import hookimpl
from mmlabel.registry import ComponentConfig, build, get

SCHEMES = ("collapsed5", "bio", "bioes")


def build_scheme(name: str, labels: list[str], **options):
    return build("tag_scheme", {"name": name, **options}, labels=labels)

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
    scheme = build_scheme(name, LABELS[name])
    n_words, spans = data.draw(spans_in_sentence(LABELS[name]))
    tags = scheme.encode(spans, n_words)
    assert len(tags) == n_words and set(tags) <= set(scheme.tags)
    assert scheme.decode(tags) == sorted(spans)


@pytest.mark.parametrize("name", SCHEMES)
@given(data=st.data())
def test_encoded_sequences_obey_the_transition_masks(name, data):
    scheme = build_scheme(name, LABELS[name])
    n_words, spans = data.draw(spans_in_sentence(LABELS[name]))
    ids = [scheme.tags.index(tag) for tag in scheme.encode(spans, n_words)]
    allowed = scheme.allowed_transitions()
    assert scheme.allowed_start()[ids[0]] and scheme.allowed_end()[ids[-1]]
    assert all(allowed[before][after] for before, after in zip(ids, ids[1:]))


def test_tag_sets():
    assert build_scheme("collapsed5", ["POS", "NEU", "NEG"]).tags == ["O", "B-POS", "B-NEU", "B-NEG", "I"]
    assert len(build_scheme("bio", ["POS", "NEU", "NEG"]).tags) == 7
    assert len(build_scheme("bioes", ["PER", "LOC"]).tags) == 9


def test_collapsed5_continues_the_open_sentiment():
    scheme = build_scheme("collapsed5", ["POS", "NEU", "NEG"])
    assert scheme.encode([Span(1, 3, "NEG")], 4) == ["O", "B-NEG", "I", "O"]
    assert scheme.decode(["B-POS", "I", "B-NEU", "I", "I"]) == [Span(0, 2, "POS"), Span(2, 5, "NEU")]


def test_collapsed5_refuses_entity_labels():
    with pytest.raises(ComponentError, match="bio or bioes"):
        build_scheme("collapsed5", ["PER"])


@pytest.mark.parametrize("name, tags, expected", [
    ("collapsed5", ["O", "I", "I", "B-POS"], [Span(3, 4, "POS")]),  # I with nothing open is O
    ("bio", ["I-POS", "B-NEG", "I-POS", "I-NEG"], [Span(1, 2, "NEG")]),  # I of another label ends the span, reads as O
    ("bioes", ["E-PER", "B-PER", "I-PER", "O", "S-LOC"], [Span(1, 3, "PER"), Span(4, 5, "LOC")]),  # unclosed B..I
])
def test_invalid_sequences_decode_leniently(name, tags, expected):
    assert build_scheme(name, LABELS[name]).decode(tags) == expected


def test_transition_masks_forbid_continuing_nothing():
    bio = build_scheme("bio", ["POS", "NEG"])
    index = {tag: i for i, tag in enumerate(bio.tags)}
    allowed = bio.allowed_transitions()
    assert not allowed[index["O"]][index["I-POS"]]
    assert not allowed[index["B-NEG"]][index["I-POS"]]
    assert allowed[index["B-POS"]][index["I-POS"]] and allowed[index["I-POS"]][index["I-POS"]]
    assert not bio.allowed_start()[index["I-POS"]] and bio.allowed_start()[index["B-POS"]]
    collapsed = build_scheme("collapsed5", ["POS", "NEU", "NEG"])
    c = {tag: i for i, tag in enumerate(collapsed.tags)}
    assert not collapsed.allowed_transitions()[c["O"]][c["I"]]
    assert collapsed.allowed_transitions()[c["B-NEU"]][c["I"]] and not collapsed.allowed_start()[c["I"]]
    bioes = build_scheme("bioes", ["PER"])
    e = {tag: i for i, tag in enumerate(bioes.tags)}
    assert not bioes.allowed_transitions()[e["B-PER"]][e["O"]] and bioes.allowed_transitions()[e["B-PER"]][e["E-PER"]]
    assert not bioes.allowed_end()[e["I-PER"]] and bioes.allowed_end()[e["S-PER"]]


def test_encode_refuses_overlaps_and_unknown_labels():
    scheme = build_scheme("bio", ["PER"])
    with pytest.raises(ValueError, match="overlaps"):
        scheme.encode([Span(0, 2, "PER"), Span(1, 3, "PER")], 4)
    with pytest.raises(ValueError, match="not in the bio scheme"):
        scheme.encode([Span(0, 1, "LOC")], 2)
    with pytest.raises(ComponentError, match="unknown tag_scheme 'iob2'"):
        build_scheme("iob2", ["PER"])


@pytest.mark.parametrize("name", SCHEMES)
def test_built_in_schemes_are_components_whose_options_are_checked(name):
    component = get("tag_scheme", name)
    assert component.plugin == "mmlabel.tag_schemes" and component.description
    with pytest.raises(ComponentError, match=r"unknown key data\.tag_scheme\.width"):
        component.validate({"width": 2}, where="data.tag_scheme")


def test_bioes_may_not_end_inside_a_span():
    bioes = build_scheme("bioes", ["PER", "LOC"])
    ends = dict(zip(bioes.tags, bioes.allowed_end()))
    assert ends == {"O": True, "B-PER": False, "I-PER": False, "E-PER": True, "S-PER": True,
                    "B-LOC": False, "I-LOC": False, "E-LOC": True, "S-LOC": True}
    assert all(build_scheme("bio", ["PER"]).allowed_end()) and all(build_scheme("collapsed5", ["POS"]).allowed_end())


class IOScheme:
    """IO tagging (a fake plugin's scheme): I-<label> inside a span, O outside; adjacent spans of a label merge."""

    class Config(ComponentConfig):
        outside: str = "O"

    name = "io"

    def __init__(self, config: Config, *, labels: list[str]):
        self.config, self.labels = config, list(dict.fromkeys(labels))
        self.tags = [config.outside, *(f"I-{label}" for label in self.labels)]

    def encode(self, spans, n_words):
        tags = [self.config.outside] * n_words
        for span in spans:
            tags[span.start:span.end] = [f"I-{span.label}"] * (span.end - span.start)
        return tags

    def decode(self, tags):
        spans = []
        for index, tag in enumerate(tags):
            label = tag[2:] if tag.startswith("I-") else None
            if label and spans and spans[-1].end == index and spans[-1].label == label:
                spans[-1] = Span(spans[-1].start, index + 1, label)
            elif label:
                spans.append(Span(index, index + 1, label))
        return spans

    def allowed_start(self):
        return [True] * len(self.tags)

    allowed_end = allowed_start

    def allowed_transitions(self):
        return [[True] * len(self.tags) for _ in self.tags]


class SchemePlugin:
    __name__ = "fake-scheme-plugin"

    @hookimpl
    def register_tag_schemes(self, register):
        register("io", IOScheme)


@pytest.fixture
def scheme_plugin():
    with registered(SchemePlugin(), "fake-scheme-plugin"):
        yield


def test_a_plugin_scheme_is_used_by_a_recipe(scheme_plugin, synthetic):
    from conftest import REPO
    from mmlabel.recipe import load_recipe
    from mmlabel.data.splits import make_run_scheme, read_splits

    recipe = load_recipe(REPO / "recipes" / "quickstart.toml", ["data.tag_scheme={name = 'io', outside = '-'}"])
    assert recipe.data.tag_scheme.name == "io" and recipe.data.tag_scheme.options == {"outside": "-"}
    train = read_splits(recipe, synthetic)["train"]
    scheme = make_run_scheme(recipe, train)
    assert isinstance(scheme, IOScheme) and scheme.tags == ["-", "I-NEG", "I-NEU", "I-POS"]
    example = next(example for example in train if example.spans)
    assert scheme.decode(scheme.encode(example.spans, len(example.tokens))) == sorted(example.spans)


def test_a_misspelt_scheme_fails_recipe_check_with_close_matches(tmp_path, capsys):
    from mmlabel.cli import main

    recipe = tmp_path / "r.toml"
    recipe.write_text('[data]\ntag_scheme = "bieos"\n')
    with pytest.raises(SystemExit) as exited:
        main(["recipe", "check", str(recipe)])
    error = capsys.readouterr().err
    assert exited.value.code == 2 and len(error.strip().splitlines()) == 1
    assert f"{recipe}: data.tag_scheme.name: unknown tag_scheme 'bieos'; did you mean 'bioes'" in error
