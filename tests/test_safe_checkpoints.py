"""`--resume` never runs code from a checkpoint: checkpoints hold tensors and plain values only (the RNG states
included), load with `torch.load(weights_only=True)`, and one that needs more (an earlier mmlabel's with NumPy
arrays inside, or a crafted pickle) is refused with one line, unless MMLABEL_TRUST_CHECKPOINTS=1 says it is trusted.
That a resumed run still replays the uninterrupted one exactly is tested in test_training_faults (Ctrl-C),
test_determinism (SIGKILL) and test_distributed (2 processes resumed in 1)."""
import os
import pickle
import pickletools
import random
import re
import shutil
import zipfile

import numpy as np
import pytest
import torch

from conftest import run_cli
from mmlabel.errors import RunError
from mmlabel.run_dir import TRUST_VARIABLE, RunDir, check_loadable
from mmlabel.training.seeds import rng_state, set_rng_state

def allowed(name: str) -> bool:
    """Whether a pickle's GLOBAL `module name` is one that tensors, dicts, lists, tuples and plain values need:
    torch's tensor rebuild functions and storage types, and the OrderedDict of a module's state_dict."""
    module, _, attribute = name.partition(" ")
    return ((module == "torch._utils" and attribute.startswith("_rebuild_"))
            or (module == "torch" and attribute.endswith("Storage")) or name == "collections OrderedDict")


class Marker:
    """Unpickling it creates a file: what a malicious checkpoint would do, harmlessly."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


@pytest.fixture
def generators_kept():
    """The test's draws leave the process's generators as they were."""
    saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
    yield
    random.setstate(saved[0])
    np.random.set_state(saved[1])
    torch.set_rng_state(saved[2])


def draws() -> list:
    """Numbers from each generator, including the ones that use a cached second Gaussian."""
    return [random.random(), random.gauss(0, 1), random.getrandbits(64), np.random.standard_normal(3).tolist(),
            np.random.randint(0, 2**31, 4).tolist(), torch.rand(3).tolist(), torch.randint(0, 2**31, (4,)).tolist()]


def pickle_globals(path) -> tuple[set[str], set[str]]:
    """The `module name` of every GLOBAL in a torch.save file's pickle, and every opcode name, read with
    pickletools (nothing is unpickled)."""
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(name for name in archive.namelist() if name.endswith("/data.pkl")))
    operations = list(pickletools.genops(data))
    return {arg for op, arg, _ in operations if op.name == "GLOBAL"}, {op.name for op, _, _ in operations}


def old_format(checkpoint: dict) -> dict:
    """`checkpoint` as mmlabel wrote it before safe loading: the RNG states as the generators' own tuples."""
    def tuples(state):
        python, numpy = state["python"], state["numpy"]
        return {**state, "python": (python["version"], tuple(python["words"].tolist()), python["gauss_next"]),
                "numpy": (numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                          numpy["has_gauss"], numpy["cached_gaussian"])}

    return {**checkpoint, "rng": tuples(checkpoint["rng"])}


# -- RNG states as tensors and plain values ------------------------------------------------------------------------
def test_rng_states_survive_a_safe_save_and_load_exactly(tmp_path, generators_kept):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    random.gauss(0, 1), np.random.standard_normal()  # both now hold a cached Gaussian
    assert random.getstate()[2] is not None and np.random.get_state()[3] == 1
    python, numpy = random.getstate(), np.random.get_state()
    torch.save(rng_state(), tmp_path / "rng.pt")
    expected = draws()
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert random.getstate() == python
    restored = np.random.get_state()
    assert restored[0] == numpy[0] and np.array_equal(restored[1], numpy[1]) and restored[1].dtype == np.uint32
    assert restored[2:] == numpy[2:]
    assert draws() == expected


def test_the_old_tuple_format_restores_the_same_streams(generators_kept):
    """A trusted checkpoint of an earlier mmlabel (RNG states as tuples) resumes the same streams as today's."""
    random.seed(4), np.random.seed(5), torch.manual_seed(6)
    random.gauss(0, 1)
    new = rng_state()
    old = {**new, "python": random.getstate(), "numpy": np.random.get_state()}
    expected = draws()
    set_rng_state(old)
    assert draws() == expected
    set_rng_state(new)
    assert draws() == expected


def test_only_tensors_and_plain_values_may_be_written(tmp_path):
    check_loadable({"rng": rng_state(), "model": torch.nn.Linear(2, 2).state_dict(), "best": -float("inf"),
                    "lrs": [0.1, None], "betas": (0.9, 0.999), 3: {"flag": True}})
    for value, where in ((np.float64(1.0), "checkpoint['state']['best_score']"),
                         (np.zeros(3, dtype=np.uint32), "checkpoint['state']['best_score']"),
                         ([1, {"x": object()}], "checkpoint['state']['best_score'][1]['x']")):
        with pytest.raises(TypeError, match=f"^{re.escape(where)}: .* safe load refuses"):
            RunDir(tmp_path).save_checkpoint({"state": {"best_score": value}})
    assert not (tmp_path / "checkpoint.pt").exists()


