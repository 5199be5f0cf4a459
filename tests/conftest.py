"""Shared fixtures: fake plugins registered for one test and unregistered after (simonw/llm's conftest), the command
line run in this process, and the runs every module uses, trained once per session.

Two rules keep the suite fast and its comparisons fair:

- The command line runs in this process (`run_cli`, through `mmlabel.cli.main`) unless the test is about processes
  (signals, torchrun, `--jobs`, Slurm, packaging, start-up imports): then `run_process` starts `python -m mmlabel`.
  Importing torch, transformers and timm takes about 6 s of a fresh process on 2 cores; training a tiny model for a
  few steps takes about 1 s.
- Every process of the suite computes with one thread (`MMLABEL_THREADS=1` and `OMP_NUM_THREADS=1`, inherited by
  the subprocesses). Left to itself, a training process takes its share of the cores among the mmlabel processes
  computing on the machine right now (mmlabel/threads.py), and float reductions differ with the number of threads:
  two runs the suite compares for equal figures would differ whenever another mmlabel process (another test run,
  another user) started or ended between them. test_compute_choices tests the automatic choice with the variable
  unset. One thread is also the faster choice for these tiny models on a busy 2-core machine: torch's second
  thread spins against the other processes (a bench worker of ViT-Tiny: 39 s with two threads, 11 s with one).
"""
import contextlib
import io
import os
import signal
import subprocess
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

import pytest

from mmlabel.hookspecs import hookimpl
from mmlabel.plugins import get_plugin_manager
from mmlabel.registry import ComponentConfig
from mmlabel.threads import ENV_THREADS

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MMLABEL_DATA", REPO.parent / "shared" / "data"))
for _variable in (ENV_THREADS, "OMP_NUM_THREADS"):  # before torch is imported: it reads OMP_NUM_THREADS once
    if not os.environ.get(_variable, "").strip().isdigit():
        os.environ[_variable] = "1"
# The processes that commands run here start (a sweep's --jobs, torchrun, Slurm jobs) import this checkout's mmlabel.
_paths = [str(REPO), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path for path in _paths if path))

# One short epoch: enough for a training test to exercise everything end to end.
SHORT = ["--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=6"]
# Tiny encoders, for the tests that check plumbing rather than learning: the quickstart's text encoder at hidden
# size 32 with one layer, its image encoder on 32-pixel images with one block (a 4 x 4 grid of 8-pixel patches).
TINY = ["--set", "text_encoder.config_overrides={hidden_size = 32, num_hidden_layers = 1, num_attention_heads = 2, "
                 "intermediate_size = 64, max_position_embeddings = 128}",
        "--set", "image_encoder.model_args={img_size = 32, patch_size = 8, depth = 1, embed_dim = 32, num_heads = 2}"]
# Two short epochs with small batches at a high rate: a model that already predicts spans (some right, some wrong),
# so that comparing predictions can fail. The shared quickstart run is trained with these.
PREDICTS = ["--set", "train.epochs=2", "--set", "train.max_steps_per_epoch=12", "--set", "train.batch_size=4",
            "--set", "train.lr=3e-3"]
# The reference sweep of the launchers (tests/test_launchers.py, tests/test_slurm.py): 2 cells x 2 seeds, two short
# epochs each (a run requeued in its first epoch resumes from a checkpoint in Slurm).
SWEEP_STEPS = ["--set", "train.epochs=2", "--set", "train.max_steps_per_epoch=6"]


def sweep_args(data: Path, out: Path, *extra: str) -> list[str]:
    """`mmlabel sweep` of the reference sweep's 4 runs into `out`, with `extra` options."""
    return ["sweep", "quickstart", "--out", str(out), "--grid", "loss.beta=0,0.6", "--seeds", "1,2",
            "--set", f"data.root={data}", *SWEEP_STEPS, *extra]


class EchoMetricConfig(ComponentConfig):
    scale: float = 1.0
    average: str = "micro"


class EchoMetric:
    """Counts exact matches (a fake metric of the test suite)."""

    name = "echo"
    main_key = "f1"
    Config = EchoMetricConfig

    def __init__(self, config: EchoMetricConfig):
        self.config = config

    def score(self, gold, predicted) -> dict:
        """Exact span matches, scaled by `scale`: precision, recall and f1 in percent."""
        from mmlabel.metrics.counts import prf

        correct = sum(len(set(g) & set(p)) for g, p in zip(gold, predicted))
        figures = prf(correct, sum(map(len, predicted)), sum(map(len, gold)))
        return {key: value * self.config.scale for key, value in figures.items()}


class FakePlugin:
    __name__ = "fake-plugin"

    @hookimpl
    def register_metrics(self, register):
        register("echo", EchoMetric)


@contextmanager
def registered(plugin, name: str):
    """`plugin` registered with the plugin manager under `name` for the block, unregistered even when it fails."""
    manager = get_plugin_manager()
    manager.register(plugin, name=name)
    try:
        yield plugin
    finally:
        manager.unregister(name=name)


