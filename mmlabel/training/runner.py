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


def train_once(recipe: Recipe, out: Path, resume: bool = False, console: Console | None = None, *,
               tracking=None, callbacks: list = (), evaluate_test: bool = True,
               recipe_folder: Path | None = None) -> dict:
    """Train the recipe with its seed into `out`; returns the run's metrics. SIGINT and SIGTERM stop it with a
    resumable checkpoint (`RunInterrupted`). `tracking`: where the trackers of `train.report_to` report
    (`mmlabel.training.tracking.TrackingPlace`; default: the run's own); `callbacks` run after them.
    `recipe_folder`: the recipe file's folder, whose git commit run.json records."""
    from mmlabel.training.interrupts import stop_requests
    from mmlabel.training.tracking import check_available

    check_available(recipe.train.report_to)  # before the run directory is claimed
    with stop_requests():
        return _train_once(recipe, out, resume, console, tracking, list(callbacks), evaluate_test, recipe_folder)


def _train_once(recipe: Recipe, out: Path, resume: bool, console: Console | None, tracking, callbacks: list,
                evaluate_test: bool, recipe_folder: Path | None) -> dict:
    from mmlabel.training.assemble import assemble
    from mmlabel.training.tracking import TrackingPlace, tracking_callbacks
    from mmlabel.training.trainer import Trainer

    trackers = tracking_callbacks(recipe.train.report_to, tracking or TrackingPlace.alone(out))
    return Trainer(assemble(recipe, out, resume, console, recipe_folder), callbacks=[*callbacks, *trackers],
                   evaluate_test=evaluate_test).fit(resume=resume)


def train_seeds(recipe: Recipe, out: Path, seeds: list[int], resume: bool = False,
                console: Console | None = None, recipe_folder: Path | None = None) -> dict:
    """Run each seed into `out/seed-N` and summarise every numeric figure as mean and standard deviation."""
    from mmlabel import atomic
    from mmlabel.training import distributed

    from mmlabel.training.tracking import TrackingPlace

    runs = {}
    for seed in seeds:
        seeded = recipe.model_copy(deep=True)
        seeded.train.seed = seed
        place = TrackingPlace.in_group(out, f"seed-{seed}", {"mmlabel.seed": seed})
        runs[seed] = train_once(seeded, Path(out) / f"seed-{seed}", resume, console, tracking=place,
                                recipe_folder=recipe_folder)
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
