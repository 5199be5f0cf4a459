"""Experiment tracking, `train.report_to = ["tensorboard", "mlflow"]`: a callback per tracker, so that runs can be
watched and compared in TensorBoard and the MLflow UI as transformers' `report_to` and Lightning's loggers allow.

Each tracker records the same things under the same names:

    parameters      the resolved recipe flattened (`train.lr`, `fusion_head.name`, ...), each component's qualified
                    name and version (`component.fusion_head` = "mmlabel:dtca"), seed, precision, device
    every epoch     train/loss, train/loss_raw/<term>, train/loss_weighted/<term>, lr/<group>, dev/<figure>,
                    train/examples_per_s (step = the epoch)
    at the end      selected/dev/<figure>, selected/test/<figure>, selected/epoch: the dev-selected epoch's figures
    artifacts       (MLflow) recipe.toml, metrics.json, predictions-test.jsonl, curves.png

Where: a run trained alone logs to `<run>/tensorboard` and to the MLflow experiment named by MLFLOW_EXPERIMENT_NAME
(default "mmlabel"); the runs of a sweep, `reproduce`, `train --seeds` or `tune` share one MLflow experiment named
after their folder and one TensorBoard directory, `<folder>/tensorboard/<run>`, and are tagged with their cell, seed
or trial (`TrackingPlace`). MLflow stores where MLFLOW_TRACKING_URI says (its own default: sqlite:///mlflow.db in the
current directory). A resumed run continues its MLflow run (its id is kept in `<run>/tracking.json`).

Trackers log the epoch in `on_evaluate`, after the built-ins have decided it (best, early stop), so that an epoch
is logged even when a stop signal ends the run at its checkpoint. Only rank 0 reports.
"""
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from mmlabel.errors import RecipeError
from mmlabel.training.callbacks import Callback

EXTRA = 'pip install "mmlabel[track]"'
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}  # tracker -> the module it needs
TRACKING_FILE = "tracking.json"
CURVES = "curves.png"


@dataclass
class TrackingPlace:
    """Where one run reports: its TensorBoard log directory, its MLflow experiment and run name, and its tags."""

    tensorboard_dir: Path
    experiment: str
    run_name: str
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def alone(cls, out: Path) -> "TrackingPlace":
        """A run trained by itself: `<run>/tensorboard`, the experiment MLFLOW_EXPERIMENT_NAME (or "mmlabel")."""
        out = Path(out)
        return cls(out / "tensorboard", os.environ.get("MLFLOW_EXPERIMENT_NAME") or "mmlabel", out.name)

    @classmethod
    def in_group(cls, folder: Path, run: str, tags: dict) -> "TrackingPlace":
        """One of the runs of a sweep (or of `--seeds`, or a tuning study) in `folder`: the group's experiment and a
        subdirectory `run` of its TensorBoard directory, so that `tensorboard --logdir FOLDER/tensorboard` and the
        MLflow UI compare them side by side."""
        folder = Path(folder)
        return cls(folder / "tensorboard" / run, os.path.normpath(str(folder)), run,
                   {key: str(value) for key, value in tags.items()})


def check_available(report_to: list[str] | None) -> None:
    """One line naming the extra to install when a tracker's package is missing; called before anything trains."""
    import importlib.util

    for tracker in report_to or []:
        module = PACKAGES[tracker]
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules, or half-installed
            found = False
        if not found:
            raise RecipeError(f"train.report_to = [\"{tracker}\"] needs the {module} package: {EXTRA}")


def tracking_callbacks(report_to: list[str] | None, place: TrackingPlace) -> list[Callback]:
    """The callbacks of the trackers the recipe names, in its order."""
    check_available(report_to)
    makers = {"tensorboard": TensorBoardTracker, "mlflow": MLflowTracker}
    return [makers[tracker](place) for tracker in dict.fromkeys(report_to or [])]


