"""One training run from a recipe, start to finish (its parts assembled by `mmlabel.training.assemble`, trained by
the `Trainer`); and several seeds of it with the mean and standard deviation of every figure."""
import statistics
from datetime import datetime
from pathlib import Path

from rich.console import Console

from mmlabel.recipe import Recipe


def default_out(recipe_path: str | Path, base: str = "runs") -> Path:
    """`runs/<recipe name>-<date-time>`."""
    return Path(base) / f"{Path(recipe_path).stem}-{datetime.now():%Y%m%d-%H%M%S}"


def train_once(recipe: Recipe, out: Path, resume: bool = False, console: Console | None = None) -> dict:
    """Train the recipe with its seed into `out`; returns the run's metrics. SIGINT and SIGTERM stop it with a
    resumable checkpoint (`RunInterrupted`)."""
    from mmlabel.training.interrupts import stop_requests

    with stop_requests():
        return _train_once(recipe, out, resume, console)


def _train_once(recipe: Recipe, out: Path, resume: bool, console: Console | None) -> dict:
    from mmlabel.training.assemble import assemble
    from mmlabel.training.trainer import Trainer

    return Trainer(assemble(recipe, out, resume, console)).fit(resume=resume)


def train_seeds(recipe: Recipe, out: Path, seeds: list[int], resume: bool = False,
                console: Console | None = None) -> dict:
    """Run each seed into `out/seed-N` and summarise every numeric figure as mean and standard deviation."""
    from mmlabel import atomic
    from mmlabel.training import distributed

    runs = {}
    for seed in seeds:
        seeded = recipe.model_copy(deep=True)
        seeded.train.seed = seed
        runs[seed] = train_once(seeded, Path(out) / f"seed-{seed}", resume, console)
    summary = {"seeds": seeds, "dev": summarise([m["dev"] for m in runs.values()]),
               "test": summarise([m["test"] for m in runs.values()])}
    if distributed.current().is_main:
        atomic.write_json(Path(out) / "summary.json", summary)
    return summary


def summarise(figures: list[dict]) -> dict:
    """{key: {"mean": m, "std": s}} over the scalar figures present in every run."""
    keys = [key for key, value in figures[0].items() if isinstance(value, (int, float))]
    return {key: {"mean": statistics.fmean(f[key] for f in figures),
                  "std": statistics.stdev(f[key] for f in figures) if len(figures) > 1 else 0.0} for key in keys}