# -- the checkpoint a run writes -----------------------------------------------------------------------------------
def test_a_runs_checkpoint_pickles_nothing_but_tensors_and_plain_values(quickstart_run):
    run = RunDir(quickstart_run[0])
    names, operations = pickle_globals(run.checkpoint_path)
    outside = {name for name in names if not allowed(name)}
    assert not outside, outside
    assert "torch._utils _rebuild_tensor_v2" in names  # the scan reads the real pickle
    assert not operations & {"STACK_GLOBAL", "INST"}  # the other ways to name a global
    checkpoint = torch.load(run.checkpoint_path, weights_only=True)
    assert checkpoint.keys() >= {"model", "optimizer", "scheduler", "scaler", "state", "rng"}
    assert all(entry in ({}, None) for entry in checkpoint["scheduler"]["lr_lambdas"])  # torch drops the functions
    assert checkpoint["state"]["epoch"] == 2 and isinstance(checkpoint["rng"]["numpy"]["keys"], torch.Tensor)


# -- refusing what needs more --------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_a_malicious_checkpoint_is_refused_without_running_it(tmp_path, how, monkeypatch):
    monkeypatch.delenv(TRUST_VARIABLE, raising=False)
    marker, run = tmp_path / "ran", RunDir(tmp_path)
    payload = {"model": {}, "state": Marker(marker)}
    if how == "torch.save":
        torch.save(payload, run.checkpoint_path)
    else:
        run.checkpoint_path.write_bytes(pickle.dumps(payload, protocol=4))
    with pytest.raises(RunError) as refused:
        run.load_checkpoint()
    message = str(refused.value)
    assert message.startswith(f"{run.checkpoint_path}: refused: it needs ") and "\n" not in message
    assert f"{TRUST_VARIABLE}=1" in message and "without --resume in a new --out" in message
    if how == "torch.save":
        assert "posix.system" in message or "nt.system" in message  # named, read without unpickling
    assert not marker.exists()


def test_an_old_checkpoint_is_refused_and_loads_only_when_trusted(quickstart_run, tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_VARIABLE, raising=False)
    run = RunDir(tmp_path)
    current = RunDir(quickstart_run[0]).load_checkpoint()
    torch.save(old_format(current), run.checkpoint_path)
    with pytest.raises(RunError, match=r"needs numpy\..*ndarray to load.*\(an earlier mmlabel's checkpoint"):
        run.load_checkpoint()
    monkeypatch.setenv(TRUST_VARIABLE, "yes")  # only 1 trusts
    with pytest.raises(RunError):
        run.load_checkpoint()
    monkeypatch.setenv(TRUST_VARIABLE, "1")
    with pytest.warns(UserWarning, match=f"unpickled in full.*{TRUST_VARIABLE}=1"):
        loaded = run.load_checkpoint()
    assert isinstance(loaded["rng"]["numpy"][1], np.ndarray) and loaded["state"] == current["state"]


def test_a_damaged_checkpoint_is_one_line(tmp_path):
    run = RunDir(tmp_path)
    run.checkpoint_path.write_bytes(b"PK\x03\x04 not a whole zip")
    with pytest.raises(RunError, match=r"cannot read the checkpoint \(.*\); start the run again") as refused:
        run.load_checkpoint()
    assert "\n" not in str(refused.value)


# -- on the command line -------------------------------------------------------------------------------------------
def test_resume_refuses_a_malicious_checkpoint_then_resumes_a_trusted_old_one(quickstart_run, tmp_path):
    """Exit 2 and one line, nothing run; the same run with an earlier mmlabel's checkpoint resumes under
    MMLABEL_TRUST_CHECKPOINTS=1 (a finished run: it evaluates again, to the same figures)."""
    out, marker = tmp_path / "run", tmp_path / "ran"
    shutil.copytree(quickstart_run[0], out)
    run = RunDir(out)
    current = run.load_checkpoint()
    torch.save({**current, "scaler": Marker(marker)}, run.checkpoint_path)
    refused = run_cli("train", str(run.recipe_path), "--out", str(out), "--resume", env={TRUST_VARIABLE: ""})
    assert refused.returncode == 2 and not marker.exists()
    assert refused.stderr.strip().splitlines()[-1].startswith(f"error: {run.checkpoint_path}: refused: it needs ")
    torch.save(old_format(current), run.checkpoint_path)
    with pytest.warns(UserWarning, match="unpickled in full"):
        resumed = run_cli("train", str(run.recipe_path), "--out", str(out), "--resume", env={TRUST_VARIABLE: "1"})
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch 2" in resumed.stderr
    assert run.metrics()["test"] == RunDir(quickstart_run[0]).metrics()["test"]
