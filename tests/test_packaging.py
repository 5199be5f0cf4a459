"""mmlabel as an installed package, not only as a checkout: the recipes and experiment files ship as package data
(the one copy in `recipes/`, installed as `mmlabel.recipes`) and commands find them by built-in name.

The sdist is built from the package's files, the wheel from the unpacked sdist (so both carry everything), and the
wheel is installed into a fresh folder and run from another directory (the `system` tests: pip builds)."""
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, TINY, run_cli
from mmlabel.errors import RecipeError
from mmlabel.recipe import load_recipe

SOURCES = ("pyproject.toml", "setup.py", "README.md", "mmlabel", "recipes")
RECIPES = sorted(str(path.relative_to(REPO / "recipes")) for path in (REPO / "recipes").rglob("*.toml"))
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The sdist (built from a copy of the package's files) and the wheel built from the unpacked sdist."""
    folder = tmp_path_factory.mktemp("build")
    source = folder / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    build = ("import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))")
    subprocess.run([sys.executable, "-c", build, str(folder / "dist")], cwd=source, check=True, capture_output=True)
    sdist = next((folder / "dist").glob("mmlabel-*.tar.gz"))
    with tarfile.open(sdist) as archive:
        archive.extractall(folder / "unpacked", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    unpacked = next((folder / "unpacked").iterdir())
    subprocess.run([*PIP, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(folder / "wheels"),
                    str(unpacked)], check=True, capture_output=True)
    return {"source": source, "sdist": sdist, "wheel": next((folder / "wheels").glob("mmlabel-*.whl"))}


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory) -> Path:
    """The wheel installed into a fresh folder (pip install --target)."""
    target = tmp_path_factory.mktemp("target")
    subprocess.run([*PIP, "install", "--no-deps", "--no-index", "--target", str(target), str(built["wheel"])],
                   check=True, capture_output=True)
    return target


def run_installed(target: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m mmlabel ARGS` with only the installed folder on PYTHONPATH (torch and the rest come from this
    interpreter's site-packages), from `cwd`."""
    env = {**os.environ, "PYTHONPATH": str(target)}
    return subprocess.run([sys.executable, "-m", "mmlabel", *args], capture_output=True, text=True, env=env, cwd=cwd)


@pytest.mark.system
def test_the_sdist_and_the_wheel_carry_every_recipe_and_experiment_file(built):
    with tarfile.open(built["sdist"]) as archive:
        sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {f"recipes/{name}" for name in RECIPES} <= sdist and "setup.py" in sdist
    wheel = set(zipfile.ZipFile(built["wheel"]).namelist())
    assert {f"mmlabel/recipes/{name}" for name in RECIPES} <= wheel
    assert "mmlabel/recipes/experiments/encoder-swap.toml" in wheel and "mmlabel/recipe_files.py" in wheel
    assert not any(name.startswith("recipes/") for name in wheel)  # inside the package, not a top-level folder


@pytest.mark.system
def test_the_wheel_carries_the_report_page_template_style_and_script(built):
    wheel = set(zipfile.ZipFile(built["wheel"]).namelist())
    assert {f"mmlabel/report/{name}" for name in ("page.html.j2", "report.css", "report.js")} <= wheel


@pytest.mark.system
def test_the_installed_wheel_reproduces_an_experiment_from_another_directory(installed, small_synthetic, tmp_path):
    """`mmlabel reproduce encoder-swap --tiny` (one cell, one seed, cut short) from a directory outside the
    checkout, with the wheel's files alone: the experiment file and its base recipe come from the package."""
    located = subprocess.run([sys.executable, "-c", "import mmlabel.recipe_files as r; print(r.builtin_folder())"],
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(installed)},
                             cwd=tmp_path, check=True)
    assert Path(located.stdout.strip()) == installed / "mmlabel" / "recipes"
    result = run_installed(installed, "reproduce", "encoder-swap", "--tiny", "--only", "text=BERT", "--only",
                           "image=ViT", "--seeds", "1", "--out", "X", "--set", f"data.root={small_synthetic}",
                           "--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=3", "--json",
                           cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    records = json.loads(result.stdout)
    assert [(r["cell"], r["status"]) for r in records] == [("dataset=synthetic__text=BERT__image=ViT", "finished")]
    results = (tmp_path / "X" / "results.csv").read_text().splitlines()
    assert len(results) == 2 and ",finished," in results[1]
    assert (tmp_path / "X" / "encoder-swap.png").exists() and not (REPO / "X").exists()


@pytest.mark.system
def test_the_installed_wheel_checks_a_built_in_recipe_by_name(installed, tmp_path):
    result = run_installed(installed, "recipe", "check", "dtca", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'name = "dtca"' in result.stdout and 'checkpoint = "roberta-base"' in result.stdout
    unknown = run_installed(installed, "recipe", "check", "dtcaa", cwd=tmp_path)
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: no recipe 'dtcaa': not a file, nor a "
                                                                 "built-in recipe; did you mean 'dtca'? ")
    assert len(unknown.stderr.strip().splitlines()) == 1


@pytest.mark.system
def test_an_editable_install_maps_the_recipes_package_onto_the_checkouts_folder(built, tmp_path):
    """`pip install -e`: `mmlabel.recipes` is the checkout's `recipes/` itself (no copy). Checked in an interpreter
    that sees the editable install and pluggy alone (-S: no site-packages), so that no other mmlabel answers."""
    import pluggy

    prefix, only_pluggy = tmp_path / "prefix", tmp_path / "pluggy-only"
    # --ignore-installed: with --prefix alone, pip uninstalls the mmlabel of the environment running the tests
    subprocess.run([*PIP, "install", "--no-deps", "--no-build-isolation", "--no-index", "--ignore-installed",
                    "--prefix", str(prefix), "-e", str(built["source"])], check=True, capture_output=True)
    only_pluggy.mkdir()
    (only_pluggy / "pluggy").symlink_to(Path(pluggy.__file__).parent)
    site = next(prefix.glob("lib/python*/site-packages"))
    probe = ("import importlib.util, site, sys; sys.path.append(sys.argv[2]); site.addsitedir(sys.argv[1]); "
             "import mmlabel.recipe_files as r; print(importlib.util.find_spec('mmlabel.recipes').origin); "
             "print(r.builtin_names('experiments'))")
    result = subprocess.run([sys.executable, "-S", "-c", probe, str(site), str(only_pluggy)], capture_output=True,
                            text=True, cwd=tmp_path,
                            env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr
    origin, names = result.stdout.splitlines()
    assert Path(origin) == built["source"] / "recipes" / "__init__.py"
    assert names == "['ablation', 'alpha-beta', 'encoder-swap', 'methods']"


# -- names and paths -----------------------------------------------------------------------------------------------
def test_a_built_in_name_loads_the_same_recipe_as_its_path():
    assert load_recipe("quickstart") == load_recipe(REPO / "recipes" / "quickstart.toml")
    assert load_recipe("dtca-twitter2017").loss.alpha == 0.3


def test_a_file_wins_over_a_built_in_name_and_a_missing_path_is_not_looked_up_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart").write_text('[train]\nepochs = 7\n')
    assert load_recipe("quickstart", resolve=False).train.epochs == 7
    with pytest.raises(RecipeError, match=r"^missing/dtca: no such recipe file$"):
        load_recipe("missing/dtca")
    with pytest.raises(RecipeError, match=r"^no recipe 'nothing-like-it': not a file, nor a built-in recipe; "
                                          r"built-in recipes: (.*, )?dtca, .*dtca-twitter2017, .*quickstart-text-only \(or"):
        load_recipe("nothing-like-it")


def test_an_experiment_file_names_its_recipe_by_path_relative_to_itself_or_by_built_in_name(tmp_path):
    from mmlabel.experiments.experiment_file import load_experiment

    (tmp_path / "base.toml").write_text('[train]\nepochs = 2\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mine.toml").write_text('recipe = "../base.toml"\n[grid]\n"loss.alpha" = [0.1]\n')
    (tmp_path / "named.toml").write_text('recipe = "quickstart"\n[grid]\n"loss.alpha" = [0.1]\n')
    assert load_experiment(str(tmp_path / "sub" / "mine.toml")).recipe == tmp_path / "base.toml"
    assert load_experiment(str(tmp_path / "named.toml")).recipe.read_text() == \
        (REPO / "recipes" / "quickstart.toml").read_text()
    (tmp_path / "broken.toml").write_text('recipe = "../nowhere.toml"\n[grid]\n"loss.alpha" = [0.1]\n')
    with pytest.raises(RecipeError, match="nowhere.toml: no such recipe file"):
        load_experiment(str(tmp_path / "broken.toml"))


def test_train_accepts_a_built_in_name_from_any_directory(small_synthetic, tmp_path):
    result = run_cli("train", "quickstart", "--out", str(tmp_path / "run"), "--set", f"data.root={small_synthetic}",
                     "--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=2", *TINY, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "finished"
    assert "[train]" in (tmp_path / "run" / "recipe.toml").read_text()
