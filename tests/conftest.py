"""Shared fixtures: fake plugins registered for one test and unregistered after (simonw/llm's conftest)."""
import os
import sys
from pathlib import Path

import pytest

from mmlabel.hookspecs import hookimpl
from mmlabel.plugins import get_plugin_manager
from mmlabel.registry import ComponentConfig

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MMLABEL_DATA", REPO.parent / "shared" / "data"))


class EchoMetricConfig(ComponentConfig):
    scale: float = 1.0
    average: str = "micro"


class EchoMetric:
    """Counts exact matches (a fake metric of the test suite)."""

    name = "echo"
    Config = EchoMetricConfig

    def __init__(self, config: EchoMetricConfig):
        self.config = config


class FakePlugin:
    __name__ = "fake-plugin"

    @hookimpl
    def register_metrics(self, register):
        register("echo", EchoMetric)


@pytest.fixture
def fake_plugin():
    pm = get_plugin_manager()
    plugin = FakePlugin()
    pm.register(plugin, name="fake-plugin")
    try:
        yield plugin
    finally:
        pm.unregister(name="fake-plugin")


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None):
    """Run `python -m mmlabel` in a subprocess, as a user would; returns the CompletedProcess."""
    import subprocess

    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environment.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "mmlabel", *args], capture_output=True, text=True, env=environment, cwd=cwd or REPO
    )
