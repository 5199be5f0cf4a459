"""Span counting shared by the metrics: exact-match true positives over per-sentence sets, and P/R/F1 in percent."""
from collections import Counter

from mmlabel.data.example import Span


def check_aligned(gold: list[list[Span]], predicted: list[list[Span]]) -> None:
    """Gold and predictions must describe the same sentences, in the same order."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted ones")


def prf(true_positives: int, n_predicted: int, n_gold: int) -> dict[str, float]:
    """Precision, recall and F1 in percent; 0 where a denominator is 0."""
    precision = 100.0 * true_positives / n_predicted if n_predicted else 0.0
    recall = 100.0 * true_positives / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def exact_counts(gold: list[list[Span]], predicted: list[list[Span]]) -> tuple[Counter, Counter, Counter]:
    """Per label: true positives, predicted and gold counts; a span repeated in one sentence counts once."""
    true_positives, n_predicted, n_gold = Counter(), Counter(), Counter()
    for gold_spans, predicted_spans in zip(gold, predicted):
        gold_set, predicted_set = set(gold_spans), set(predicted_spans)
        n_gold.update(span.label for span in gold_set)
        n_predicted.update(span.label for span in predicted_set)
        true_positives.update(span.label for span in gold_set & predicted_set)
    return true_positives, n_predicted, n_gold


def per_label(true_positives: Counter, n_predicted: Counter, n_gold: Counter, labels: list[str]) -> dict[str, dict]:
    """P/R/F1 and gold support for each label."""
    return {label: {**prf(true_positives[label], n_predicted[label], n_gold[label]), "support": n_gold[label]}
            for label in labels}
