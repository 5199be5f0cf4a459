"""Run every cell of a grid with every seed, each into its own run directory, skipping the runs already finished.

    DIR/<cell name>/seed-<n>/    one run directory per cell and seed (see `mmlabel.run_dir`)
    DIR/results.csv              one row per cell and seed: the axes, seed, status, every scalar figure, the run
    DIR/summary.md               mean and standard deviation over the seeds, per cell
    DIR/<figure>.png             the figure
    DIR/errors/<cell>.seed-<n>.txt   the traceback of a run that failed

An interrupted sweep continues where it stopped when the same command runs again: a finished run (status
"finished" in its run.json) is read back, not retrained; a half-finished run resumes from its last checkpoint;
a run that failed is tried again. A run that fails is recorded with its error and the sweep goes on.

Ctrl-C (SIGINT) or SIGTERM ends the sweep: the run in progress saves a resumable checkpoint and is recorded as
"interrupted", no further run starts, and the same command run again resumes that run and finishes the rest.
"""
import copy
import json
import traceback
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from mmlabel.errors import RecipeError, RunInterrupted
from mmlabel.experiments.grid import Cell
from mmlabel.experiments.results import write_results, write_summary
from mmlabel.recipe import Recipe, recipe_from_dict, set_keys


@dataclass
class Sweep:
    """What to run: the base recipe (parsed TOML, `--set` applied), the cells, the seeds and the output folder."""

    base: dict
    source: str
    cells: list[Cell]
    seeds: list[int]
    out: Path
    axes: list[str]

    def run_dir(self, cell: Cell, seed: int) -> Path:
        return self.out / cell.name / f"seed-{seed}"

    def recipes(self) -> dict[str, Recipe]:
        """Every cell's validated recipe, built before anything trains so that a typo fails at once."""
        recipes = {}
        for cell in self.cells:
            raw = copy.deepcopy(self.base)
            set_keys(raw, list(cell.overrides), where=f"{self.source} [{cell.name}]")
            recipes[cell.name] = recipe_from_dict(raw, source=f"{self.source} [{cell.name}]")
        return recipes


