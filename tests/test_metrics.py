"""Metrics: hand-computed figures with partial matches, duplicate gold spans, and gold scored against itself."""
import pytest

from data_paths import DATA_DIR, realdata
from mmlabel.data.example import Span
from mmlabel.metrics.mabsa import MabsaMetric
from mmlabel.metrics.span_f1 import SpanF1Metric
from mmlabel.registry import build, get


def test_both_metrics_are_registered_with_main_key_f1():
    for name in ("mabsa", "span_f1"):
        metric = build("metric", name)
        assert metric.main_key == "f1"
        assert get("metric", name).description


def test_mabsa_hand_computed_partial_matches():
    gold = [
        [Span(0, 2, "POS"), Span(4, 5, "NEG")],
        [Span(1, 2, "NEU")],
        [Span(0, 1, "POS"), Span(0, 1, "POS")],  # duplicated gold span: counts once
    ]
    predicted = [
        [Span(0, 2, "POS"), Span(4, 5, "POS")],  # one exact, one right span with the wrong sentiment
        [Span(1, 3, "NEU")],                     # span too long: no match at all
        [Span(0, 1, "POS"), Span(3, 4, "NEG")],  # one exact, one spurious
    ]
    figures = MabsaMetric().score(gold, predicted)
    # gold 4 (after dedup), predicted 5, exact 2 -> P 40, R 50, F1 44.44
    assert (figures["gold"], figures["predicted"], figures["correct"]) == (4, 5, 2)
    assert figures["precision"] == pytest.approx(40.0)
    assert figures["recall"] == pytest.approx(50.0)
    assert figures["f1"] == pytest.approx(2 * 40 * 50 / 90)
    # aspects: gold 4, predicted 5, matched 3 (0-2, 4-5, 0-1) -> P 60, R 75, F1 66.67
    assert figures["aspect_precision"] == pytest.approx(60.0)
    assert figures["aspect_recall"] == pytest.approx(75.0)
    assert figures["aspect_f1"] == pytest.approx(2 * 60 * 75 / 135)
    assert figures["sentiment_accuracy"] == pytest.approx(200 / 3)  # 2 of the 3 matched aspects
    per_label = figures["per_label"]
    assert per_label["POS"] == pytest.approx({"precision": 200 / 3, "recall": 100.0, "f1": 80.0, "support": 2})
    assert per_label["NEG"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1})
    assert per_label["NEU"]["recall"] == 0.0 and per_label["NEU"]["support"] == 1


def test_span_f1_hand_computed_per_type():
    gold = [[Span(0, 1, "PER"), Span(2, 4, "LOC")], [Span(0, 2, "ORG")]]
    predicted = [[Span(0, 1, "PER"), Span(2, 3, "LOC")], [Span(0, 2, "ORG"), Span(3, 4, "PER")]]
    figures = SpanF1Metric().score(gold, predicted)
    # gold 3, predicted 4, exact 2 -> P 50, R 66.67, F1 57.14
    assert figures["precision"] == pytest.approx(50.0)
    assert figures["recall"] == pytest.approx(200 / 3)
    assert figures["f1"] == pytest.approx(2 * 50 * (200 / 3) / (50 + 200 / 3))
    assert figures["per_type"]["PER"] == pytest.approx({"precision": 50.0, "recall": 100.0, "f1": 200 / 3, "support": 1})
    assert figures["per_type"]["LOC"]["f1"] == 0.0 and figures["per_type"]["ORG"]["f1"] == 100.0


def test_misaligned_inputs_are_refused():
    with pytest.raises(ValueError, match="2 gold sentences but 1"):
        SpanF1Metric().score([[], []], [[]])


def test_nothing_to_find_scores_zero_not_a_division_error():
    assert MabsaMetric().score([[]], [[]])["f1"] == 0.0


@realdata
@pytest.mark.realdata
@pytest.mark.parametrize("folder, format_name, metric", [
    ("mabsa/twitter2015", "jml", "mabsa"), ("mabsa/twitter2017", "jml", "mabsa"),
    ("mner/twitter2015", "conll", "span_f1"), ("mner/twitter2017", "conll", "span_f1"),
])
def test_gold_scored_against_itself_is_100(folder, format_name, metric):
    reader = build("dataset_reader", format_name)
    gold = [example.spans for example in reader.read(reader.find_splits(DATA_DIR / folder)["test"])]
    figures = build("metric", metric).score(gold, gold)
    assert figures["f1"] == pytest.approx(100.0)
    per_label = figures.get("per_type") or figures["per_label"]
    assert len(per_label) >= 3
    assert all(row["f1"] == pytest.approx(100.0) for row in per_label.values())
