"""What a process chooses to compute with: its threads (its share of the cores among the mmlabel processes computing
now, unless set) and, for `precision = "auto"`, bf16 where the hardware computes it natively; a run says what it
chose."""
import os
import subprocess
import sys

import pytest

from conftest import SHORT, TINY, process_environment, run_cli
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


@pytest.fixture
def own_computing_folder(tmp_path, monkeypatch):
    """The folder where mmlabel processes say that they compute, of this test alone: the machine's is shared with
    every mmlabel process of the user (another test run, a training in a terminal), which start and end when they
    like. A temporary directory of the test's own, for this process and for the ones it starts (TMPDIR)."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    assert threads._folder() == tmp_path / threads._folder().relative_to(tmp_path)
    return threads._folder()


def test_processes_computing_now_are_counted_and_dead_ones_forgotten(own_computing_folder):
    assert threads.computing_processes() == 1  # this test process, registered
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; from mmlabel import threads; "
                                "threads.computing_processes(); print('ready', flush=True); time.sleep(60)"],
                               stdout=subprocess.PIPE, text=True, env=process_environment())
    try:
        assert sleeper.stdout.readline().strip() == "ready"
        assert threads.computing_processes() == 2
    finally:
        sleeper.kill()
        sleeper.wait()
    assert threads.computing_processes() == 1  # the killed process left its file: it is not running, so not counted
    stale = own_computing_folder / "999999999"  # a process id that cannot be running
    stale.touch()
    assert threads.computing_processes() == 1 and not stale.exists()
    assert sorted(path.name for path in own_computing_folder.iterdir()) == [str(os.getpid())]


@pytest.mark.parametrize("setting, expected", [(["--set", "train.threads=1"], "1 compute thread)"),
                                               (["--set", "train.threads=3"], "3 compute threads)")])
def test_training_says_how_many_threads_it_computes_with(small_synthetic, tmp_path, setting, expected):
    result = run_cli("train", "quickstart", "--out", str(tmp_path / "run"), "--set", f"data.root={small_synthetic}",
                     *SHORT, *TINY, "--set", "train.max_steps_per_epoch=1", *setting, env={threads.ENV_THREADS: ""})
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


CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
vmx flags\t: vnmi preemption_timer avx512_bf16
flags\t\t: fpu vme sse sse2 avx2 avx512f avx512bw{extra}
bugs\t\t: spectre_v1 amx_bf16

processor\t: 1
flags\t\t: fpu vme sse sse2 avx2 avx512_bf16 amx_bf16
"""


@pytest.mark.parametrize("extra, expected", [("", False), (" avx512_bf16", True), (" amx_bf16 amx_tile", True),
                                             (" avx512_bf16x", False), (None, False)])
def test_the_cpu_flags_are_read_from_proc_cpuinfo(monkeypatch, extra, expected):
    """The first processor's `flags` line alone decides: not the `vmx flags` or `bugs` lines, not a longer flag,
    not another processor's; no /proc/cpuinfo (another system) is no bf16."""
    import io

    from mmlabel import device

    opened = []

    def fake_open(path, *args, **kwargs):
        opened.append(str(path))
        if extra is None:
            raise FileNotFoundError(path)
        return io.StringIO(CPUINFO.format(extra=extra))

    monkeypatch.setattr(device, "open", fake_open, raising=False)  # the module's `open`, ahead of the builtin
    assert device.cpu_computes_bf16() is expected
    assert opened == ["/proc/cpuinfo"]


def test_a_run_with_auto_precision_prints_and_saves_its_choice_and_keeps_auto_in_its_recipe(small_synthetic, tmp_path):
    import json
    import tomllib

    from mmlabel.device import cpu_computes_bf16

    out = tmp_path / "run"
    args = ["train", "quickstart", "--out", str(out), "--set", f"data.root={small_synthetic}", *SHORT, *TINY,
            "--set", "train.max_steps_per_epoch=1", "--set", "train.precision=auto", "--set", "train.device=cpu"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    chosen = "bf16" if cpu_computes_bf16() else "fp32"
    assert f"({chosen}, chosen by precision = auto," in result.stderr
    assert json.loads((out / "run.json").read_text())["precision"] == chosen
    assert tomllib.loads((out / "recipe.toml").read_text())["train"]["precision"] == "auto"
    from mmlabel.tagger import Tagger

    assert Tagger.load(out, device="cpu").precision == chosen
