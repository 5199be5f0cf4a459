"""A kill at any moment, during a checkpoint or model write included, leaves the old file or the new one, whole and
loadable: writes go to a temporary file that is flushed, fsynced and renamed over the target."""
import os
import random
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import REPO
from mmlabel import atomic
from mmlabel.run_dir import RunDir

# Writes checkpoints and models of ~8 MB holding one number, forever; says "ready" after the first pair.
WRITER = textwrap.dedent('''
    import sys, torch
    from mmlabel.run_dir import RunDir
    run, model, value = RunDir(sys.argv[1]), torch.nn.Linear(1000, 1000), 0
    while True:
        value += 1
        run.save_checkpoint({"value": value, "weights": torch.full((2_000_000,), float(value))})
        torch.nn.init.constant_(model.weight, float(value))
        run.save_model(model)
        if value == 1:
            print("ready", flush=True)
''')


def assert_whole(run: RunDir) -> None:
    """The checkpoint and the model load, each holding one consistent value."""
    from safetensors.torch import load_file

    checkpoint = run.load_checkpoint()
    assert torch.equal(checkpoint["weights"], torch.full((2_000_000,), float(checkpoint["value"])))
    weight = load_file(str(run.model_path))["weight"]
    assert torch.equal(weight, torch.full_like(weight, weight[0, 0].item()))


def test_a_failure_inside_a_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    run = RunDir(tmp_path)
    run.save_checkpoint({"value": 1, "weights": torch.ones(3)})
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(run.checkpoint_path) as temporary:
            torch.save({"value": 2, "weights": torch.full((3,), 2.0)}, temporary)
            temporary.write_bytes(temporary.read_bytes()[:20])  # torn, as a crash mid-write leaves it
            raise RuntimeError("crash")
    assert run.load_checkpoint()["value"] == 1
    assert [path.name for path in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_a_failure_at_the_rename_keeps_the_old_file(tmp_path, monkeypatch):
    atomic.write_json(tmp_path / "metrics.json", {"f1": 1.0})
    monkeypatch.setattr(os, "replace", lambda *args: (_ for _ in ()).throw(OSError("disk gone")))
    with pytest.raises(OSError):
        atomic.write_json(tmp_path / "metrics.json", {"f1": 2.0})
    assert (tmp_path / "metrics.json").read_text() == '{\n  "f1": 1.0\n}\n'
    assert [path.name for path in tmp_path.iterdir()] == ["metrics.json"]


@pytest.mark.system  # writer processes killed: out of the quick loop
def test_sigkill_during_checkpoint_and_model_writes_never_leaves_a_torn_file(tmp_path):
    run = RunDir(tmp_path / "run")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    for round_number in range(3):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(run.path)], stdout=subprocess.PIPE, text=True,
                                  env=environment)
        assert writer.stdout.readline().strip() == "ready"
        random.seed(round_number)
        try:
            writer.wait(timeout=random.uniform(0.05, 0.5))
        except subprocess.TimeoutExpired:
            writer.send_signal(signal.SIGKILL)
        writer.wait()
        assert writer.returncode == -signal.SIGKILL
        assert_whole(run)
    run.start("", resume=True)  # a resumed run removes the temporaries the kills left
    assert not list(run.path.glob(".*.tmp"))
