"""The built-in metrics, registered like any plugin's: `mabsa` (aspect-sentiment pairs) and `span_f1` (NER).

A metric has `score(gold: list[list[Span]], predicted: list[list[Span]]) -> dict` with `precision`, `recall` and
`f1` in percent at the top level, and `main_key = "f1"`, the figure model selection uses."""
from mmlabel.hookspecs import hookimpl
from mmlabel.registry import lazy


@hookimpl
def register_metrics(register) -> None:
    register("mabsa", lazy("mmlabel.metrics.mabsa:MabsaMetric",
                           "MABSA: micro P/R/F1 over exact (start, end, sentiment) matches, plus aspect F1."))
    register("span_f1", lazy("mmlabel.metrics.span_f1:SpanF1Metric",
                             "Span F1 (NER): strict entity-level micro P/R/F1, plus per type."))
