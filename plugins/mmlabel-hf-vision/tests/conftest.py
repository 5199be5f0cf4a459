"""Fixtures of the plugin's tests: the plugin as an installed distribution (found through its entry point) and a
small synthetic dataset. In CI the plugin is installed (`pip install -e plugins/mmlabel-hf-vision`); elsewhere it
is installed for the session into a temporary directory, leaving the environment as it was."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1]
REPO = PLUGIN.parents[1]  # the mmlabel repository that ships this plugin (for recipes/quickstart.toml)

# The encoder's module is imported by the contract tests whether or not the plugin is installed.
if str(PLUGIN) not in sys.path:
    sys.path.insert(0, str(PLUGIN))


@pytest.fixture(scope="session")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    """Environment variables under which `python -m mmlabel` finds the plugin through its entry point."""
    if _installed():
        return {"HF_HUB_OFFLINE": "1"}
    source = tmp_path_factory.mktemp("source") / PLUGIN.name
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests"))
    site = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(source)], check=True, capture_output=True)
    return {"HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}


@pytest.fixture(scope="session")
def mmlabel_cli(plugin_env):
    """Run `python -m mmlabel ARGS` in a subprocess with the plugin installed; returns the CompletedProcess."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        environment = {**os.environ, **plugin_env, **(env or {})}
        return subprocess.run([sys.executable, "-m", "mmlabel", *args], capture_output=True, text=True,
                              env=environment, cwd=REPO)

    return run


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory, mmlabel_cli) -> Path:
    """A small synthetic MABSA dataset (48/24/24 sentences with 64-pixel images)."""
    root = tmp_path_factory.mktemp("synthetic")
    result = mmlabel_cli("data", "synth", str(root), "--train", "48", "--dev", "24", "--test", "24", "--seed", "3")
    assert result.returncode == 0, result.stderr
    return root


def _installed() -> bool:
    """Whether a fresh interpreter finds the plugin's entry point (this one has the source folder on its path)."""
    code = "import importlib.metadata as m; print(any(e.name == 'hf_vision' for e in m.entry_points(group='mmlabel')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    return result.stdout.strip() == "True"
