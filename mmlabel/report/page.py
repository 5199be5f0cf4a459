"""The report as one self-contained HTML page: a Jinja2 template (`page.html.j2`) with its stylesheet and script
inlined, the photos as embedded thumbnails and the figures also as JSON in the page; nothing is fetched."""
import json
from importlib import resources

from mmlabel.data.example import SENTIMENTS, Span
from mmlabel.report.collect import Report, RunView

# The figures shown in the first table, in this order, where the runs' metric reports them; others follow.
FIGURE_ORDER = ("precision", "recall", "f1", "aspect_precision", "aspect_recall", "aspect_f1", "sentiment_accuracy")


def render(report: Report) -> str:
    """The page's HTML text."""
    from jinja2 import Environment, StrictUndefined

    environment = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    template = environment.from_string(_asset("page.html.j2"))
    return template.render(
        split=report.split, runs=report.runs, figures=figure_rows(report.runs), labels=label_rows(report.runs),
        posts=[post_view(report, index) for index in range(len(report.examples))],
        figures_json=json.dumps({run.name: run.figures for run in report.runs}).replace("<", "\\u003c"),
        style=_asset("report.css"), script=_asset("report.js"), label_style=label_style,
    )


def figure_rows(runs: list[RunView]) -> list[dict]:
    """[{"key", "cells"}]: every scalar figure of the runs' metric, one cell per run, as `mmlabel evaluate` prints
    it (two decimals; counts as integers)."""
    keys = [key for run in runs for key, value in run.figures.items() if isinstance(value, (int, float))]
    keys = sorted(dict.fromkeys(keys), key=lambda key: FIGURE_ORDER.index(key) if key in FIGURE_ORDER else 99)
    return [{"key": key, "cells": [_number(run.figures.get(key)) for run in runs]} for key in keys]


def label_rows(runs: list[RunView]) -> list[dict]:
    """[{"label", "support", "cells"}]: each label's F1 per run, with its precision and recall for the tooltip."""
    labels = list(dict.fromkeys(label for run in runs for label in run.figures.get("per_label", {})))
    rows = []
    for label in labels:
        found = [run.figures.get("per_label", {}).get(label) for run in runs]
        support = next(row["support"] for row in found if row is not None)
        cells = [None if row is None else {"f1": _number(row["f1"]), "precision": _number(row["precision"]),
                                           "recall": _number(row["recall"])} for row in found]
        rows.append({"label": label, "support": support, "cells": cells})
    return rows


def post_view(report: Report, index: int) -> dict:
    """One post: its photo, its context text (where it has one: `data.context`), the gold row and a row per run
    (segments of the sentence, spans marked), and the flags the page's filters use."""
    example = report.examples[index]
    gold = set(example.spans)
    rows = [{"who": "gold", "segments": segments(example.tokens, example.spans, None), "missed": [], "wrong": False}]
    for run in report.runs:
        predicted = run.predictions[index]
        heat = run.heat[index] if run.heat else {}
        found_bounds = {(span.start, span.end) for span in predicted}
        rows.append({
            "who": run.name, "segments": segments(example.tokens, predicted, gold, heat, run.grid),
            # a gold span found with the right boundaries but another label is shown once, on the run's span
            "missed": [_span_text(example.tokens, span) for span in sorted(gold - set(predicted))
                       if (span.start, span.end) not in found_bounds],
            "wrong": set(predicted) != gold,
        })
    predicted_sets = {frozenset(run.predictions[index]) for run in report.runs}
    return {"id": example.id, "photo": report.photos[index], "context": example.context or "", "rows": rows,
            "words": " ".join(example.tokens).lower(), "error": any(row["wrong"] for row in rows),
            "disagree": len(predicted_sets) > 1}


def segments(tokens: list[str], spans: list[Span], gold: set[Span] | None, heat: dict | None = None,
             grid: tuple[int, int] | None = None) -> list[dict]:
    """The sentence as consecutive pieces: plain text, or a span with its label, whether it is correct (against
    `gold`; None for the gold row itself), the gold label where a gold span has its boundaries but another label
    (`gold_label`, else "") and its heat map. A span overlapping an earlier one is shown as text."""
    gold_labels = {(span.start, span.end): span.label for span in gold or ()}
    pieces, position = [], 0
    for span in sorted(set(spans)):
        if span.start < position or span.end > len(tokens):
            continue
        if span.start > position:
            pieces.append({"text": " ".join(tokens[position:span.start])})
        pieces.append({"text": " ".join(tokens[span.start:span.end]), "label": span.label,
                       "correct": None if gold is None else span in gold, "heat": (heat or {}).get(span, ""),
                       "gold_label": "" if gold is None or span in gold else gold_labels.get((span.start, span.end), ""),
                       "grid": f"{grid[0]}x{grid[1]}" if grid else ""})
        position = span.end
    if position < len(tokens):
        pieces.append({"text": " ".join(tokens[position:])})
    return pieces


def label_style(label: str) -> str:
    """The CSS class of a label's colour: sentiments have their own, other labels (entity types) one of eight."""
    if label in SENTIMENTS:
        return f"label-{label}"
    return f"label-other{sum(map(ord, label)) % 8}"


def _span_text(tokens: list[str], span: Span) -> str:
    return f"{' '.join(tokens[span.start:span.end])} ({span.label})"


def _number(value) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.2f}"


def _asset(name: str) -> str:
    return resources.files("mmlabel.report").joinpath(name).read_text(encoding="utf-8")