def run_sweep(sweep: Sweep, console: Console | None = None, recipes: dict[str, Recipe] | None = None) -> list[dict]:
    """Train every cell and seed not finished yet; returns the rows of results.csv (rewritten after every run).
    A stop signal (see `interrupts`) ends it after the run in progress, recorded as "interrupted"; the rows not
    reached stay "pending"."""
    from mmlabel.training import interrupts

    console = console or Console(stderr=True, soft_wrap=True)
    recipes = recipes or sweep.recipes()
    rows = [_pending_row(sweep, cell, seed) for cell in sweep.cells for seed in sweep.seeds]
    write_results(sweep.out, rows, sweep.axes)
    with interrupts.stop_requests():
        for index, row in enumerate(rows):
            if interrupts.requested():
                break  # the signal came between two runs: start no further one
            cell = sweep.cells[index // len(sweep.seeds)]
            where = f"[{index + 1}/{len(rows)}] {cell.name} seed {row['seed']}"
            rows[index] = {**row, **_run_or_stop(recipes[cell.name], sweep, cell, row["seed"], where, console)}
            write_results(sweep.out, rows, sweep.axes)
            if rows[index]["status"] == "interrupted":
                break
    return rows


def _run_or_stop(recipe: Recipe, sweep: Sweep, cell: Cell, seed: int, where: str, console: Console) -> dict:
    """One run's row; a stop signal during it makes the row "interrupted" (its checkpoint saved, unless a second
    signal stopped it at once: then it resumes from its last checkpoint)."""
    resume = "run the same command again to resume it"
    try:
        return _run_one(recipe, sweep, cell, seed, where, console)
    except RunInterrupted as error:
        message = str(error).replace("continue with --resume", resume)
    except KeyboardInterrupt:  # a second signal: stopped at once, without a checkpoint
        message = f"stopped at once by a second signal; {resume} from its last checkpoint"
    (sweep.out / "errors" / f"{cell.name}.seed-{seed}.txt").unlink(missing_ok=True)  # an older attempt's
    console.print(f"[yellow]{where}: interrupted: {message}[/yellow]")
    return {"status": "interrupted", "error": message}


def report(sweep: Sweep, rows: list[dict], figure: dict, title: str, command: str) -> tuple[Path, Path | None]:
    """summary.md (with the figure's table where the figure is one) and the figure; returns both paths."""
    from mmlabel.experiments.figures import draw, pivot_markdown

    extra = pivot_markdown(figure, rows, sweep.axes, figure.get("title", title)) if figure.get("kind") == "table" else ""
    summary = write_summary(sweep.out, title, command, rows, sweep.axes, extra)
    return summary, draw(figure, rows, sweep.axes, sweep.out, figure.get("title", title))


def _run_one(recipe: Recipe, sweep: Sweep, cell: Cell, seed: int, where: str, console: Console) -> dict:
    """One run: read back where finished, else trained (resumed where started); failures become a row, a stop
    signal raises `RunInterrupted`."""
    from mmlabel.environment import recipe_folder
    from mmlabel.training.runner import train_once
    from mmlabel.run_dir import RunDir

    seeded = recipe.model_copy(deep=True)
    seeded.train.seed = seed
    run = RunDir(sweep.run_dir(cell, seed))
    error_file = sweep.out / "errors" / f"{cell.name}.seed-{seed}.txt"
    try:
        if _finished(run):
            _check_same_recipe(run, seeded)
            console.print(f"{where}: already finished, skipped")
            return _finished_row(run, run.metrics())
        console.print(f"{where}: training into {run.path}")
        metrics = train_once(seeded, run.path, resume=run.recipe_path.exists(), console=console,
                             tracking=_tracking_place(sweep, cell, seed), recipe_folder=recipe_folder(sweep.source))
    except RunInterrupted:
        raise
    except Exception as error:  # noqa: BLE001 - one broken cell must not end an overnight sweep
        message = " ".join(f"{type(error).__name__}: {error}".split())
        error_file.parent.mkdir(parents=True, exist_ok=True)
        error_file.write_text(traceback.format_exc(), encoding="utf-8")
        console.print(f"[red]{where}: failed: {message}[/red] (traceback in {error_file})")
        return {"status": "failed", "error": message}
    finally:
        _free_memory()
    error_file.unlink(missing_ok=True)
    console.print(f"{where}: test f1 {metrics['test'].get('f1', float('nan')):.2f}")
    return _finished_row(run, metrics)


def _tracking_place(sweep: Sweep, cell: Cell, seed: int):
    """One MLflow experiment per sweep, its runs tagged by cell and seed; one TensorBoard directory per sweep."""
    from mmlabel.training.tracking import TrackingPlace

    tags = {"mmlabel.cell": cell.name, "mmlabel.seed": seed, **{f"mmlabel.axis.{k}": v for k, v in cell.labels.items()}}
    return TrackingPlace.in_group(sweep.out, f"{cell.name}/seed-{seed}", tags)


def _finished(run) -> bool:
    if not run.info_path.exists() or not run.metrics_path.exists():
        return False
    return json.loads(run.info_path.read_text(encoding="utf-8")).get("status") == "finished"


def _check_same_recipe(run, recipe: Recipe) -> None:
    """A finished run is reused only for the same recipe (the tokenizer path aside, which names the run itself)."""
    stored = recipe_from_dict(_read_toml(run.recipe_path), source=str(run.recipe_path), resolve=False)
    wanted = recipe.model_copy(deep=True)
    if wanted.text_encoder.options.get("tokenizer") == "train":
        wanted.text_encoder.tokenizer = stored.text_encoder.options.get("tokenizer")
    from mmlabel.run_dir import comparable

    if comparable(stored.to_toml()) != comparable(wanted.to_toml()):
        raise RecipeError(f"{run.path}: holds a finished run of a different recipe (the --set options or the base "
                          "recipe changed?): delete it or choose another --out")


def _read_toml(path: Path) -> dict:
    import tomllib

    return tomllib.loads(path.read_text(encoding="utf-8"))


def _pending_row(sweep: Sweep, cell: Cell, seed: int) -> dict:
    return {"cell": cell.name, **cell.labels, "seed": seed, "status": "pending",
            "run_dir": str(sweep.run_dir(cell, seed)), "error": ""}


def _finished_row(run, metrics: dict) -> dict:
    """status, every scalar figure of dev and test as `dev.f1`, ..., the run's other scalars, its training time."""
    row = {"status": "finished", "error": ""}
    for split in ("dev", "test"):
        row.update({f"{split}.{key}": value for key, value in metrics.get(split, {}).items() if _scalar(value)})
    row.update({key: value for key, value in metrics.items() if _scalar(value)})
    row["train_seconds"] = round(_train_seconds(run), 1)
    return row


def _train_seconds(run) -> float:
    """The sum of the epochs' times in log.jsonl: the same whether the run trained now or in an earlier sweep."""
    if not run.log_path.exists():
        return 0.0
    lines = run.log_path.read_text(encoding="utf-8").splitlines()
    return sum(json.loads(line).get("seconds", 0.0) for line in lines if line.strip())


def _scalar(value) -> bool:
    return isinstance(value, (int, float))


def _free_memory() -> None:
    """Give the finished cell's tensors back before the next cell builds its model."""
    import gc

    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
