"""The MABSA benchmark metric (Ju et al., 2021; Yu et al., 2022): micro precision, recall and F1 over exact
(start, end, sentiment) matches, with the aspect-extraction F1 and the sentiment accuracy on extracted aspects."""
from mmlabel.data.example import SENTIMENTS, Span
from mmlabel.metrics.counts import check_aligned, exact_counts, per_label, prf
from mmlabel.configs import ComponentConfig, Configured


class MabsaMetric(Configured):
    """MABSA: micro P/R/F1 over exact (start, end, sentiment) matches, plus aspect F1 and sentiment accuracy."""

    name = "mabsa"
    main_key = "f1"

    class Config(ComponentConfig):
        """The `mabsa` metric has no options."""

    def score(self, gold: list[list[Span]], predicted: list[list[Span]]) -> dict:
        """`precision`, `recall`, `f1` (joint, in %), `aspect_precision/recall/f1` (span only),
        `sentiment_accuracy` (on aspects extracted correctly), `per_label` and the counts behind them."""
        check_aligned(gold, predicted)
        true_positives, n_predicted, n_gold = exact_counts(gold, predicted)
        joint = prf(sum(true_positives.values()), sum(n_predicted.values()), sum(n_gold.values()))
        aspect_hits, aspect_predicted, aspect_gold, sentiment_hits = _aspect_counts(gold, predicted)
        aspect = prf(aspect_hits, aspect_predicted, aspect_gold)
        labels = [label for label in SENTIMENTS if n_gold[label] or n_predicted[label]]
        labels += sorted((set(n_gold) | set(n_predicted)) - set(SENTIMENTS))
        return {
            **joint,
            "aspect_precision": aspect["precision"],
            "aspect_recall": aspect["recall"],
            "aspect_f1": aspect["f1"],
            "sentiment_accuracy": 100.0 * sentiment_hits / aspect_hits if aspect_hits else 0.0,
            "per_label": per_label(true_positives, n_predicted, n_gold, labels),
            "gold": sum(n_gold.values()),
            "predicted": sum(n_predicted.values()),
            "correct": sum(true_positives.values()),
        }


def _aspect_counts(gold: list[list[Span]], predicted: list[list[Span]]) -> tuple[int, int, int, int]:
    """Aspect (start, end) matches, predicted and gold aspects, and matches whose sentiment is also right."""
    hits = n_predicted = n_gold = sentiment_hits = 0
    for gold_spans, predicted_spans in zip(gold, predicted):
        gold_positions = {(span.start, span.end) for span in gold_spans}
        predicted_positions = {(span.start, span.end) for span in predicted_spans}
        matched = gold_positions & predicted_positions
        hits += len(matched)
        n_predicted += len(predicted_positions)
        n_gold += len(gold_positions)
        correct = set(gold_spans) & set(predicted_spans)
        sentiment_hits += len({(span.start, span.end) for span in correct})
    return hits, n_predicted, n_gold, sentiment_hits
