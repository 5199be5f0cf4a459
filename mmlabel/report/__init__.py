"""`mmlabel report`: finished runs side by side on one split, as one self-contained HTML page: their figures (those
of `mmlabel evaluate`), the label confusion over correctly bounded spans, and every post with its photo, its gold
spans and each run's, with the attention of each predicted span over the photo where the fusion head exposes it."""
from pathlib import Path


def write_report(run_dirs: list[str | Path], out: str | Path, split: str = "test"):
    """Write the report of `run_dirs` on `split` to `out` (HTML); returns the `Report` it shows."""
    from mmlabel.atomic import write_text
    from mmlabel.report.collect import collect
    from mmlabel.report.page import render

    from mmlabel.run_dir import with_seed_runs

    report = collect(with_seed_runs(run_dirs), split)
    write_text(Path(out), render(report))
    return report
