"""Conformance checks of the data components (dataset reader, metric, tag scheme), each a function of the
`Subject`, on a few hand-made examples whose right answers are known."""
import math

from mmlabel.contracts import show
from mmlabel.data.example import Example, Span
from mmlabel.errors import MMLabelError
from mmlabel.testing.kit import LABELS, Subject, expect

SPLITS = ("train", "dev", "test")
# Sentiment spans, one or more per post, each post with an image: representable in every built-in format.
EXAMPLES = [
    Example("1", ["Kevin", "Durant", "joins", "the", "Warriors", "!"], "1.jpg", [Span(0, 2, "POS"), Span(4, 5, "NEG")]),
    Example("2", ["Obama", "visits", "New", "York"], "2.jpg", [Span(2, 4, "NEU")]),
    Example("3", ["great", "game", "by", "Messi"], "3.jpg", [Span(3, 4, "POS")]),
]


# -- dataset reader -------------------------------------------------------------------------------------------
def _written(subject: Subject) -> dict:
    """The examples written as train, dev and test files of the reader's format: {split: path}."""
    reader, root = subject.built, subject.workdir / "data"
    root.mkdir(exist_ok=True)
    paths = {split: root / f"{split}{reader.suffix}" for split in SPLITS}
    for path in paths.values():
        if not path.exists():
            reader.write(EXAMPLES, path)
    return paths


def _content(examples: list) -> list:
    return [(list(example.tokens), example.image, sorted(example.spans)) for example in examples]


def reader_round_trip(subject: Subject) -> None:
    read = subject.built.read(_written(subject)["train"], on_bad_example="error")
    expect(isinstance(read, list) and all(isinstance(example, Example) for example in read),
           f"read returned {show(read)}, not a list of Example")
    expect(_content(read) == _content(EXAMPLES),
           f"write then read gave {_content(read)}, not the examples written {_content(EXAMPLES)}")
    expect(len({example.id for example in read}) == len(read), "read gave two examples the same id")


def reader_find_splits(subject: Subject) -> None:
    paths = _written(subject)
    found = subject.built.find_splits(subject.workdir / "data")
    expect(isinstance(found, dict) and {split: str(path) for split, path in found.items()}
           == {split: str(path) for split, path in paths.items()},
           f"find_splits found {found}, not the files written: {paths}")


def reader_policies(subject: Subject) -> None:
    reader = subject.built
    reader.read(_written(subject)["dev"], on_bad_example="skip")
    expect(reader.skipped == [] and reader.duplicates == 0,
           f"a clean file read with on_bad_example='skip' left skipped={reader.skipped!r}, "
           f"duplicates={reader.duplicates!r}; wanted [] and 0")
    missing = subject.workdir / f"missing{reader.suffix}"
    try:
        reader.read(missing, on_bad_example="error")
    except MMLabelError:
        return
    except Exception as error:
        expect(False, f"reading a missing file raised {type(error).__name__}, not mmlabel's DataError (one line, "
                      f"exit 2)")
    expect(False, "reading a missing file raised no error")


# -- metric ---------------------------------------------------------------------------------------------------
GOLD = [[Span(0, 2, "POS"), Span(4, 5, "NEG")], [Span(2, 4, "NEU")]]
# One of two predictions right, out of three gold spans: P = 50, R = 100/3, F1 = 40.
HALF = [[Span(0, 2, "POS")], [Span(2, 3, "NEU")]]


def _figures(subject: Subject, predicted: list) -> dict:
    figures = subject.built.score(GOLD, predicted)
    expect(isinstance(figures, dict), f"score returned {show(figures)}, not a dict")
    return figures


def _expect_figures(figures: dict, wanted: dict, case: str) -> None:
    for key, value in wanted.items():
        found = figures.get(key)
        expect(isinstance(found, (int, float)) and math.isclose(found, value, abs_tol=0.01),
               f"{case}: {key} is {found!r}, not {value:.2f}")


def metric_perfect(subject: Subject) -> None:
    figures = _figures(subject, GOLD)
    _expect_figures(figures, {"precision": 100.0, "recall": 100.0, "f1": 100.0}, "perfect prediction")
    expect(subject.built.main_key in figures, f"main_key {subject.built.main_key!r} is not in score's result")


def metric_empty(subject: Subject) -> None:
    _expect_figures(_figures(subject, [[], []]), {"precision": 0.0, "recall": 0.0, "f1": 0.0}, "empty prediction")


def metric_partial(subject: Subject) -> None:
    _expect_figures(_figures(subject, HALF), {"precision": 50.0, "recall": 100 / 3, "f1": 40.0},
                    "one right of two predicted, three gold")


# -- tag scheme -----------------------------------------------------------------------------------------------
SPAN_SETS = [([Span(0, 1, "POS")], 3), ([Span(0, 3, "NEG"), Span(4, 6, "NEU")], 7), ([Span(1, 2, "NEU")], 2), ([], 3)]


def scheme_tags(subject: Subject) -> None:
    scheme = subject.built
    expect("O" in scheme.tags and len(set(scheme.tags)) == len(scheme.tags),
           f"tags {scheme.tags} do not hold 'O' once and every tag once")
    expect(set(LABELS) <= set(scheme.labels), f"built with labels {LABELS}, the scheme has labels {scheme.labels}")
    expect(scheme.decode(["O"] * 4) == [], f"decode of O O O O gave {scheme.decode(['O'] * 4)}, not []")
    sizes = (len(scheme.allowed_start()), len(scheme.allowed_end()), len(scheme.allowed_transitions()),
             {len(row) for row in scheme.allowed_transitions()})
    count = len(scheme.tags)
    expect(sizes == (count, count, count, {count}),
           f"allowed_start/allowed_end/allowed_transitions sizes {sizes}, not ({count}, {count}, {count}x{count})")


def scheme_round_trip(subject: Subject) -> None:
    scheme = subject.built
    for spans, n_words in SPAN_SETS:
        tags = scheme.encode(spans, n_words)
        expect(len(tags) == n_words and set(tags) <= set(scheme.tags),
               f"encode({spans}, {n_words}) gave {tags}: not {n_words} tags of the scheme")
        expect(sorted(scheme.decode(tags)) == sorted(spans), f"decode(encode({spans})) gave {scheme.decode(tags)}")


def scheme_masks(subject: Subject) -> None:
    """Every encoded sequence is one that constrained decoding allows."""
    scheme = subject.built
    index = {tag: position for position, tag in enumerate(scheme.tags)}
    start, end, transitions = scheme.allowed_start(), scheme.allowed_end(), scheme.allowed_transitions()
    for spans, n_words in SPAN_SETS:
        ids = [index[tag] for tag in scheme.encode(spans, n_words)]
        allowed = start[ids[0]] and end[ids[-1]] and all(transitions[a][b] for a, b in zip(ids, ids[1:]))
        expect(allowed, f"the encoding of {spans} is forbidden by allowed_start/end/transitions")


READER_CHECKS = [("round_trip", reader_round_trip), ("find_splits", reader_find_splits), ("policies", reader_policies)]
METRIC_CHECKS = [("perfect", metric_perfect), ("empty", metric_empty), ("partial", metric_partial)]
SCHEME_CHECKS = [("tags", scheme_tags), ("round_trip", scheme_round_trip), ("masks", scheme_masks)]