class TensorBoardTracker(Callback):
    """Event files in `place.tensorboard_dir` (torch's SummaryWriter): scalars per epoch, the parameters on the
    HParams dashboard and as text, the selected epoch's figures and the curves figure at the end."""

    def __init__(self, place: TrackingPlace):
        self.place = place
        self.writer = None

    def on_fit_start(self, trainer) -> None:
        if not trainer.processes.is_main:
            return
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        self.writer = SummaryWriter(log_dir=str(self.place.tensorboard_dir))
        params = run_params(trainer)
        main_key = trainer.metric.main_key
        summaries = hparams(params, {f"selected/dev/{main_key}": 0.0, f"selected/test/{main_key}": 0.0})
        for summary in summaries:  # experiment, session start, session end: what add_hparams writes, in this run
            self.writer._get_file_writer().add_summary(summary)
        self.writer.add_text("recipe", "```toml\n" + trainer.parts.recipe.to_toml() + "\n```")
        if self.place.tags:
            self.writer.add_text("tags", json.dumps(self.place.tags))

    def on_evaluate(self, trainer, epoch, figures, predictions, record) -> None:
        if self.writer is None:
            return
        for name, value in epoch_scalars(record).items():
            self.writer.add_scalar(name, value, epoch)
        self.writer.flush()

    def on_fit_end(self, trainer, metrics) -> None:
        if self.writer is None:
            return
        for name, value in selected_scalars(metrics).items():
            self.writer.add_scalar(name, value, trainer.state.epoch)
        figure = curves_figure(trainer.run.path, trainer.metric.main_key)
        if figure is not None:
            self.writer.add_figure("curves", figure, trainer.state.epoch)
        self.on_teardown(trainer)

    def on_teardown(self, trainer) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class MLflowTracker(Callback):
    """A run in an MLflow experiment, through `MlflowClient` (no global active run: several runs may train in one
    process, one after the other): parameters and tags at the start, metrics per epoch, the selected figures and the
    artifacts at the end; FINISHED, KILLED (stopped by a signal) or FAILED."""

    def __init__(self, place: TrackingPlace):
        self.place = place
        self.client = None
        self.run_id: str | None = None

    def on_fit_start(self, trainer) -> None:
        if not trainer.processes.is_main:
            return
        from mlflow import MlflowClient

        self.client = MlflowClient()
        self.run_id = self._continued(trainer.run.path)
        if self.run_id is None:
            experiment_id = _experiment_id(self.client, self.place.experiment)
            tags = {"mmlabel.run_dir": str(Path(trainer.run.path).resolve()), **self.place.tags}
            self.run_id = self.client.create_run(experiment_id, run_name=self.place.run_name, tags=tags).info.run_id
            self._log_params(run_params(trainer))
            from mmlabel import atomic

            atomic.write_json(Path(trainer.run.path) / TRACKING_FILE, {"mlflow_run_id": self.run_id,
                                                                       "experiment": self.place.experiment})

    def _continued(self, run_path: Path) -> str | None:
        """The MLflow run of an interrupted run being resumed, set running again; None for a new one."""
        path = Path(run_path) / TRACKING_FILE
        run_id = json.loads(path.read_text(encoding="utf-8")).get("mlflow_run_id") if path.exists() else None
        if run_id is None:
            return None
        try:
            self.client.update_run(run_id, status="RUNNING")
        except Exception:  # noqa: BLE001 - deleted from the store, or another store: start a new MLflow run
            return None
        return run_id

    def _log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(key, str(value)[:5000]) for key, value in params.items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(self.run_id, params=items[start:start + 100])

    def _log_metrics(self, values: dict, step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, step) for key, value in values.items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def on_evaluate(self, trainer, epoch, figures, predictions, record) -> None:
        if self.run_id is None:
            return
        self._log_metrics(epoch_scalars(record), epoch)
        if record.get("pruned"):
            self.client.set_tag(self.run_id, "mmlabel.pruned", "true")

    def on_fit_end(self, trainer, metrics) -> None:
        if self.run_id is None:
            return
        self._log_metrics(selected_scalars(metrics), trainer.state.epoch)
        run_path = Path(trainer.run.path)
        figure = curves_figure(run_path, trainer.metric.main_key)
        if figure is not None:
            figure.savefig(run_path / CURVES, dpi=100)
        for name in ("recipe.toml", "metrics.json", "predictions-test.jsonl", CURVES):
            if (run_path / name).exists():
                self.client.log_artifact(self.run_id, str(run_path / name))
        self.client.set_terminated(self.run_id, "FINISHED")
        self.run_id = None

    def on_teardown(self, trainer) -> None:
        """A run that ends without finishing: KILLED when a stop signal ended it (it can be resumed), else FAILED."""
        if self.run_id is None:
            return
        from mmlabel.training import interrupts

        self.client.set_terminated(self.run_id, "KILLED" if interrupts.requested() else "FAILED")
        self.run_id = None


