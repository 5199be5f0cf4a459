"""Experiment tracking (`train.report_to`, mmlabel/training/tracking.py) against the real stores: TensorBoard's event
files read back with tensorboard's own `EventAccumulator`, an MLflow store (a local sqlite URI) read back with
`MlflowClient`; each figure compared with the run's own log.jsonl and metrics.json. A sweep is one MLflow experiment
and one TensorBoard directory with a subdirectory per run; a missing package is one line naming the extra."""
import json
import sys
from pathlib import Path

import pytest

from conftest import REPO, TINY, run_cli

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")

TWO_EPOCHS = ["--set", "train.epochs=2", "--set", "train.max_steps_per_epoch=3", "--set", "train.patience=5"]
BOTH = ["--set", 'train.report_to=["tensorboard", "mlflow"]']
# Commands run in a temporary folder: MLflow keeps artifacts in ./mlruns beside a sqlite store's users.
QUICKSTART = str(REPO / "recipes" / "quickstart.toml")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """One MLflow sqlite store for the module (creating one takes seconds); each test uses experiments of its own."""
    return tmp_path_factory.mktemp("mlflow") / "mlflow.db"


def mlflow_env(store: Path, experiment: str | None = None) -> dict:
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    return {**env, "MLFLOW_EXPERIMENT_NAME": experiment} if experiment else env


