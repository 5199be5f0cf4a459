"""Runs survive faults, in-process with a fake alignment loss that injects them: a NaN loss stops the run naming the
step, the batch's examples and the last good checkpoint (or the batch is skipped and counted); SIGINT mid-epoch
saves a checkpoint from which the run resumes to exactly the uninterrupted run's weights and metrics."""
import json
import re
import signal

import pytest

from conftest import REPO
from faults import FAULTS, FaultPlugin
from mmlabel.errors import DivergedError, RunInterrupted
from mmlabel.plugins import get_plugin_manager
from mmlabel.registry import build
from mmlabel.recipe import load_recipe
from mmlabel.training.runner import train_once

BATCHES = 6  # per epoch: 48 training sentences in batches of 4, cut to 6 steps


@pytest.fixture
def faults():
    pm = get_plugin_manager()
    pm.register(FaultPlugin(), name="fault-plugin")
    FAULTS.update(nan_at=set(), signal_at=None, signal=None)
    try:
        yield FAULTS
    finally:
        pm.unregister(name="fault-plugin")
        FAULTS.update(nan_at=set(), signal_at=None, signal=None)


def recipe(synthetic, *overrides):
    return load_recipe(REPO / "recipes" / "quickstart.toml", [
        f"data.root={synthetic}", "alignment_loss.name=fault", "train.epochs=2", "train.batch_size=4",
        f"train.max_steps_per_epoch={BATCHES}", *overrides])


def weights(out):
    from safetensors.torch import load_file

    return load_file(str(out / "model.safetensors"))


def log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_a_nan_loss_stops_naming_step_examples_and_last_checkpoint(synthetic, faults, tmp_path):
    faults["nan_at"] = {BATCHES + 3}  # epoch 2, batch 3
    with pytest.raises(DivergedError) as raised:
        train_once(recipe(synthetic), tmp_path / "run")
    message = str(raised.value)
    assert "the loss is nan at step 9 (epoch 2, batch 3 of 6)" in message
    assert f"the last good checkpoint is {tmp_path / 'run' / 'checkpoint.pt'}, saved after epoch 1 (step 6)" in message
    assert 'train.on_nonfinite = "skip"' in message and "\n" not in message
    ids = re.search(r"on examples (.*?);", message).group(1).split(", ")
    train_ids = {example.id for example in build("dataset_reader", "jml").read(synthetic / "train.txt")}
    assert len(ids) == 4 and set(ids) <= train_ids
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "diverged"


def test_a_nan_loss_on_the_command_line_is_one_line_and_exit_2(synthetic, faults, tmp_path, capsys):
    from mmlabel.cli import main

    faults["nan_at"] = {2}
    with pytest.raises(SystemExit) as exited:
        main(["train", "recipes/quickstart.toml", "--out", str(tmp_path / "run"), "--set", f"data.root={synthetic}",
              "--set", "alignment_loss.name=fault", "--set", "train.max_steps_per_epoch=3"])
    assert exited.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: the loss is nan at step 2 (epoch 1, batch 2 of 3)")
    assert "there is no checkpoint yet" in error


def test_skip_option_skips_nonfinite_batches_and_counts_them(synthetic, faults, tmp_path):
    import torch

    faults["nan_at"] = {2, 3}
    metrics = train_once(recipe(synthetic, 'train.on_nonfinite="skip"'), tmp_path / "run")
    assert [record["skipped_batches"] for record in log(tmp_path / "run")] == [2, 0]
    assert metrics["skipped_batches"] == 2 and metrics["epochs"] == 2
    assert all(torch.isfinite(tensor).all() for tensor in weights(tmp_path / "run").values())


def test_ctrl_c_mid_epoch_checkpoints_and_resume_equals_the_uninterrupted_run(synthetic, faults, tmp_path):
    """SIGINT at a chosen batch (SIGTERM, sent from outside, is in test_determinism)."""
    import torch

    name, number = "SIGINT", signal.SIGINT
    handler = signal.getsignal(signal.SIGINT)  # Python's default_int_handler, or SIG_IGN in a background job
    uninterrupted = train_once(recipe(synthetic), tmp_path / "whole")
    faults.update(signal_at=BATCHES + 2, signal=number)  # during epoch 2, batch 2
    with pytest.raises(RunInterrupted) as raised:
        train_once(recipe(synthetic), tmp_path / "split")
    assert raised.value.exit_code == 128 + number
    assert str(raised.value) == (f"{name}: stopped after epoch 1, batch 2 of 6 of epoch 2 (step 8) and saved "
                                 f"{tmp_path / 'split' / 'checkpoint.pt'}; continue with --resume")
    assert signal.getsignal(signal.SIGINT) is handler  # handlers restored
    resumed = train_once(recipe(synthetic), tmp_path / "split", resume=True)
    assert resumed == uninterrupted
    assert [r["train_loss"] for r in log(tmp_path / "split")] == [r["train_loss"] for r in log(tmp_path / "whole")]
    whole, split = weights(tmp_path / "whole"), weights(tmp_path / "split")
    assert whole.keys() == split.keys() and all(torch.equal(whole[key], split[key]) for key in whole)
    for predictions in ("predictions-dev.jsonl", "predictions-test.jsonl"):
        assert (tmp_path / "split" / predictions).read_text() == (tmp_path / "whole" / predictions).read_text()
