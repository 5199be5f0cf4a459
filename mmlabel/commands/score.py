"""`mmlabel score GOLD PRED`: score a predictions JSONL file against gold data in any format."""
from pathlib import Path
from typing import Annotated, Optional

import typer

from mmlabel.commands.options import FormatOption, JsonOption, SplitOption, echo_json, reader_name


def score(
    gold: Annotated[Path, typer.Argument(help="Gold data: one file, or a data directory (see --split).")],
    predictions: Annotated[Path, typer.Argument(help="Predictions as JSON lines (the jsonl format), matched by id.")],
    format_name: FormatOption = None,
    metric: Annotated[Optional[str], typer.Option(help="mabsa or span_f1 (chosen from the gold labels if omitted).")] = None,
    split: SplitOption = "test",
    as_json: JsonOption = False,
) -> None:
    """Score predictions against gold data (read with --format; a directory's --split) and print the metric's
    figures (precision, recall, F1 in %)."""
    from mmlabel.data.example import is_sentiment_data
    from mmlabel.errors import DataError
    from mmlabel.metrics.align import align_predictions
    from mmlabel.registry import build

    reader = build("dataset_reader", reader_name(gold, format_name))
    splits = reader.find_splits(gold)
    if split not in splits:
        raise DataError(f"no {split} split here (found {', '.join(splits)}); choose one with --split", gold)
    gold_examples = reader.read(splits[split] if gold.is_dir() else gold)
    predicted = build("dataset_reader", "mmlabel:jsonl").read(predictions)
    gold_spans, predicted_spans = align_predictions(gold_examples, predicted, str(predictions))
    metric_name = metric or ("mabsa" if is_sentiment_data(gold_examples) else "span_f1")
    figures = build("metric", metric_name).score(gold_spans, predicted_spans)
    if as_json:
        echo_json(figures)
    else:
        _print_figures(metric_name, figures)


def _print_figures(metric_name: str, figures: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    overall = Table("figure", "value", title=f"{metric_name}")
    for key, value in figures.items():
        if not isinstance(value, dict):
            overall.add_row(key, f"{value:.2f}" if isinstance(value, float) else str(value))
    console = Console()
    console.print(overall)
    for key, rows in figures.items():
        if isinstance(rows, dict):
            table = Table(key.removeprefix("per_"), "precision", "recall", "f1", "support")
            for label, row in rows.items():
                table.add_row(label, *(f"{row[name]:.2f}" for name in ("precision", "recall", "f1")), str(row["support"]))
            console.print(table)
