"""`mmlabel tune`: hyperparameter search with Optuna over a TOML search space (`mmlabel.tuning`): TPE with a fixed
seed, each epoch's dev figure reported to a pruner, the test split never evaluated; the study stored and resumed by
the same command; workers in parallel processes or Slurm jobs; the best trial as a recipe, and, with
`--final-seeds`, that recipe trained on those seeds with the test figures as mean ± std, once."""
import copy
import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mmlabel.commands.options import JsonOption, SetOption
from mmlabel.commands.sweep import SlurmOption
from mmlabel.errors import RecipeError

TUNE_EXTRA = 'pip install "mmlabel[tune]"'
WorkersLauncherOption = Annotated[str, typer.Option(
    "--launcher", help="local: workers on this machine; slurm: each worker a Slurm job, submitted with submitit.")]
WorkersOption = Annotated[Optional[int], typer.Option(
    "--jobs", min=1, help="Workers running trials at once, sharing the study: local, in processes of their own, one "
                          "GPU each where there are GPUs (default 1, in this process); slurm, that many jobs (default 1).")]


def tune(
    recipe: Annotated[Path, typer.Argument(help="The base recipe: a TOML file or a built-in name (quickstart).")],
    space: Annotated[str, typer.Option(help="The search space: a TOML file or a built-in name of recipes/spaces/ "
                                            "(quickstart).")],
    trials: Annotated[int, typer.Option(min=1, help="Trials the study should hold; run again with more to extend it.")],
    out: Annotated[Optional[Path], typer.Option(help="The search folder (default: runs/tune-<recipe>): trials/, "
                                                     "trials.csv, best.toml, the figure. Run again to resume.")] = None,
    set_: SetOption = None,
    storage: Annotated[Optional[str], typer.Option(help="Where the study is kept: a journal file (default: "
                                                        "OUT/study.journal) or a database URL (sqlite:///...).")] = None,
    study_name: Annotated[Optional[str], typer.Option(help="The study's name in the storage (default: OUT's name).")] = None,
    launcher: WorkersLauncherOption = "local",
    jobs: WorkersOption = None,
    slurm: SlurmOption = None,
    final_seeds: Annotated[Optional[str], typer.Option(help="Train the best recipe on these seeds, e.g. 1,2,3, and "
                                                            "report its test figures as mean ± std.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Search hyperparameters: each trial trains the recipe with values from the space; trials are scored and
    pruned on dev, never on test. Writes trials.csv, optimization-history.png and best.toml (a recipe for
    `mmlabel train`); --jobs K runs K workers at once (processes, or Slurm jobs with --launcher slurm)."""
    from mmlabel.commands.sweep import _launch
    from mmlabel.commands.train import _parse_seeds
    from mmlabel.training import interrupts

    _need_optuna()
    spec = _spec(recipe, space, trials, out, set_ or [], storage, study_name)
    seeds = _parse_seeds(final_seeds) if final_seeds else []
    launch = _launch(launcher, jobs, slurm)
    spec_path = spec.write()
    typer.echo(f"tune: {spec.trials} trials of {recipe} over {spec.space_path} into {spec.out} "
               f"(study {spec.study_name!r} in {spec.storage})", err=True)
    with interrupts.stop_requests():  # outermost: a signal during the reports is acted on once they are written
        _search(spec, spec_path, launch)
        stopped_by = interrupts.requested()
        outcome = _report(spec, launch, seeds if not stopped_by else [])
        stopped_by = stopped_by or interrupts.requested()
    _print(spec, outcome, as_json)
    _exit(spec, outcome, stopped_by)


def _need_optuna() -> None:
    import importlib.util

    try:
        found = importlib.util.find_spec("optuna") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise RecipeError(f"mmlabel tune needs the optuna package: {TUNE_EXTRA}")


def _spec(recipe: Path, space: str, trials: int, out: Path | None, overrides: list[str], storage: str | None,
          study_name: str | None):
    """The search as the workers read it, after checking the recipe, the trackers and every end of the space."""
    from mmlabel.recipe import apply_override, read_raw, recipe_from_dict
    from mmlabel.recipe_files import find_file
    from mmlabel.training.tracking import check_available
    from mmlabel.tuning.space import check_against, find_space, load_space
    from mmlabel.tuning.study import SPEC_FILE, TuneSpec

    base = read_raw(recipe)
    for override in overrides:
        apply_override(base, override)
    checked = recipe_from_dict(copy.deepcopy(base), source=str(recipe))
    check_available(checked.train.report_to)
    space_path = find_space(space)
    loaded = load_space(space_path)
    check_against(loaded, base, str(recipe), str(space_path))
    out = out or Path("runs") / f"tune-{find_file(recipe).stem}"
    spec = TuneSpec(base, str(recipe), loaded.model_dump(mode="json"), str(space_path), trials, str(out),
                    storage or str(out / "study.journal"), study_name or out.resolve().name)
    if (out / SPEC_FILE).exists():
        before = TuneSpec.read(out / SPEC_FILE)
        if (before.base, before.space) != (spec.base, spec.space):
            raise RecipeError(f"{out}: holds a search of a different recipe or space (the --set options, the recipe "
                              "or the space changed?): choose another --out")
    return spec


def _search(spec, spec_path: Path, launch: dict) -> None:
    """Trials until the study holds `--trials`: in this process, in `--jobs` processes, or in Slurm jobs."""
    from rich.console import Console

    from mmlabel.tuning.study import counted, open_study, retry_interrupted, run_trials

    console = Console(stderr=True, soft_wrap=True)
    study = open_study(spec)
    again = retry_interrupted(study, stale_running="slurm" not in launch)
    if again:
        console.print(f"{again} interrupted trial{'s' if again > 1 else ''} enqueued again with the same values")
    if counted(study) >= spec.trials:
        console.print(f"the study holds {spec.trials} trials already: nothing to run")
        return
    progress = _progress(spec, console)
    if "slurm" in launch:
        from mmlabel.tuning.launch import run_slurm_workers

        run_slurm_workers(spec_path, launch["jobs"] or 1, launch["slurm"], console, progress)
    elif launch["jobs"] > 1:
        from mmlabel.tuning.launch import run_local_workers

        run_local_workers(spec_path, launch["jobs"], console, progress)
    else:
        run_trials(spec, 0, console)


def _progress(spec, console):
    """A line whenever a worker's trial ends (read from the storage while waiting)."""
    from mmlabel.tuning.study import open_study

    seen: set[int] = set()

    def show() -> None:
        for trial in open_study(spec).get_trials(deepcopy=False):
            if trial.number not in seen and trial.state.is_finished():
                seen.add(trial.number)
                value = f", dev {trial.value:.2f}" if trial.value is not None else ""
                console.print(f"trial {trial.number}: {trial.state.name.lower()}{value}")
    return show


def _report(spec, launch: dict, seeds: list[int]) -> dict:
    """trials.csv, the history figure, best.toml, summary.md; the final runs where asked for and the search is done."""
    from mmlabel.tuning import results
    from mmlabel.tuning.study import counted, open_study

    study = open_study(spec)
    keys = list(spec.search_space.params)
    rows = results.trial_rows(study, keys)
    outcome = {"rows": rows, "trials_csv": results.write_trials(Path(spec.out), rows, keys),
               "history": results.write_history(Path(spec.out), study), "best": results.write_best(spec, study),
               "done": counted(study) >= spec.trials, "final": None, "final_rows": []}
    if seeds and outcome["best"] is not None and outcome["done"]:
        outcome["final_rows"], outcome["final"] = _final(spec, outcome["best"][0], seeds, launch)
    best = outcome["best"][1] if outcome["best"] else None
    outcome["summary"] = results.write_summary(spec, rows, best, outcome["final"],
                                               "mmlabel " + shlex.join(sys.argv[1:]))
    return outcome


def _final(spec, best_path: Path, seeds: list[int], launch: dict) -> tuple[list[dict], dict]:
    """The best recipe trained on each seed (a sweep of one cell: finished runs are read back, not retrained)."""
    from mmlabel.commands.sweep import _run
    from mmlabel.experiments.figures import default_figure
    from mmlabel.experiments.sweep import report
    from mmlabel.tuning.results import final_figures, final_sweep

    plan = final_sweep(spec, best_path, seeds)
    typer.echo(f"final: the best recipe on seeds {','.join(map(str, seeds))} into {plan.out}", err=True)
    rows = _run(plan, plan.recipes(), launch)
    report(plan, rows, default_figure(plan.axes), f"The best recipe of {spec.out}",
           "mmlabel " + shlex.join(sys.argv[1:]))
    return rows, final_figures(rows)


def _print(spec, outcome: dict, as_json: bool) -> None:
    from mmlabel.tuning.results import HEADLINE

    rows, best, final = outcome["rows"], outcome["best"], outcome["final"]
    states = {}
    for row in rows:
        states[row["state"]] = states.get(row["state"], 0) + 1
    lines = [f"trials: {len(rows)} ({', '.join(f'{n} {state}' for state, n in states.items())}): "
             f"{outcome['trials_csv']}"]
    if best is not None:
        path, trial = best
        lines.append(f"best: trial {trial.number}, dev {trial.value:.2f}: {path}")
    if outcome["history"] is not None:
        lines.append(f"history: {outcome['history']}")
    if final:
        lines += [f"final {split} {key}: {v['mean']:.2f} ± {v['std']:.2f} over {v['n']} seeds"
                  for split in ("test", "dev") for key, v in final[split].items() if key in HEADLINE]
    lines.append(f"summary: {outcome['summary']}")
    typer.echo("\n".join(lines), err=as_json)
    if as_json:
        typer.echo(json.dumps({
            "out": spec.out, "trials": states, "done": outcome["done"],
            "best": None if best is None else {"number": best[1].number, "dev": best[1].value,
                                               "params": best[1].params, "recipe": str(best[0])},
            "final": final}, indent=2))


def _exit(spec, outcome: dict, stopped_by: int | None) -> None:
    import signal

    if stopped_by:
        typer.echo(f"error: {signal.Signals(stopped_by).name}: the search stopped; run the same command again to "
                   "continue it", err=True)
        raise typer.Exit(128 + stopped_by)
    if not outcome["done"]:
        typer.echo(f"error: the study holds fewer than {spec.trials} finished trials (see the workers' logs in "
                   f"{Path(spec.out) / 'logs'}); run the same command again to continue it", err=True)
        raise typer.Exit(1)
    failed = [row for row in outcome["final_rows"] if row.get("status") != "finished"]
    if failed:
        typer.echo(f"error: {len(failed)} of the final runs failed (see {Path(spec.out) / 'final' / 'results.csv'})",
                   err=True)
        raise typer.Exit(1)