def client(store: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{store}")


def events(directory: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(directory), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def scalar_series(accumulator, tag: str) -> dict[int, float]:
    return {event.step: event.value for event in accumulator.Scalars(tag)}


@pytest.fixture(scope="module")
def tracked_run(small_synthetic, store, tmp_path_factory):
    """The tiny quickstart trained for two epochs, reporting to TensorBoard and to an MLflow sqlite store."""
    root = tmp_path_factory.mktemp("tracked")
    out = root / "run"
    result = run_cli("train", QUICKSTART, "--out", str(out), "--set", f"data.root={small_synthetic}",
                     *TWO_EPOCHS, *TINY, *BOTH, env=mlflow_env(store, "tracking-test"), cwd=root)
    assert result.returncode == 0, result.stderr
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return store, out, log, json.loads((out / "metrics.json").read_text())


def test_tensorboard_has_every_epochs_losses_rates_and_dev_figures_and_the_selected_figures(tracked_run):
    _, out, log, metrics = tracked_run
    accumulator = events(out / "tensorboard")
    assert len(log) == 2
    expected = {"train/loss": "train_loss", "train/examples_per_s": "train_examples_per_s", "lr/lr": "lr",
                "lr/lr_start": "lr_start"}
    for tag, key in expected.items():
        assert scalar_series(accumulator, tag) == pytest.approx({r["epoch"]: r[key] for r in log}, rel=1e-6), tag
    for term in ("crf", "text", "align"):
        assert scalar_series(accumulator, f"train/loss_raw/{term}") == pytest.approx(
            {r["epoch"]: r["terms"][term] for r in log}, rel=1e-6)
        assert scalar_series(accumulator, f"train/loss_weighted/{term}") == pytest.approx(
            {r["epoch"]: r["weighted_terms"][term] for r in log}, rel=1e-6)
    assert scalar_series(accumulator, "dev/f1") == pytest.approx({r["epoch"]: r["dev"]["f1"] for r in log}, abs=1e-4)
    assert [event.value for event in accumulator.Scalars("selected/test/f1")] == pytest.approx([metrics["test"]["f1"]])
    assert [event.value for event in accumulator.Scalars("selected/dev/f1")] == pytest.approx([metrics["dev"]["f1"]])
    assert accumulator.Scalars("selected/epoch")[0].value == metrics["best_epoch"]
    assert "curves" in accumulator.Tags()["images"]


def test_tensorboard_holds_the_parameters_on_the_hparams_dashboard(tracked_run):
    from tensorboard.plugins.hparams import plugin_data_pb2

    _, out, _, _ = tracked_run
    content = events(out / "tensorboard").PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["train.lr"].number_value == pytest.approx(1e-3)
    assert start.hparams["fusion_head.name"].string_value == "dtca"
    assert start.hparams["component.fusion_head"].string_value == "mmlabel:dtca"
    assert start.hparams["precision"].string_value == "fp32"
    assert start.hparams["device"].string_value == "cpu"


def test_mlflow_holds_the_params_every_epoch_the_selected_figures_and_the_artifacts(tracked_run):
    store, out, log, metrics = tracked_run
    mlflow = client(store)
    experiment = mlflow.get_experiment_by_name("tracking-test")
    runs = mlflow.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    params = run.data.params
    assert float(params["train.lr"]) == pytest.approx(1e-3) and params["fusion_head.name"] == "dtca"
    assert params["text_encoder.config_overrides.hidden_size"] == "32"
    assert params["seed"] == "1" and params["train.seed"] == "1" and params["precision"] == "fp32"
    assert params["component.alignment_loss"] == "mmlabel:sinkhorn" and params["component.alignment_loss.version"]
    history = {m.step: m.value for m in mlflow.get_metric_history(run.info.run_id, "dev/f1")}
    assert history == pytest.approx({r["epoch"]: r["dev"]["f1"] for r in log}, abs=1e-4)
    weighted = {m.step: m.value for m in mlflow.get_metric_history(run.info.run_id, "train/loss_weighted/align")}
    assert weighted == pytest.approx({r["epoch"]: r["weighted_terms"]["align"] for r in log}, rel=1e-6)
    assert run.data.metrics["selected/test/f1"] == pytest.approx(metrics["test"]["f1"])
    assert run.data.metrics["selected/dev/precision"] == pytest.approx(metrics["dev"]["precision"])
    artifacts = {item.path for item in mlflow.list_artifacts(run.info.run_id)}
    assert artifacts == {"recipe.toml", "metrics.json", "predictions-test.jsonl", "curves.png"}
    assert json.loads((out / "tracking.json").read_text())["mlflow_run_id"] == run.info.run_id


def test_a_sweep_is_one_experiment_with_its_runs_tagged_and_one_tensorboard_folder(small_synthetic, store, tmp_path):
    out = tmp_path / "sweep"
    result = run_cli("sweep", QUICKSTART, "--out", str(out), "--grid", "loss.beta=0,0.6", "--seeds", "1",
                     "--set", f"data.root={small_synthetic}", "--set", "train.epochs=1",
                     "--set", "train.max_steps_per_epoch=2", *TINY, *BOTH, env=mlflow_env(store, "not-this-one"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    mlflow = client(store)
    assert mlflow.get_experiment_by_name("not-this-one") is None
    experiment = mlflow.get_experiment_by_name(str(out))
    runs = mlflow.search_runs([experiment.experiment_id])
    tags = sorted((run.data.tags["mmlabel.cell"], run.data.tags["mmlabel.seed"], run.info.run_name) for run in runs)
    assert tags == [("beta=0", "1", "beta=0/seed-1"), ("beta=0.6", "1", "beta=0.6/seed-1")]
    assert {run.data.params["loss.beta"] for run in runs} == {"0.0", "0.6"}
    for cell in ("beta=0", "beta=0.6"):
        assert events(out / "tensorboard" / cell / "seed-1").Scalars("selected/test/f1")


def test_a_missing_tracker_package_is_one_line_naming_the_extra(small_synthetic, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what `import mlflow` finds where it is not installed
    out = tmp_path / "run"
    result = run_cli("train", "recipes/quickstart.toml", "--out", str(out), "--set", f"data.root={small_synthetic}",
                     "--set", 'train.report_to=["mlflow"]', *TINY)
    assert result.returncode == 2
    assert result.stderr.strip() == ('error: train.report_to = ["mlflow"] needs the mlflow package: '
                                     'pip install "mmlabel[track]"')
    assert not out.exists()  # nothing trained, the run directory not claimed


def test_an_unknown_tracker_is_a_recipe_error_naming_the_key(tmp_path):
    result = run_cli("train", "recipes/quickstart.toml", "--out", str(tmp_path / "run"),
                     "--set", 'train.report_to=["wandb"]')
    assert result.returncode == 2 and "train.report_to.0" in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_resumed_run_continues_its_mlflow_run(small_synthetic, store, tmp_path, stop_signals_guarded):
    """SIGTERM once the first epoch is logged: the MLflow run is KILLED; `--resume` sets the same run running again
    and finishes it, every epoch logged once."""
    import signal

    from conftest import signal_when

    out = tmp_path / "run"
    args = ["train", QUICKSTART, "--out", str(out), "--set", f"data.root={small_synthetic}",
            "--set", "train.epochs=3", "--set", "train.max_steps_per_epoch=3", "--set", "train.patience=5",
            *TINY, "--set", 'train.report_to=["mlflow"]']
    sender = signal_when(lambda: (out / "log.jsonl").exists(), signal.SIGTERM)
    stopped = run_cli(*args, env=mlflow_env(store, "resumed"), cwd=tmp_path)
    sender.join()
    assert stopped.returncode == 143, stopped.stderr
    run_id = json.loads((out / "tracking.json").read_text())["mlflow_run_id"]
    assert client(store).get_run(run_id).info.status == "KILLED"
    resumed = run_cli(*args, "--resume", env=mlflow_env(store, "resumed"), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    mlflow = client(store)
    assert len(mlflow.search_runs([mlflow.get_experiment_by_name("resumed").experiment_id])) == 1
    assert mlflow.get_run(run_id).info.status == "FINISHED"
    assert sorted(m.step for m in mlflow.get_metric_history(run_id, "dev/f1")) == [1, 2, 3]
