"""A sweep's figures, drawn with matplotlib (Agg, imported here only): grouped bars with error bars (the encoder
swap, the paper's Figure 5), lines (the loss-weight sweep, Figure 4) and a table (the ablation, Table 3).

A figure is described by a table, in an experiment file's `[figure]` or by default for `mmlabel sweep`:
    kind = "bars"    x = AXIS, group = AXIS (optional), metric = "test.f1", xlabel, legend (titles)
    kind = "lines"   series = [{label = "...", x = AXIS, where = {AXIS = value}}], metric = "dev.f1"
    kind = "table"   rows = AXIS, columns = AXIS, metrics = ["test.precision", "test.recall", "test.f1"]
Axes not named by the figure that take several values in the results get a panel each (e.g. one per dataset).
"""
import math
from pathlib import Path

from mmlabel.experiments.grid import value_label
from mmlabel.experiments.results import aggregate, format_figure, markdown_table

METRIC_NAMES = {"f1": "F1", "precision": "precision", "recall": "recall"}


def default_figure(axes: list[str]) -> dict:
    """`mmlabel sweep`'s figure: test F1 bars over the first axis, one bar per value of the second."""
    return {"kind": "bars", "x": axes[0] if axes else None, "group": axes[1] if len(axes) > 1 else None,
            "metric": "test.f1", "file": "figure.png"}


def draw(spec: dict, rows: list[dict], axes: list[str], out: Path, title: str) -> Path | None:
    """Draw the figure `spec` describes from the rows of results.csv; None where no run finished."""
    if not any(row["status"] == "finished" for row in rows):
        return None
    import matplotlib

    matplotlib.use("Agg")
    path = Path(out) / spec.get("file", "figure.png")
    kind = spec.get("kind", "bars")
    if kind == "bars":
        _bars(spec, rows, axes, title, path)
    elif kind == "lines":
        _lines(spec, rows, axes, title, path)
    elif kind == "table":
        header, body = pivot_table(spec, rows, axes)
        _table(header, body, title, path)
    else:
        raise ValueError(f"unknown figure kind {kind!r}")
    return path


def pivot_table(spec: dict, rows: list[dict], axes: list[str]) -> tuple[list[str], list[list[str]]]:
    """The table figure's cells: one row per value of `rows`, a column per value of `columns` and metric."""
    metrics = spec.get("metrics", ["test.precision", "test.recall", "test.f1"])
    summary = aggregate(rows, axes, tuple(metrics))
    row_axis, column_axis = spec["rows"], spec.get("columns")
    row_labels = _distinct(cell["labels"][row_axis] for cell in summary)
    column_labels = _distinct(cell["labels"][column_axis] for cell in summary) if column_axis else [""]
    header = [row_axis] + [f"{column} {_metric_name(m)}".strip() for column in column_labels for m in metrics]
    body = []
    for label in row_labels:
        line = [label]
        for column in column_labels:
            cell = next((c for c in summary if c["labels"][row_axis] == label
                         and (not column_axis or c["labels"][column_axis] == column)), None)
            line += [format_figure(cell["figures"].get(m)) if cell else "-" for m in metrics]
        body.append(line)
    return header, body


def pivot_markdown(spec: dict, rows: list[dict], axes: list[str], title: str) -> str:
    header, body = pivot_table(spec, rows, axes)
    return f"## {title}\n\n" + markdown_table(header, body)


def _bars(spec: dict, rows: list[dict], axes: list[str], title: str, path: Path) -> None:
    import numpy as np

    metric, x_axis, group_axis = spec.get("metric", "test.f1"), spec.get("x"), spec.get("group")
    summary = aggregate(rows, axes, (metric,))
    panels = _panels(summary, axes, {x_axis, group_axis})
    x_of = (lambda cell: cell["labels"][x_axis]) if x_axis else (lambda cell: cell["cell"])
    x_labels = _distinct(x_of(cell) for cell in summary)
    groups = _distinct(cell["labels"][group_axis] for cell in summary) if group_axis else [None]
    width = 0.8 / len(groups)
    figure, plots = _subplots(len(panels), width=max(6.0, 1.1 * len(x_labels) * max(1, len(groups)) ** 0.5 + 1.5))
    top = 0.0
    for plot, (panel, cells) in zip(plots, panels.items()):
        for index, group in enumerate(groups):
            means, stds = [], []
            for label in x_labels:
                cell = next((c for c in cells if x_of(c) == label
                             and (group is None or c["labels"][group_axis] == group)), None)
                mean, std, count = cell["figures"].get(metric, (math.nan, 0.0, 0)) if cell else (math.nan, 0.0, 0)
                means.append(mean)
                stds.append(std if count > 1 else math.nan)  # no error bar from a single seed
                top = max(top, mean + (std if count > 1 else 0.0)) if not math.isnan(mean) else top
            positions = np.arange(len(x_labels)) - 0.4 + width * (index + 0.5)
            bars = plot.bar(positions, means, width, yerr=stds, capsize=3, label=group, color=f"C{index}")
            plot.bar_label(bars, labels=[f"{m:.1f}" if not math.isnan(m) else "" for m in means], fontsize=7,
                           padding=2)
        plot.set_xticks(np.arange(len(x_labels)), x_labels, rotation=20 if len(x_labels) > 4 else 0)
        plot.set_xlim(-0.5, len(x_labels) - 0.5)  # every x value keeps its place, even with no finished run
        plot.set_xlabel(spec.get("xlabel", x_axis or "cell"))
        plot.set_title(panel, fontsize=10)
        plot.grid(axis="y", alpha=0.3)
    for plot in plots:
        plot.set_ylim(0, max(top * 1.12, 1.0))  # bars start at zero: their heights are compared
    plots[0].set_ylabel(_metric_label(metric))
    _finish(figure, title, path, legend_title=spec.get("legend", group_axis))


