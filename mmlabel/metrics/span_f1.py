"""Strict entity-level span F1 for NER (CoNLL-2003's conlleval): a predicted entity counts only when its start, end
and type all match a gold entity; micro P/R/F1 over all types, and the same per type."""
from mmlabel.data.example import Span
from mmlabel.metrics.counts import check_aligned, exact_counts, per_label, prf
from mmlabel.configs import ComponentConfig, Configured


class SpanF1Metric(Configured):
    """Span F1 (NER): strict entity-level micro P/R/F1 over exact (start, end, type) matches, plus per type."""

    name = "span_f1"
    main_key = "f1"

    class Config(ComponentConfig):
        """The `span_f1` metric has no options."""

    def score(self, gold: list[list[Span]], predicted: list[list[Span]]) -> dict:
        """`precision`, `recall`, `f1` (micro, in %), `per_type` ({type: P/R/F1 and support}) and the counts."""
        check_aligned(gold, predicted)
        true_positives, n_predicted, n_gold = exact_counts(gold, predicted)
        types = sorted(set(n_gold) | set(n_predicted))
        return {
            **prf(sum(true_positives.values()), sum(n_predicted.values()), sum(n_gold.values())),
            "per_type": per_label(true_positives, n_predicted, n_gold, types),
            "gold": sum(n_gold.values()),
            "predicted": sum(n_predicted.values()),
            "correct": sum(true_positives.values()),
        }
