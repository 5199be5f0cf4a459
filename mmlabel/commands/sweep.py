"""`mmlabel sweep` (every cell of a grid of recipe changes, with several seeds) and `mmlabel reproduce` (the paper's
experiments, kept as files under recipes/experiments/ and shipped with the package, run through the same sweep).
Ctrl-C or SIGTERM ends either after the run in progress (exit 130 / 143); the same command run again resumes."""
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from mmlabel.commands.options import JsonOption, SetOption
from mmlabel.commands.train import _parse_seeds
from mmlabel.errors import RecipeError

LauncherOption = Annotated[str, typer.Option(
    "--launcher", help="local: runs on this machine; slurm: each run a Slurm job, submitted with submitit.")]
JobsOption = Annotated[Optional[int], typer.Option(
    "--jobs", min=1, help="Runs at once: local, in processes of their own, one GPU each where there are GPUs "
                          "(default 1, in this process); slurm, the most jobs running at once (default: no limit).")]
SlurmOption = Annotated[Optional[list[str]], typer.Option(
    "--slurm", help="What each Slurm job asks for: partition=NAME, time=MINUTES, gpus=N, cpus=N, mem_gb=N, "
                    "signal_delay_s=S, sbatch.<parameter>=VALUE (repeatable).")]
OnlyOption = Annotated[
    Optional[list[str]],
    typer.Option("--only", help="Run only these values of an axis: --only dataset=twitter2017 (repeatable)."),
]


