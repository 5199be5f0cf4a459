"""The search itself: an Optuna study over a space (`mmlabel.tuning.space`), each trial a training run of the base
recipe with the trial's values, scored by the dev figure of its dev-selected epoch. The test split is never evaluated
(`Trainer(evaluate_test=False)`); each epoch's dev figure goes to the pruner, and a trial it prunes stops there
(recorded as PRUNED, its run directory kept).

    OUT/tune.json               what every worker needs: the base recipe, the space, the number of trials, the storage
    OUT/study.journal           the study (Optuna's JournalStorage, one file), unless --storage names another
    OUT/trials/trial-NNNN/      each trial's run directory

The same command resumes a study: trials already COMPLETE, PRUNED or FAILED count towards `--trials`; a trial a stop
signal (or a crash) ended is marked FAIL with `interrupted` and tried again with the same values. Several workers
(`--jobs`, Slurm jobs) share the storage; each runs trials until the study holds enough.
"""
import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console

from mmlabel import atomic
from mmlabel.errors import MMLabelError, RecipeError, RunInterrupted
from mmlabel.training.callbacks import Callback
from mmlabel.tuning.space import Space

SPEC_FILE = "tune.json"
INTERRUPTED = "interrupted"


class TrialFailed(Exception):
    """A trial whose training failed (diverged, out of memory, ...): recorded as FAIL, the search goes on."""


@dataclass
class TuneSpec:
    """A search, as written to OUT/tune.json for the workers."""

    base: dict  # the base recipe, parsed TOML with --set applied
    source: str  # the recipe's path, for messages
    space: dict  # the Space, as data
    space_path: str
    trials: int
    out: str
    storage: str  # a URL (sqlite:///...) or the path of a journal file
    study_name: str

    def write(self) -> Path:
        path = Path(self.out) / SPEC_FILE
        atomic.write_json(path, asdict(self))
        return path

    @classmethod
    def read(cls, path: Path) -> "TuneSpec":
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))

    @property
    def search_space(self) -> Space:
        return Space(**self.space)


