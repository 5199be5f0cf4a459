"""Shared fixtures: fake plugins registered for one test and unregistered after (simonw/llm's conftest)."""
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from mmlabel.hookspecs import hookimpl
from mmlabel.plugins import get_plugin_manager
from mmlabel.registry import ComponentConfig

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MMLABEL_DATA", REPO.parent / "shared" / "data"))
# One short epoch: enough for a training test to exercise everything end to end.
SHORT = ["--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=6"]


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


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """A small synthetic MABSA dataset (48/24/24 sentences with images), written once per test session."""
    from mmlabel.data.synth import write_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic(root, train=48, dev=24, test=24, seed=3)
    return root


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None):
    """Run `python -m mmlabel` in a subprocess, as a user would; returns the CompletedProcess."""
    import subprocess

    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environment.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "mmlabel", *args], capture_output=True, text=True, env=environment, cwd=cwd or REPO
    )