def _experiment_id(client, name: str) -> str:
    """The experiment's id, created if need be; two processes of one sweep creating it at once both get it."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # noqa: BLE001 - created by another process meanwhile (RESOURCE_ALREADY_EXISTS)
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


# -- what is reported ------------------------------------------------------------------------------------------
def run_params(trainer) -> dict:
    """The run's parameters: its recipe as computed (precision resolved) flattened to dotted keys, each component's
    qualified name and version, seed, precision, device and the versions of mmlabel and torch."""
    import torch

    from mmlabel import __version__

    from mmlabel.export import component_params

    recipe = trainer.parts.recipe
    params = flatten(recipe.model_dump(mode="json", exclude_none=True))
    params.update(component_params(recipe))
    params.update(seed=recipe.train.seed, precision=recipe.train.precision, device=str(trainer.device),
                  processes=trainer.processes.world_size, **{"version.mmlabel": __version__,
                                                             "version.torch": torch.__version__})
    return params


def flatten(values: dict, prefix: str = "") -> dict:
    """{"train": {"lr": 0.1}} -> {"train.lr": 0.1}; lists become their JSON text (trackers take scalars)."""
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, list):
            flat[name] = json.dumps(value)
        else:
            flat[name] = value
    return flat


def epoch_scalars(record: dict) -> dict[str, float]:
    """An epoch's log.jsonl record as tracker metrics: the loss and every term raw and weighted, learning rates, dev
    figures and speed."""
    scalars = {"train/loss": record["train_loss"], "train/examples_per_s": record["train_examples_per_s"],
               "train/seconds": record["seconds"], "train/skipped_batches": record["skipped_batches"]}
    scalars.update({f"train/loss_raw/{key}": value for key, value in record["terms"].items()})
    scalars.update({f"train/loss_weighted/{key}": value for key, value in record["weighted_terms"].items()})
    scalars.update({f"lr/{key}": value for key, value in record.items() if key.endswith("lr") or "lr_" in key})
    scalars.update({f"dev/{key}": value for key, value in record["dev"].items()})
    return {key: float(value) for key, value in scalars.items() if _scalar(value)}


def selected_scalars(metrics: dict) -> dict[str, float]:
    """The dev-selected epoch's figures: selected/dev/*, selected/test/* (where the test split was evaluated)."""
    scalars = {"selected/epoch": float(metrics["best_epoch"])}
    for split in ("dev", "test"):
        scalars.update({f"selected/{split}/{key}": float(value) for key, value in (metrics.get(split) or {}).items()
                        if _scalar(value)})
    return scalars


def curves_figure(run_path: Path, main_key: str):
    """The training loss and the dev score per epoch, from the run's log.jsonl (a matplotlib figure), or None."""
    log = Path(run_path) / "log.jsonl"
    if not log.exists():
        return None
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3))
    loss, dev = figure.subplots(1, 2)
    epochs = [record["epoch"] for record in records]
    loss.plot(epochs, [record["train_loss"] for record in records], marker="o")
    loss.set(xlabel="epoch", ylabel="training loss")
    dev.plot(epochs, [record["dev"].get(main_key, float("nan")) for record in records], marker="o")
    dev.set(xlabel="epoch", ylabel=f"dev {main_key}")
    figure.tight_layout()
    return figure


def _scalar(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
