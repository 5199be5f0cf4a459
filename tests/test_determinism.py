"""Determinism and resume on CPU: the same recipe and seed give the same weights, losses, metrics and predictions
twice; a training process killed (SIGKILL) mid-training and resumed in this one ends exactly where the uninterrupted
run of this one does, so the figures do not depend on the process either (its random generators, hash seed,
caches); a training stopped by SIGTERM says how to resume and resumes to the same end. Every process of the suite
computes with one thread (conftest.py): the figures depend on the number."""
import json
import shlex
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, process_environment, run_cli, signal_when

# 12 batches of 4 a epoch, cut to 6 steps; a checkpoint every 2 steps, so that kills land after mid-epoch ones.
SETTINGS = ["--set", "train.epochs=2", "--set", "train.batch_size=4", "--set", "train.max_steps_per_epoch=6",
            "--set", "train.checkpoint_every=2"]


def train_args(synthetic, out):
    return ["train", "recipes/quickstart.toml", "--out", str(out), "--set", f"data.root={synthetic}", *SETTINGS]


@pytest.fixture(scope="module")
def reference(synthetic, tmp_path_factory):
    """An uninterrupted run, trained in this process."""
    out = tmp_path_factory.mktemp("reference") / "run"
    result = run_cli(*train_args(synthetic, out))
    assert result.returncode == 0, result.stderr
    return out


def assert_same_run(run, reference):
    """Bit-identical weights and per-epoch losses; equal metrics and predictions."""
    import torch
    from safetensors.torch import load_file

    ours, theirs = load_file(str(run / "model.safetensors")), load_file(str(reference / "model.safetensors"))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[key], theirs[key]) for key in ours)
    losses = [[json.loads(line)["train_loss"] for line in (path / "log.jsonl").read_text().splitlines()]
              for path in (run, reference)]
    assert losses[0] == losses[1] and len(losses[0]) == 2
    assert json.loads((run / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())
    for name in ("predictions-dev.jsonl", "predictions-test.jsonl"):
        assert (run / name).read_text() == (reference / name).read_text()


def start_then_signal(synthetic, out, number: int) -> subprocess.Popen:
    """Start a training process and send it `number` as soon as its first (mid-epoch) checkpoint exists."""
    command = [sys.executable, "-m", "mmlabel", *train_args(synthetic, out)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env=process_environment())
    deadline = time.time() + 240
    while not (out / "checkpoint.pt").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(number)
    return process


def test_same_recipe_and_seed_give_identical_runs(synthetic, reference, tmp_path):
    result = run_cli(*train_args(synthetic, tmp_path / "again"))
    assert result.returncode == 0, result.stderr
    assert_same_run(tmp_path / "again", reference)


@pytest.mark.system  # a training process killed: out of the quick loop
def test_resume_after_sigkill_mid_training_equals_the_uninterrupted_run(synthetic, reference, tmp_path):
    out = tmp_path / "killed"
    process = start_then_signal(synthetic, out, signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL and not (out / "metrics.json").exists()
    result = run_cli(*train_args(synthetic, out), "--resume")
    assert result.returncode == 0, result.stderr
    assert "resuming after epoch" in result.stderr
    assert_same_run(out, reference)


def test_sigterm_saves_a_checkpoint_exits_143_and_says_how_to_resume(synthetic, reference, tmp_path,
                                                                   stop_signals_guarded):
    """SIGTERM (here to this process, once the first mid-epoch checkpoint exists): exit 143 and one line with the
    command that resumes the run, which then ends exactly as the uninterrupted run (resuming at a chosen batch:
    also test_training_faults)."""
    out = tmp_path / "stopped"
    sender = signal_when(lambda: (out / "checkpoint.pt").exists(), signal.SIGTERM)
    result = run_cli(*train_args(synthetic, out))
    sender.join()
    assert result.returncode == 143, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: SIGTERM: stopped after epoch ") and "Traceback" not in result.stderr
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    command = shlex.split(error.partition("resume with: ")[2])
    assert command[:2] == ["mmlabel", "train"] and command[-1] == "--resume"
    assert command[1:-1] == train_args(synthetic, out)
    from mmlabel.run_dir import RunDir

    assert RunDir(out).load_checkpoint()["state"]["step"] >= 2 and not (out / "metrics.json").exists()
    resumed = run_cli(*command[1:])
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(out, reference)
