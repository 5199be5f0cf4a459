"""The plugin guide cannot drift from the code: its example plugin is built from docs/writing-plugins.md's own code
blocks, its tests run unregistered-then-registered in a fixture, and, installed into a temporary directory (the
environment is left as it was), it trains the tiny quickstart."""
import ast
import json
import os
import re
import subprocess
import sys

import pytest

import mmlabel
from conftest import REPO, SHORT, run_cli

GUIDE = REPO / "docs" / "writing-plugins.md"
# ```python title="mmlabel_pixel_patches/encoder.py"  ...  ```
FILE_BLOCK = re.compile(r'^```\w+ title="([^"]+)"\n(.*?)^```$', re.MULTILINE | re.DOTALL)


def guide_files() -> dict[str, str]:
    return dict(FILE_BLOCK.findall(GUIDE.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The example plugin's folder, written from the guide's code blocks."""
    root = tmp_path_factory.mktemp("guide") / "mmlabel-pixel-patches"
    for name, text in guide_files().items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def installed(package, tmp_path_factory):
    """The example plugin installed as pip installs it, into a directory of its own: PYTHONPATH for a subprocess."""
    source = tmp_path_factory.mktemp("source")
    subprocess.run(["cp", "-r", str(package), str(source)], check=True)  # pip builds in the tree: keep `package` clean
    site = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(source / package.name)], check=True, capture_output=True)
    assert (site / "mmlabel_pixel_patches-0.1.0.dist-info" / "entry_points.txt").exists()
    return {"PYTHONPATH": str(site)}


def test_the_guide_holds_a_whole_plugin():
    assert set(guide_files()) == {"pyproject.toml", "mmlabel_pixel_patches/__init__.py",
                                  "mmlabel_pixel_patches/encoder.py", "mmlabel_pixel_patches/loss.py",
                                  "mmlabel_pixel_patches/head.py", "tests/test_pixel_patches.py"}


def test_the_public_names_the_guide_lists_are_public():
    table = GUIDE.read_text(encoding="utf-8").split("## The public interface")[1].split("\n## ")[0]
    first_cells = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    listed = {name for cell in first_cells for name in re.findall(r"`(\w+)", cell)}
    assert listed >= {"hookimpl", "lazy", "ComponentConfig", "ComponentError", "get_plugin_manager", "WordCRF", "get"}
    for name in listed:
        assert name in mmlabel.__all__ and getattr(mmlabel, name) is not None, name


def test_the_guides_own_tests_pass_with_the_plugin_registered_in_a_fixture(package, tmp_path):
    """Every test function of the guide's tests/ runs (each parameter of a parametrized one) and passes, with no
    installed plugin loaded (MMLABEL_PLUGINS is empty): the guide's fixture registers it."""
    import xml.etree.ElementTree as ElementTree

    tests = package / "tests" / "test_pixel_patches.py"
    functions = {node.name: node for node in ast.parse(tests.read_text()).body
                 if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}
    expected = {name: _parameter_rows(node) for name, node in functions.items()}
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package), str(REPO)]), "MMLABEL_PLUGINS": ""}
    report = tmp_path / "report.xml"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                             "tests"], cwd=package, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    cases = ElementTree.parse(report).getroot().iter("testcase")
    outcomes = [(case.get("name").partition("[")[0], [child.tag for child in case]) for case in cases]
    assert all(tags == [] for _, tags in outcomes), outcomes  # no failure, error or skip
    ran = {name: sum(1 for case, _ in outcomes if case == name) for name in expected}
    assert ran == expected and len(outcomes) == sum(expected.values())
    assert expected["test_every_component_passes_the_conformance_kit"] == 3  # the kit on each of the components


def _parameter_rows(function) -> int:
    """How many tests pytest makes of a test function: the length of its one parametrize list, else 1."""
    for decorator in function.decorator_list:
        if isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", "") == "parametrize":
            return len(decorator.args[1].elts)
    return 1


@pytest.mark.system
def test_the_installed_plugin_trains_the_quickstart(installed, synthetic, tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", "recipes/quickstart.toml", "--out", str(out), "--set", f"data.root={synthetic}",
                     "--set", 'image_encoder={name = "pixel_patches", image_size = 64, patch_size = 8}',
                     "--set", "alignment_loss.name=mean_cosine", "--set", 'fusion_head={name = "mean_image"}',
                     *SHORT, env=installed)
    assert result.returncode == 0, result.stderr
    recipe = (out / "recipe.toml").read_text()
    assert 'name = "pixel_patches"' in recipe and 'name = "mean_cosine"' in recipe and 'name = "mean_image"' in recipe
    assert json.loads((out / "architecture.json").read_text())["image_encoder"] == {
        "image_size": 64, "patch_size": 8, "hidden_size": 32}
    assert json.loads((out / "metrics.json").read_text())["best_epoch"] == 1
