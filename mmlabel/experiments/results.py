"""A sweep's tables: results.csv (one row per cell and seed) and summary.md (mean and standard deviation over the
seeds, per cell), both rewritten whole, atomically, so that an interrupted sweep leaves readable files."""
import csv
import io
import statistics
from pathlib import Path

from mmlabel import atomic

HEADLINE = ("dev.f1", "test.precision", "test.recall", "test.f1")
LEADING = ("cell",)
TRAILING = ("run_dir", "error")


def write_results(out: Path, rows: list[dict], axes: list[str]) -> Path:
    """`out/results.csv`: cell, the axes, seed, status, every figure column present in any row, run_dir, error."""
    columns = [*LEADING, *axes, "seed", "status"]
    for row in rows:
        columns += [key for key in row if key not in columns and key not in TRAILING]
    columns += TRAILING
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = Path(out) / "results.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, buffer.getvalue())
    return path


def read_results(path: Path) -> list[dict]:
    """results.csv back as rows: the dev and test figures as floats, the rest (labels, seed, status) as text."""
    with open(path, encoding="utf-8", newline="") as handle:
        return [{key: _number(value) if key.startswith(("dev.", "test.")) else value for key, value in row.items()}
                for row in csv.DictReader(handle)]


def run_records(rows: list[dict], axes: list[str]) -> list[dict]:
    """The rows as `--json` prints them, one object per run: cell, its axis labels, seed, status, the dev and test
    figures as `{"dev": {"f1": ...}, "test": {...}}`, the run's other scalars, run_dir and error (null if none)."""
    records = []
    for row in rows:
        record = {"cell": row["cell"], "labels": {axis: row.get(axis, "") for axis in axes}, "seed": int(row["seed"]),
                  "status": row["status"], "dev": {}, "test": {}}
        for key, value in row.items():
            split, dot, name = key.partition(".")
            if dot and split in ("dev", "test"):
                record[split][name] = value
            elif key not in (*LEADING, *axes, "seed", "status", *TRAILING):
                record[key] = value
        records.append({**record, "run_dir": row["run_dir"], "error": row.get("error") or None})
    return records


def aggregate(rows: list[dict], axes: list[str], metrics: tuple[str, ...] | None = None) -> list[dict]:
    """Per cell, in grid order: its axis labels, `runs` (finished/all) and `{metric: (mean, std, n)}` over the
    finished seeds."""
    metrics = metrics or headline_metrics(rows)
    cells: dict[str, list[dict]] = {}
    for row in rows:
        cells.setdefault(row["cell"], []).append(row)
    summary = []
    for name, cell_rows in cells.items():
        finished = [row for row in cell_rows if row["status"] == "finished"]
        figures = {}
        for metric in metrics:
            values = [float(row[metric]) for row in finished if row.get(metric) not in (None, "")]
            if values:
                std = statistics.stdev(values) if len(values) > 1 else 0.0
                figures[metric] = (statistics.fmean(values), std, len(values))
        summary.append({"cell": name, "labels": {axis: cell_rows[0].get(axis, "") for axis in axes},
                        "runs": f"{len(finished)}/{len(cell_rows)}", "figures": figures})
    return summary


def headline_metrics(rows: list[dict]) -> tuple[str, ...]:
    """dev F1 and test P/R/F1 where the metric reports them, else every dev and test figure."""
    present = {key for row in rows for key in row}
    headline = tuple(metric for metric in HEADLINE if metric in present)
    if headline:
        return headline
    return tuple(dict.fromkeys(key for row in rows for key in row if key.startswith(("dev.", "test."))))


def format_figure(figure: tuple[float, float, int] | None) -> str:
    """`68.41 ± 0.52` over several seeds, `68.41` for one, `-` where no seed finished."""
    if figure is None:
        return "-"
    mean, std, count = figure
    return f"{mean:.2f} ± {std:.2f}" if count > 1 else f"{mean:.2f}"


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines) + "\n"


def cell_table(summary: list[dict], axes: list[str]) -> str:
    """The per-cell markdown table: the axes, how many runs finished, and the headline figures."""
    metrics = list(dict.fromkeys(metric for cell in summary for metric in cell["figures"]))
    header = [*axes, "runs", *metrics] if axes else ["cell", "runs", *metrics]
    body = []
    for cell in summary:
        labels = [cell["labels"][axis] for axis in axes] if axes else [cell["cell"]]
        body.append([*labels, cell["runs"], *(format_figure(cell["figures"].get(m)) for m in metrics)])
    return markdown_table(header, body)


def write_summary(out: Path, title: str, command: str, rows: list[dict], axes: list[str],
                  extra: str = "") -> Path:
    """`out/summary.md`: the command, the per-cell table, any experiment-specific table and the failed runs."""
    summary = aggregate(rows, axes)
    seeds = sorted({int(row["seed"]) for row in rows})
    parts = [f"# {title}\n", f"Command: `{command}`\n",
             f"Mean ± standard deviation over the seeds that finished (seeds {', '.join(map(str, seeds))}); "
             "precision, recall and F1 in %. `runs` counts the finished runs of each cell; every run is a row of "
             "results.csv.\n", cell_table(summary, axes)]
    if extra:
        parts.append(extra)
    failed = [row for row in rows if row["status"] != "finished"]
    if failed:
        parts.append("## Runs not finished\n")
        parts.append("".join(f"- `{row['cell']}` seed {row['seed']}: {row['status']}"
                             f"{': ' + row['error'] if row.get('error') else ''}\n" for row in failed))
    path = Path(out) / "summary.md"
    atomic.write_text(path, "\n".join(parts))
    return path


def _number(value: str):
    try:
        return float(value)
    except ValueError:
        return value