def open_study(spec: TuneSpec, worker: int = 0):
    """The study in its storage, created on first use (maximising the dev figure), TPE seeded for this worker."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # mmlabel prints a line per trial itself
    space = spec.search_space
    return optuna.create_study(storage=storage(spec.storage), study_name=spec.study_name, direction="maximize",
                               sampler=space.make_sampler(worker), pruner=space.make_pruner(), load_if_exists=True)


def storage(where: str):
    """A database URL as it is, or a journal file (Optuna's JournalStorage: one file that processes on one machine,
    or on several sharing it, append to)."""
    if "://" in where:
        return where
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    Path(where).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(where)))


def counted(study) -> int:
    """Trials that count towards `--trials`: finished ones, and those running now (another worker's)."""
    from optuna.trial import TrialState

    return sum(1 for trial in study.get_trials(deepcopy=False)
               if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
               or (trial.state == TrialState.FAIL and not trial.user_attrs.get(INTERRUPTED)))


def retry_interrupted(study, stale_running: bool) -> int:
    """Enqueue again, with the same values, every trial a stop signal ended and not tried again yet; with
    `stale_running` (no worker can be running: the local launcher, before it starts any), trials left RUNNING by a
    killed process are marked FAIL and interrupted first. Returns how many were enqueued."""
    from optuna.trial import TrialState

    if stale_running:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    retried = {trial.user_attrs.get("retry_of") for trial in trials}
    again = [trial for trial in trials if trial.state == TrialState.FAIL and trial.user_attrs.get(INTERRUPTED)
             and trial.number not in retried]
    for trial in again:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
    return len(again)


def run_trials(spec: TuneSpec, worker: int = 0, console: Console | None = None) -> int:
    """Run trials until the study holds `spec.trials` (this worker's loop); 0 when done, 3 when a stop signal
    ended it."""
    import optuna

    from mmlabel.training import interrupts

    console = console or Console(stderr=True, soft_wrap=True)
    study = open_study(spec, worker)
    objective = Objective(spec, console)
    with interrupts.stop_requests():
        while not interrupts.requested() and counted(study) < spec.trials:
            try:
                study.optimize(objective, n_trials=1, catch=(TrialFailed,))
            except (RunInterrupted, KeyboardInterrupt):
                return 3
    return 3 if interrupts.requested() else 0


class Objective:
    """One trial: the base recipe with the trial's values, trained without looking at test; its value is the dev
    figure (the metric's main key) of its dev-selected epoch."""

    def __init__(self, spec: TuneSpec, console: Console):
        self.spec, self.console, self.space = spec, console, spec.search_space

    def __call__(self, trial) -> float:
        import optuna

        from mmlabel.environment import recipe_folder
        from mmlabel.training.runner import train_once
        from mmlabel.training.tracking import TrackingPlace

        values = self.space.suggest(trial)
        recipe = trial_recipe(self.spec, values, trial.number)
        out = Path(self.spec.out) / "trials" / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(out))
        pruning = Pruning(trial)
        place = TrackingPlace.in_group(self.spec.out, out.name, {"mmlabel.trial": trial.number,
                                                                 **{f"mmlabel.param.{k}": v for k, v in values.items()}})
        self.console.print(f"trial {trial.number}: {_shown(values)}")
        try:
            metrics = train_once(recipe, out, console=self.console, tracking=place, callbacks=[pruning],
                                 evaluate_test=False, recipe_folder=recipe_folder(self.spec.source))
        except (RunInterrupted, KeyboardInterrupt):
            trial.set_user_attr(INTERRUPTED, True)
            raise
        except Exception as error:  # noqa: BLE001 - a diverging learning rate must not end the search
            message = " ".join(f"{type(error).__name__}: {error}".split())
            trial.set_user_attr("error", message)
            self.console.print(f"[red]trial {trial.number}: failed: {message}[/red]")
            raise TrialFailed(message) from error
        main_key = pruning.main_key
        trial.set_user_attr("epochs", metrics["epochs"])
        if pruning.pruned_at is not None:
            self.console.print(f"trial {trial.number}: pruned after epoch {pruning.pruned_at}")
            raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_at}")
        self.console.print(f"trial {trial.number}: dev {main_key} {metrics['dev'][main_key]:.2f}")
        return metrics["dev"][main_key]


class Pruning(Callback):
    """Reports each epoch's dev figure to the trial; where the pruner says so, stops the run after that epoch (the
    built-in early stop, so that the run ends as a run does: its best epoch saved) and marks the epoch "pruned"."""

    def __init__(self, trial):
        self.trial = trial
        self.pruned_at: int | None = None
        self.main_key = ""

    def on_evaluate(self, trainer, epoch, figures, predictions, record) -> None:
        self.main_key = trainer.metric.main_key
        self.trial.report(float(figures[self.main_key]), epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            record["pruned"] = True
            trainer.state.stopped_early = True


def trial_recipe(spec: TuneSpec, values: dict, number: int | str):
    """The base recipe with the trial's values set as `--set` would set them (a component swapped by name keeps
    only the options it defines)."""
    from mmlabel.recipe import recipe_from_dict, set_keys

    raw = copy.deepcopy(spec.base)
    where = f"{spec.source} [trial {number}]"
    set_keys(raw, list(values.items()), where=where)
    try:
        return recipe_from_dict(raw, source=where)
    except RecipeError:
        raise
    except MMLabelError as error:
        raise RecipeError(f"{where}: {error}") from None


def _shown(values: dict) -> str:
    return ", ".join(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
                     for key, value in values.items())


if __name__ == "__main__":  # a worker of --jobs: python -m mmlabel.tuning.study OUT/tune.json WORKER
    import sys

    try:
        sys.exit(run_trials(TuneSpec.read(Path(sys.argv[1])), int(sys.argv[2])))
    except MMLabelError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
