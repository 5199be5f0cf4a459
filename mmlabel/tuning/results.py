"""What a search leaves in its folder: the trials table, the optimisation-history figure, the best trial as a recipe
`mmlabel train` takes, and, with `--final-seeds`, that recipe trained on those seeds with test mean ± std.

    OUT/trials.csv                   one row per trial: number, state, dev figure, values, epochs, seconds, run, error
    OUT/optimization-history.png     Optuna's optimisation history (optuna.visualization.matplotlib)
    OUT/best.toml                    the best trial's resolved recipe
    OUT/final/base/seed-N/           with --final-seeds: the best recipe trained on each seed (a sweep of one cell)
    OUT/summary.md                   the search in a page: counts, the best trial, the final test figures
"""
import csv
import statistics
from pathlib import Path

from mmlabel import atomic
from mmlabel.tuning.study import TuneSpec, trial_recipe

FINAL = "final"
HEADLINE = ("precision", "recall", "f1")  # the figures summary.md shows (final/results.csv has all)


def trial_rows(study, space_keys: list[str]) -> list[dict]:
    """One row per trial, in number order."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() \
            if trial.datetime_complete and trial.datetime_start else ""
        rows.append({"number": trial.number, "state": trial.state.name.lower(),
                     "dev": "" if trial.value is None else trial.value,
                     **{key: trial.params.get(key, "") for key in space_keys},
                     "epochs": trial.user_attrs.get("epochs", len(trial.intermediate_values) or ""),
                     "seconds": round(seconds, 1) if seconds != "" else "",
                     "run_dir": trial.user_attrs.get("run_dir", ""),
                     "error": trial.user_attrs.get("error", "interrupted" if trial.user_attrs.get("interrupted")
                                                   else "")})
    return rows


def write_trials(out: Path, rows: list[dict], space_keys: list[str]) -> Path:
    path = Path(out) / "trials.csv"
    fields = ["number", "state", "dev", *space_keys, "epochs", "seconds", "run_dir", "error"]
    with atomic.atomic_path(path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_history(out: Path, study) -> Path | None:
    """Optuna's optimisation-history plot (matplotlib), where a trial has completed."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    from optuna.visualization.matplotlib import plot_optimization_history

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning: the matplotlib backend is marked experimental
        axes = plot_optimization_history(study)
    path = Path(out) / "optimization-history.png"
    axes.figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(axes.figure)
    return path


def write_best(spec: TuneSpec, study) -> tuple[Path, object] | None:
    """The best completed trial's recipe, resolved, as OUT/best.toml; (path, trial), or None before any completed."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    best = study.best_trial
    recipe = trial_recipe(spec, best.params, best.number)
    header = (f"# The best trial of `mmlabel tune` in {spec.out}: trial {best.number}, dev {best.value:.4f}\n"
              f"# {', '.join(f'{key} = {value!r}' for key, value in best.params.items())}\n"
              f"#   mmlabel train {Path(spec.out) / 'best.toml'}\n\n")
    path = Path(spec.out) / "best.toml"
    atomic.write_text(path, header + recipe.to_toml())
    return path, best


def final_sweep(spec: TuneSpec, best_path: Path, seeds: list[int]):
    """The best recipe on each seed, as a sweep of one cell into OUT/final (resumable, any launcher)."""
    from mmlabel.experiments.grid import Cell
    from mmlabel.experiments.sweep import Sweep
    from mmlabel.recipe import read_raw

    return Sweep(read_raw(best_path), str(best_path), [Cell({}, [])], seeds, Path(spec.out) / FINAL, [])


def final_figures(rows: list[dict]) -> dict:
    """{"dev"|"test": {figure: {"mean", "std", "n"}}} over the finished final runs."""
    finished = [row for row in rows if row.get("status") == "finished"]
    figures = {}
    for split in ("dev", "test"):
        keys = sorted({key.split(".", 1)[1] for row in finished for key in row if key.startswith(f"{split}.")})
        figures[split] = {key: _mean_std([float(row[f"{split}.{key}"]) for row in finished
                                          if row.get(f"{split}.{key}", "") != ""]) for key in keys}
    return figures


def _mean_std(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values) if values else float("nan"),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}


def write_summary(spec: TuneSpec, rows: list[dict], best, final: dict | None, command: str) -> Path:
    """OUT/summary.md: the command, the trials by state, the best trial and its values, the final figures."""
    states = {}
    for row in rows:
        states[row["state"]] = states.get(row["state"], 0) + 1
    lines = [f"# Tuning {spec.source}", "", f"`{command}`", "",
             f"Trials: {len(rows)} ({', '.join(f'{n} {state}' for state, n in states.items())}); the test split "
             "was not evaluated while searching.", ""]
    if best is not None:
        lines += [f"Best trial: {best.number}, dev {best.value:.2f}; recipe: `{Path(spec.out) / 'best.toml'}`", ""]
        lines += [f"- `{key}` = {value!r}" for key, value in best.params.items()] + [""]
    if final:
        lines += ["| split | figure | mean ± std | seeds |", "|---|---|---|---|"]
        lines += [f"| {split} | {key} | {v['mean']:.2f} ± {v['std']:.2f} | {v['n']} |"
                  for split in ("dev", "test") for key, v in final[split].items() if key in HEADLINE]
        lines.append("")
    lines += ["Trials: `trials.csv`; history: `optimization-history.png`.", ""]
    path = Path(spec.out) / "summary.md"
    atomic.write_text(path, "\n".join(lines))
    return path
