"""A device the machine lacks (`--device`, `train.device`): one line naming it and the devices there are, exit code 2,
in every command, before anything heavy is done (no run directory made, no model loaded)."""
import re

import pytest
import torch

from conftest import run_cli

from mmlabel.device import available_devices, resolve_device
from mmlabel.errors import DeviceError

NO_GPU = "this machine has no CUDA GPU (torch sees none)"


def commands(device: str, tmp_path) -> dict[str, list[str]]:
    """Each command that computes, asked for `device`; the run directory does not exist: the device is checked
    before it is read."""
    run = str(tmp_path / "run")
    return {
        "train": ["train", "recipes/quickstart.toml", "--set", f"train.device={device}", "--out", str(tmp_path / "out")],
        "serve": ["serve", run, "--device", device],
        "evaluate": ["evaluate", run, "--device", device],
        "predict": ["predict", run, "--text", "Alice is great", "--device", device],
    }


@pytest.fixture
def no_loading(monkeypatch):
    """Loading a model fails the test: the device check comes first."""
    from mmlabel.tagger import Tagger

    def load(*args, **kwargs):
        raise AssertionError("the model was loaded before the device was checked")

    monkeypatch.setattr(Tagger, "load", load)


@pytest.fixture
def one_gpu(monkeypatch):
    """This process sees one CUDA GPU (torch is asked nothing else before the check)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


@pytest.mark.skipif(torch.cuda.is_available() or torch.backends.mps.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("command", ["train", "serve", "evaluate", "predict"])
@pytest.mark.parametrize("device, reason", [("cuda", NO_GPU), ("cuda:1", NO_GPU),
                                            ("mps", "this machine has no Apple GPU (MPS)")])
def test_a_device_the_machine_lacks_is_one_line(command, device, reason, tmp_path, no_loading):
    result = run_cli(*commands(device, tmp_path)[command])
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"error: device '{device}': {reason}; available: cpu\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["train", "serve", "evaluate", "predict"])
def test_a_gpu_index_past_the_machines_gpus_names_them(command, tmp_path, no_loading, one_gpu):
    result = run_cli(*commands("cuda:3", tmp_path)[command])
    assert result.returncode == 2, result.stderr
    assert result.stderr == ("error: device 'cuda:3': this machine has 1 CUDA GPU (cuda:0); "
                             "available: cpu, cuda, cuda:0\n")


def test_a_name_that_is_no_device_lists_the_names():
    with pytest.raises(DeviceError, match=r"^device 'gpu' is not a device name: give auto, cpu, cuda or cuda:N; "
                                          r"available here: cpu"):
        resolve_device("gpu")


def test_the_devices_there_are_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert available_devices()[0] == "cpu"
    for name in available_devices():
        assert resolve_device(name).type == name.partition(":")[0]


def test_the_python_api_refuses_the_same_way(quickstart_run):
    from mmlabel.tagger import Tagger

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceError, match=re.escape(f"device 'cuda': {NO_GPU}; available: cpu")):
        Tagger.load(quickstart_run[0], device="cuda")