def _lines(spec: dict, rows: list[dict], axes: list[str], title: str, path: Path) -> None:
    metric, series = spec.get("metric", "dev.f1"), spec["series"]
    summary = aggregate(rows, axes, (metric,))
    named = {s["x"] for s in series} | {key for s in series for key in s.get("where", {})}
    panels = _panels(summary, axes, named)
    figure, plots = _subplots(len(panels), width=6.0)
    for plot, (panel, cells) in zip(plots, panels.items()):
        ticks = set()
        for index, line in enumerate(series):
            where = {key: value_label(value) for key, value in line.get("where", {}).items()}
            points = sorted((float(c["labels"][line["x"]]), *c["figures"][metric][:2]) for c in cells
                            if metric in c["figures"] and all(c["labels"].get(k) == v for k, v in where.items()))
            if points:
                xs, means, stds = zip(*points)
                ticks.update(xs)
                plot.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=line.get("label", line["x"]),
                              color=f"C{index}")
        plot.set_xticks(sorted(ticks))
        plot.set_xlabel(spec.get("xlabel", "loss weight"))
        plot.set_title(panel, fontsize=10)
        plot.grid(alpha=0.3)
        plot.margins(y=0.15)
        _span_at_least(plot, MIN_LINE_SPAN)
    plots[0].set_ylabel(_metric_label(metric))
    _finish(figure, title, path)


MIN_LINE_SPAN = 10.0  # percentage points: lines are read for their shape, but a seed's point or two is no trend


def _span_at_least(plot, span: float) -> None:
    """Widen the y axis around the data to at least `span`, within 0-100."""
    low, high = plot.get_ylim()
    if high - low >= span:
        return
    middle = (low + high) / 2
    low = min(max(0.0, middle - span / 2), 100.0 - span)
    plot.set_ylim(low, low + span)


def _table(header: list[str], body: list[list[str]], title: str, path: Path) -> None:
    import textwrap

    import matplotlib.pyplot as plt

    header = [textwrap.fill(text, 14) for text in header]  # "twitter2015 precision" on two lines
    widths = [max(len(line) for text in column for line in text.split("\n")) for column in zip(header, *body)]
    scale = 0.085  # inches per character at 9 points
    figure, plot = plt.subplots(figsize=(sum(widths) * scale + 0.4 * len(header), 0.3 * len(body) + 1.3),
                                layout="constrained")
    plot.axis("off")
    table = plot.table(cellText=body, colLabels=header, loc="center", cellLoc="center",
                       colWidths=[width / sum(widths) for width in widths])
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    for (row, _), cell in table.get_celld().items():
        cell.set_height(0.55 / (len(body) + 1) * (2 if row == 0 else 1))
        if row == 0:
            cell.set_text_props(weight="bold")
    plot.set_title(title, fontsize=11)
    figure.savefig(path, dpi=150)
    plt.close(figure)


def _panels(summary: list[dict], axes: list[str], used: set) -> dict[str, list[dict]]:
    """The cells split by the values of the axes the figure does not name that take several values."""
    free = [axis for axis in axes if axis not in used and len(_distinct(c["labels"][axis] for c in summary)) > 1]
    panels: dict[str, list[dict]] = {}
    for cell in summary:
        key = ", ".join(f"{axis} = {cell['labels'][axis]}" for axis in free)
        panels.setdefault(key, []).append(cell)
    return panels


def _subplots(count: int, width: float):
    import matplotlib.pyplot as plt

    figure, plots = plt.subplots(1, count, figsize=(width * count, 4.6), squeeze=False, sharey=True,
                                 layout="constrained")
    return figure, list(plots[0])


def _finish(figure, title: str, path: Path, legend_title: str | None = None) -> None:
    """Title on top, the legend in a row under the plots (never over the data); 150 dpi."""
    import textwrap

    import matplotlib.pyplot as plt

    handles, labels = figure.axes[0].get_legend_handles_labels()
    figure.suptitle(textwrap.fill(title, int(figure.get_figwidth() * 8)), fontsize=12)
    if any(labels):
        figure.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6), frameon=False,
                      title=legend_title, fontsize=9)
    figure.savefig(path, dpi=150)
    plt.close(figure)


def _metric_label(metric: str) -> str:
    split, _, name = metric.partition(".")
    return f"{split} {METRIC_NAMES.get(name, name)} (%)"


def _metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric.partition(".")[2], metric)


def _distinct(values) -> list:
    return list(dict.fromkeys(values))