@pytest.fixture
def fake_plugin():
    with registered(FakePlugin(), "fake-plugin") as plugin:
        yield plugin


def pytest_collection_modifyitems(config, items):
    """The system tests run one after another on one pytest-xdist worker (`--dist loadgroup`: two Slurm clusters or
    two servers of a test never run at once), the others on whichever worker is free. The slow tests run only when
    -m names them (`-m slow`): `-m "not system"` alone leaves them out too."""
    for item in items:
        if item.get_closest_marker("system"):
            item.add_marker(pytest.mark.xdist_group("system"))
    if "slow" in (config.getoption("markexpr") or ""):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


# -- the command line ----------------------------------------------------------------------------------------------
def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`mmlabel ARGS` run in this process through `cli.main`, as a user sees it: exit code, stdout and stderr (a
    crash is exit code 1 with its traceback on stderr). `env` is laid over the environment for the call; a
    PYTHONPATH in it is put on sys.path and the plugins are loaded again, as a fresh process would find them.
    Whatever the command changes process-wide is put back afterwards (`process_state_kept`)."""
    from mmlabel.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with process_state_kept(env, cwd, ["mmlabel", *args]), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            if isinstance(exit_.code, str):
                print(exit_.code, file=sys.stderr)
        except Exception:  # what the interpreter would print before exiting with 1
            traceback.print_exc()
            code = 1
    return subprocess.CompletedProcess(["mmlabel", *args], code, out.getvalue(), err.getvalue())


def run_command(*args, cwd: Path | None = None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `run_cli`, the arguments turned into strings (paths welcome)."""
    result = run_cli(*(str(arg) for arg in args), cwd=cwd)
    return result.returncode, result.stdout, result.stderr


