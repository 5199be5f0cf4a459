"""What a process chooses to compute with: its threads (its share of the cores among the mmlabel processes computing
now, unless set) and, for `precision = "auto"`, bf16 where the hardware computes it natively; a run says what it
chose."""
import os
import subprocess
import sys
import time

import pytest

from conftest import SHORT, run_cli
from mmlabel import threads


def test_an_explicit_number_wins_over_the_share(monkeypatch):
    monkeypatch.delenv(threads.ENV_THREADS, raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    assert threads.choose_threads(requested=3, processes=4) == 3
    monkeypatch.setenv(threads.ENV_THREADS, "5")
    assert threads.choose_threads(processes=4) == 5
    monkeypatch.setenv(threads.ENV_THREADS, "many")  # not a number: the share
    assert threads.choose_threads(processes=4) == 2


def test_processes_share_the_available_cores(monkeypatch):
    monkeypatch.delenv(threads.ENV_THREADS, raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    assert [threads.choose_threads(processes=n) for n in (1, 2, 3, 8, 20)] == [8, 4, 2, 1, 1]


def test_processes_computing_now_are_counted_and_dead_ones_forgotten():
    before = threads.computing_processes()  # this test process, registered
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; from mmlabel import threads; "
                                "threads.computing_processes(); print('ready', flush=True); time.sleep(60)"],
                               stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert sleeper.stdout.readline().strip() == "ready"
        assert threads.computing_processes() == before + 1
    finally:
        sleeper.kill()
        sleeper.wait()
    deadline = time.time() + 5
    while threads.computing_processes() != before and time.time() < deadline:
        time.sleep(0.05)
    assert threads.computing_processes() == before
    stale = threads._folder() / "999999999"  # a process id that cannot be running
    stale.touch()
    assert threads.computing_processes() == before and not stale.exists()


@pytest.mark.parametrize("setting, expected", [(["--set", "train.threads=1"], "1 compute thread)"),
                                               (["--set", "train.threads=3"], "3 compute threads)")])
def test_training_says_how_many_threads_it_computes_with(synthetic, tmp_path, setting, expected):
    result = run_cli("train", "quickstart", "--out", str(tmp_path / "run"), "--set", f"data.root={synthetic}", *SHORT,
                     "--set", "train.max_steps_per_epoch=1", *setting, env={threads.ENV_THREADS: ""})
    assert result.returncode == 0, result.stderr
    assert expected in result.stderr


# -- precision = "auto" ---------------------------------------------------------------------------------------------
def test_auto_precision_is_bf16_only_where_the_hardware_computes_it(monkeypatch):
    import torch

    from mmlabel import device

    cpu = torch.device("cpu")
    assert device.resolve_precision("fp16", cpu) == "fp16" and device.resolve_precision("fp32", cpu) == "fp32"
    monkeypatch.setattr(device, "cpu_computes_bf16", lambda: True)
    assert device.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(device, "cpu_computes_bf16", lambda: False)
    assert device.resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert device.resolve_precision("auto", torch.device("cuda")) == "fp32"


def test_the_cpu_flags_are_read_from_proc_cpuinfo():
    from pathlib import Path

    from mmlabel.device import cpu_computes_bf16

    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo on this system")
    flags = next(line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")).split()
    assert cpu_computes_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)


def test_a_run_with_auto_precision_prints_and_saves_its_choice_and_keeps_auto_in_its_recipe(synthetic, tmp_path):
    import json
    import tomllib

    from mmlabel.device import cpu_computes_bf16

    out = tmp_path / "run"
    args = ["train", "quickstart", "--out", str(out), "--set", f"data.root={synthetic}", *SHORT,
            "--set", "train.max_steps_per_epoch=1", "--set", "train.precision=auto", "--set", "train.device=cpu"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    chosen = "bf16" if cpu_computes_bf16() else "fp32"
    assert f"({chosen}, chosen by precision = auto," in result.stderr
    assert json.loads((out / "run.json").read_text())["precision"] == chosen
    assert tomllib.loads((out / "recipe.toml").read_text())["train"]["precision"] == "auto"
    from mmlabel.tagger import Tagger

    assert Tagger.load(out, device="cpu").precision == chosen