def sweep(
    recipe: Annotated[Path, typer.Argument(help="The base recipe: a TOML file or a built-in name (quickstart).")],
    out: Annotated[Path, typer.Option(help="The sweep folder: a run directory per cell and seed, results.csv, "
                                           "summary.md, figure.png. Run the same command again to continue.")],
    grid: Annotated[Optional[list[str]], typer.Option(
        "--grid", help="An axis: key.path=v1,v2,... (repeatable; the cells are the cartesian product).")] = None,
    set_: SetOption = None,
    seeds: Annotated[str, typer.Option(help="Seeds run in every cell, e.g. 1,2,3.")] = "1",
    launcher: LauncherOption = "local",
    jobs: JobsOption = None,
    slurm: SlurmOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train every cell of a grid of recipe changes with every seed; finished runs are skipped, failed ones recorded."""
    from mmlabel.experiments.figures import default_figure
    from mmlabel.experiments.grid import expand, parse_grid_option
    from mmlabel.experiments.sweep import Sweep
    from mmlabel.recipe import apply_override, read_raw

    axes = [parse_grid_option(text) for text in grid or []]
    names = [axis.name for axis in axes]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate:
        raise RecipeError(f"--grid {duplicate}: the axis is given twice")
    base = read_raw(recipe)
    for override in set_ or []:
        apply_override(base, override)
    plan = Sweep(base, str(recipe), expand([axes]), _seeds(seeds), out, names)
    _execute(plan, default_figure(names), f"Sweep of {recipe.name}", as_json, _launch(launcher, jobs, slurm))


def reproduce(
    experiment: Annotated[str, typer.Argument(help="encoder-swap, ablation, alpha-beta or methods (built in: "
                                                   "recipes/experiments/), or the path of an experiment file.")],
    data_root: Annotated[Optional[Path], typer.Option(help="A folder holding twitter2015/ and twitter2017/, each "
                                                           "with train/dev/test.txt and images/.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="The sweep folder (default: runs/reproduce-<experiment>[-tiny]).")] = None,
    tiny: Annotated[bool, typer.Option(help="Tiny random encoders on the synthetic data: minutes on a CPU.")] = False,
    seeds: Annotated[Optional[str], typer.Option(help="Seeds, e.g. 1,2,3 (default: the experiment file's).")] = None,
    only: OnlyOption = None,
    set_: SetOption = None,
    launcher: LauncherOption = "local",
    jobs: JobsOption = None,
    slurm: SlurmOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reproduce one of the paper's experiments: its sweep, summary.md and figure. Run again to continue."""
    from mmlabel.experiments.experiment_file import load_experiment
    from mmlabel.experiments.grid import expand
    from mmlabel.experiments.sweep import Sweep
    from mmlabel.recipe import apply_override, read_raw

    loaded = load_experiment(experiment, tiny, data_root)
    restrict = {**loaded.only, **_parse_only(only or [])}
    base = read_raw(loaded.recipe)
    for override in [*loaded.sets, *(set_ or [])]:
        apply_override(base, override)
    axes = list(dict.fromkeys(axis.name for grid in loaded.grids for axis in grid))
    out = out or Path("runs") / f"reproduce-{loaded.name}{'-tiny' if tiny else ''}"
    plan = Sweep(base, str(loaded.recipe), expand(loaded.grids, restrict), _seeds(seeds) if seeds else loaded.seeds,
                 out, axes)
    title = f"{loaded.figure.get('title', loaded.name)}{' (tiny, synthetic data)' if tiny else ''}"
    _execute(plan, {**loaded.figure, "title": title}, title, as_json, _launch(launcher, jobs, slurm))


def sweep_status(
    out: Annotated[Path, typer.Argument(help="The sweep folder.")],
) -> None:
    """Each run of a sweep: pending, queued, running, finished, failed or interrupted, with its Slurm job id."""
    from mmlabel.experiments.status import run_states

    states = run_states(out)
    for state in states:
        typer.echo(f"{state['cell']}  seed {state['seed']}  {state['status']}  {state['job_id'] or '-'}")
    counts = {status: sum(s["status"] == status for s in states) for status in dict.fromkeys(s["status"] for s in states)}
    typer.echo(", ".join(f"{count} {status}" for status, count in counts.items()) or "no runs", err=True)


def _launch(launcher: str, jobs: int | None, slurm: list[str] | None) -> dict:
    """How the runs are started: {"jobs": N} for local, plus {"slurm": SlurmOptions} for Slurm."""
    if launcher not in ("local", "slurm"):
        raise RecipeError(f"--launcher {launcher}: expected local or slurm")
    if slurm and launcher != "slurm":
        raise RecipeError("--slurm: only with --launcher slurm")
    if launcher == "local":
        return {"jobs": jobs or 1}
    import importlib.util
    import shutil

    from mmlabel.experiments.slurm import parse_slurm_options

    options = parse_slurm_options(slurm or [])
    if importlib.util.find_spec("submitit") is None:
        raise RecipeError("--launcher slurm: needs submitit: pip install 'mmlabel[slurm]'")
    if shutil.which("sbatch") is None:
        raise RecipeError("--launcher slurm: sbatch is not on the PATH (run it on a Slurm login node)")
    return {"jobs": jobs, "slurm": options}


def _execute(plan, figure: dict, title: str, as_json: bool, launch: dict) -> None:
    """Run the sweep, write the summary and the figure, print where they are (and the runs as JSON with --json);
    exit 130 / 143 if a SIGINT / SIGTERM ended it, else 1 if a run failed."""
    from mmlabel.experiments.results import aggregate, cell_table, run_records
    from mmlabel.experiments.sweep import report, run_sweep
    from mmlabel.training import interrupts
    from mmlabel.training.tracking import check_available

    started = time.perf_counter()
    recipes = plan.recipes()  # every cell's recipe is checked before the first trains: a typo fails at once
    for checked in recipes.values():  # and the trackers' packages
        check_available(checked.train.report_to)
    typer.echo(f"sweep: {len(plan.cells)} cells x {len(plan.seeds)} seeds into {plan.out}", err=True)
    with interrupts.stop_requests():  # outermost: a signal during the report is acted on too, once it is written
        rows = _run(plan, recipes, launch)
        summary, figure_path = report(plan, rows, figure, title, "mmlabel " + shlex.join(sys.argv[1:]))
        stopped_by = interrupts.requested()
    typer.echo(cell_table(aggregate(rows, plan.axes), plan.axes), err=as_json)
    typer.echo(f"results: {plan.out / 'results.csv'}\nsummary: {summary}", err=as_json)
    if figure_path is not None:
        typer.echo(f"figure: {figure_path}", err=as_json)
    if as_json:
        typer.echo(json.dumps(run_records(rows, plan.axes), indent=2))
    typer.echo(f"time: {time.perf_counter() - started:.0f} s", err=True)
    _exit(plan, rows, stopped_by)


def _run(plan, recipes: dict, launch: dict) -> list[dict]:
    """Sequentially in this process, `--jobs` at once in processes of their own, or as Slurm jobs."""
    from rich.console import Console

    from mmlabel.experiments.sweep import run_sweep

    console = Console(stderr=True, soft_wrap=True)
    if "slurm" in launch:
        from mmlabel.experiments.slurm import run_on_slurm

        return run_on_slurm(plan, recipes, launch["slurm"], launch["jobs"], console)
    if launch["jobs"] > 1:
        from mmlabel.experiments.launch import run_parallel

        return run_parallel(plan, launch["jobs"], console, recipes)
    return run_sweep(plan, console, recipes=recipes)


def _exit(plan, rows: list[dict], stopped_by: int | None) -> None:
    """128 + the signal's number when a stop signal ended the sweep, as a shell reports it; 1 if a run failed."""
    import signal

    if stopped_by:
        left = sum(row["status"] in ("pending", "interrupted") for row in rows)
        typer.echo(f"error: {signal.Signals(stopped_by).name}: the sweep stopped with {left} of {len(rows)} runs "
                   "not done; run the same command again to continue", err=True)
        raise typer.Exit(128 + stopped_by)
    failed = [row for row in rows if row["status"] != "finished"]
    if failed:
        typer.echo(f"error: {len(failed)} of {len(rows)} runs failed (see {plan.out / 'results.csv'}); "
                   "run the same command again to retry them", err=True)
        raise typer.Exit(1)


def _seeds(text: str) -> list[int]:
    seeds = _parse_seeds(text)
    if not seeds:
        raise typer.BadParameter("no seed given", param_hint="--seeds")
    return seeds


def _parse_only(texts: list[str]) -> dict[str, list[str]]:
    """`axis=v1,v2` -> {axis: labels}, the labels written as the grid writes them."""
    from mmlabel.experiments.grid import parse_grid_option

    restrict = {}
    for text in texts:
        axis = parse_grid_option(text, option="--only")
        restrict[axis.name] = axis.labels
    return restrict