def run_process(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m mmlabel` in a subprocess, as a user would; returns the CompletedProcess. For the tests about
    processes; the others use `run_cli`."""
    return subprocess.run([sys.executable, "-m", "mmlabel", *args], capture_output=True, text=True,
                          env=process_environment(env), cwd=cwd or REPO)


def process_environment(env: dict | None = None) -> dict:
    """This environment with `env` laid over it and the checkout first on PYTHONPATH: what a subprocess of the
    suite runs with."""
    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environment.get("PYTHONPATH", "")]))
    return environment


@contextmanager
def process_state_kept(env: dict | None, cwd: Path | None, argv: list[str]):
    """The block runs with `env` laid over the environment, in `cwd` (default: the checkout) and with `argv`; then
    the environment, directory, argv, signal handlers, random generators and torch's settings are put back. The
    command line tunes glibc's malloc for good in its own process (mmlabel.device): here it is told not to."""
    import random

    saved_environment, saved_directory, saved_argv = dict(os.environ), os.getcwd(), sys.argv
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)}
    generators = random.getstate(), _numpy_state()
    torch_settings = _torch_settings()
    os.environ.update({"MMLABEL_ALLOCATOR": "system", **(env or {})})
    os.chdir(cwd or REPO)
    sys.argv = argv
    try:
        with _plugins_from(env), _warnings_kept():
            yield
    finally:
        os.environ.clear()
        os.environ.update(saved_environment)
        os.chdir(saved_directory)
        sys.argv = saved_argv
        for number, handler in handlers.items():
            signal.signal(number, handler)
        random.setstate(generators[0])
        if generators[1] is not None:
            sys.modules["numpy"].random.set_state(generators[1])
        _restore_torch(torch_settings)


def _numpy_state():
    return sys.modules["numpy"].random.get_state() if "numpy" in sys.modules else None


def _torch_settings() -> dict | None:
    if "torch" not in sys.modules:
        return None
    import torch

    return {"threads": torch.get_num_threads(), "rng": torch.get_rng_state(),
            "matmul": torch.get_float32_matmul_precision(),
            "deterministic": (torch.are_deterministic_algorithms_enabled(),
                              torch.is_deterministic_algorithms_warn_only_enabled())}


def _restore_torch(settings: dict | None) -> None:
    if "torch" not in sys.modules:
        return
    import torch

    if settings is None:  # the command imported torch: its defaults are what the tests before it had
        settings = {"threads": None, "rng": None, "matmul": "highest", "deterministic": (False, False)}
    if settings["threads"] and torch.get_num_threads() != settings["threads"]:
        torch.set_num_threads(settings["threads"])
    if settings["rng"] is not None:
        torch.set_rng_state(settings["rng"])
    torch.set_float32_matmul_precision(settings["matmul"])
    enabled, warn_only = settings["deterministic"]
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


@contextmanager
def _warnings_kept():
    import warnings

    with warnings.catch_warnings():
        yield


@contextmanager
def _plugins_from(env: dict | None):
    """Where `env` changes which plugins a fresh process would load (PYTHONPATH, MMLABEL_PLUGINS): the block runs
    with the plugins loaded again from scratch, that path first on sys.path; afterwards the modules imported from
    it are forgotten and the plugin manager is as it was."""
    if not env or not {"PYTHONPATH", "MMLABEL_PLUGINS"} & set(env):
        yield
        return
    import importlib

    from mmlabel import plugins

    paths = [path for path in env.get("PYTHONPATH", "").split(os.pathsep) if path]
    saved = _plugin_state()
    sys.path[:0] = paths
    importlib.invalidate_caches()
    modules_before = set(sys.modules)
    _unload_plugins()
    try:
        yield
    finally:
        _unload_plugins()
        for path in paths:
            sys.path.remove(path)
        for name in set(sys.modules) - modules_before:
            origin = getattr(sys.modules[name], "__file__", None) or ""
            if any(origin.startswith(path) for path in paths):
                del sys.modules[name]
        importlib.invalidate_caches()
        _restore_plugin_state(saved)
        plugins._loaded = saved["loaded"]


def _plugin_state() -> dict:
    from mmlabel import plugins

    return {"registered": list(plugins.pm.list_name_plugin()), "info": dict(plugins._plugin_info),
            "failed": list(plugins._failed), "warned": set(plugins._warned), "loaded": plugins._loaded}


def _unload_plugins() -> None:
    """Unregister every plugin: the next lookup loads the built-ins and the entry points again."""
    from mmlabel import plugins

    for name, _ in plugins.pm.list_name_plugin():
        plugins.pm.unregister(name=name)
    plugins._plugin_info.clear()
    plugins._failed.clear()
    plugins._warned.clear()
    plugins._loaded = False


def _restore_plugin_state(saved: dict) -> None:
    from mmlabel import plugins

    for name, plugin in saved["registered"]:
        plugins.pm.register(plugin, name=name)
    plugins._plugin_info.update(saved["info"])
    plugins._failed.extend(saved["failed"])
    plugins._warned.update(saved["warned"])


@pytest.fixture
def stop_signals_guarded():
    """While the test runs, a SIGINT or SIGTERM that reaches this process outside mmlabel's stop handlers (which
    a test sends itself, from inside a training or from a thread) fails the test instead of ending the session."""
    def stray(number, frame):
        raise AssertionError(f"{signal.Signals(number).name} reached no stop handler of mmlabel")

    previous = {number: signal.signal(number, stray) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def signal_when(condition, number: int, timeout: float = 120) -> "threading.Thread":
    """A thread that sends this process `number` as soon as `condition()` holds (or after `timeout` seconds)."""
    import threading
    import time

    def watch():
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), number)

    thread = threading.Thread(target=watch, name="signal-when", daemon=True)
    thread.start()
    return thread


# -- data and runs, made once per session --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """A small synthetic MABSA dataset (48/24/24 sentences with images), written once per test session."""
    from mmlabel.data.synth import write_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic(root, train=48, dev=24, test=24, seed=3)
    return root


@pytest.fixture(scope="session")
def small_synthetic(tmp_path_factory):
    """A 16/8/8 synthetic dataset, for the tests that check plumbing rather than learning."""
    from mmlabel.data.synth import write_synthetic

    root = tmp_path_factory.mktemp("small-synthetic")
    write_synthetic(root, train=16, dev=8, test=8, seed=3)
    return root


def train_run(out: Path, recipe: str, *args: str) -> subprocess.CompletedProcess:
    """`mmlabel train RECIPE --out OUT ARGS --json`, in this process; fails the test unless it succeeds."""
    result = run_cli("train", recipe, "--out", str(out), *args, "--json")
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="session")
def quickstart_run(synthetic, tmp_path_factory):
    """The quickstart trained once for the session on `synthetic` (PREDICTS: it predicts spans): (run directory,
    the command's CompletedProcess). Tests must not change it (copy it first)."""
    out = tmp_path_factory.mktemp("runs") / "quickstart"
    return out, train_run(out, "recipes/quickstart.toml", "--set", f"data.root={synthetic}", *PREDICTS)


@pytest.fixture(scope="session")
def text_only_run(synthetic, tmp_path_factory):
    """The text-only quickstart trained once for the session, on a copy of `synthetic` of its own (a test may hide
    that copy's images for a moment): (run directory, its data directory)."""
    import shutil

    root = tmp_path_factory.mktemp("text-only")
    shutil.copytree(synthetic, root / "data")
    train_run(root / "run", "recipes/quickstart-text-only.toml", "--set", f"data.root={root / 'data'}", *PREDICTS)
    return root / "run", root / "data"


@pytest.fixture(scope="session")
def reference_sweep(synthetic, tmp_path_factory):
    """The reference sweep (`sweep_args`) run sequentially in this process: its directory."""
    out = tmp_path_factory.mktemp("reference-sweep") / "sweep"
    result = run_cli(*sweep_args(synthetic, out))
    assert result.returncode == 0, result.stderr
    return out
