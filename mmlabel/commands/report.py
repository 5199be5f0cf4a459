"""`mmlabel report RUN [RUN...]`: finished runs side by side on one split, as one self-contained HTML page."""
from pathlib import Path
from typing import Annotated

import typer

from mmlabel.commands.options import SplitOption


def report(
    runs: Annotated[list[Path], typer.Argument(help="Finished run directories, shown side by side (the folder of "
                                                    "train --seeds: each of its seed runs).")],
    split: SplitOption = "test",
    out: Annotated[Path, typer.Option(help="The HTML file to write.")] = Path("report.html"),
) -> None:
    """Write an HTML page comparing runs on a split: their figures (as `mmlabel evaluate` gives them), the label
    confusion over correctly bounded spans, and every post with its photo, gold spans and each run's spans, with the
    attention over the photo where the fusion head exposes it; filters for errors, disagreements and words. The
    folder of `train --seeds` stands for its seed-N runs, each shown as a run."""
    from mmlabel.device import keep_freed_memory
    from mmlabel.report import write_report
    from mmlabel.threads import use_threads

    keep_freed_memory()  # this process's choice; the library leaves the allocator alone
    use_threads()
    out.parent.mkdir(parents=True, exist_ok=True)
    report = write_report(runs, out, split)
    typer.echo(f"report: {out} ({len(report.examples)} posts, {len(report.runs)} runs, "
               f"{out.stat().st_size / 1024:.0f} KiB)")
