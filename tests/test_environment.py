"""The environment of every run (issue 29): run.json records Python, the packages, mmlabel and the plugins with
their versions, the device and the git commit of the recipe's folder; `mmlabel env` prints the current one;
`evaluate`, `predict` and `train --resume` note, in one line, the versions that differ from the run's."""
import json
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from conftest import REPO, SHORT, TINY, run_cli, train_run

NOTE = "was trained with"


def git(folder: Path, *args: str) -> str:
    command = ["git", "-C", str(folder), "-c", "user.name=test", "-c", "user.email=test@example.org", *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def new_repository(folder: Path, files: dict[str, str]) -> str:
    """A git repository in `folder` with `files` committed; its HEAD."""
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    git(folder, "init", "-q")
    git(folder, "add", ".")
    git(folder, "commit", "-q", "-m", "recipe")
    return git(folder, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def git_run(small_synthetic, tmp_path_factory):
    """A tiny run of the quickstart recipe kept in a new git repository: (run directory, recipe, the overrides,
    the repository's HEAD)."""
    root = tmp_path_factory.mktemp("environment")
    head = new_repository(root / "repo", {"quickstart.toml": (REPO / "recipes" / "quickstart.toml").read_text()})
    recipe, overrides = root / "repo" / "quickstart.toml", ["--set", f"data.root={small_synthetic}", *SHORT, *TINY]
    train_run(root / "run", str(recipe), *overrides)
    return root / "run", recipe, overrides, head


def test_run_json_records_versions_device_and_the_recipe_folders_commit(git_run):
    import timm
    import torch
    import transformers

    import mmlabel
    from mmlabel.device import resolve_device
    from mmlabel.plugins import plugins

    run, _, _, head = git_run
    recorded = json.loads((run / "run.json").read_text())["environment"]
    assert recorded["mmlabel"] == mmlabel.__version__
    assert recorded["packages"]["torch"] == metadata.version("torch") and torch.__version__.startswith(
        recorded["packages"]["torch"].split("+")[0])
    assert recorded["packages"]["transformers"] == transformers.__version__
    assert recorded["packages"]["timm"] == timm.__version__
    assert recorded["plugins"] == {info.name: {"distribution": info.distribution, "version": info.version}
                                   for info in plugins() if info.error is None}
    assert recorded["plugins"]["mmlabel.fusion"]["distribution"] == "mmlabel"
    device = recorded["device"]
    assert device["type"].startswith(resolve_device("auto").type) and device["name"] and device["cpu"]
    assert recorded["git"] == {"commit": head, "dirty": False}


def test_git_commit_is_absent_outside_a_repository_and_dirty_after_an_edit(tmp_path):
    from mmlabel.environment import git_commit

    assert git_commit(tmp_path) is None  # no error either
    head = new_repository(tmp_path / "repo", {"recipe.toml": "[train]\nlr = 1e-3\n"})
    (tmp_path / "repo" / "notes.txt").write_text("untracked files do not make a tree dirty")
    assert git_commit(tmp_path / "repo") == {"commit": head, "dirty": False}
    (tmp_path / "repo" / "recipe.toml").write_text("[train]\nlr = 2e-3\n")
    assert git_commit(tmp_path / "repo") == {"commit": head, "dirty": True}


def test_env_prints_the_current_environment(tmp_path):
    from mmlabel.environment import software

    shown = run_cli("env", "--json")
    assert shown.returncode == 0, shown.stderr
    found = json.loads(shown.stdout)
    assert set(found) == {"python", "platform", "mmlabel", "packages", "plugins", "device", "git"}
    assert {"torch", "transformers", "timm"} <= set(found["packages"]) and {"type", "name", "cpu"} <= set(found["device"])
    assert found["git"]["commit"] == git(REPO, "rev-parse", "HEAD")  # the checkout the tests run in
    outside = json.loads(run_cli("env", str(tmp_path), "--json").stdout)
    assert "git" not in outside and outside["packages"] == software()["packages"]
    lines = run_cli("env", str(tmp_path)).stdout.splitlines()
    assert any(line.split() == ["torch", metadata.version("torch")] for line in lines)
    assert lines[-1].split(maxsplit=1) == ["git", "not inside a git repository"]
    missing = run_cli("env", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr == f"error: {tmp_path / 'nowhere'}: no such folder (the folder whose git commit to show; " \
                             "default: this one)\n"


def older_copy(run: Path, folder: Path) -> Path:
    """A copy of `run` whose run.json says it trained with torch 2.5.0 and transformers 4.46.0 (its recipe naming
    the copy's own tokenizer, learnt into the run, so that it resumes)."""
    copy = folder / "older"
    shutil.copytree(run, copy)
    recipe = (copy / "recipe.toml").read_text()
    (copy / "recipe.toml").write_text(recipe.replace(str(run.resolve()), str(copy.resolve())))
    info = json.loads((copy / "run.json").read_text())
    info["environment"]["packages"] |= {"torch": "2.5.0", "transformers": "4.46.0"}
    (copy / "run.json").write_text(json.dumps(info))
    return copy


def test_evaluate_predict_and_resume_note_the_versions_that_differ(git_run, tmp_path):
    from mmlabel.environment import software

    run, recipe, overrides, _ = git_run
    untouched = run_cli("evaluate", str(run), "--split", "dev", "--json")
    assert untouched.returncode == 0 and NOTE not in untouched.stderr
    older = older_copy(run, tmp_path)
    now = software()["packages"]
    expected = (f"note: {older} was trained with torch 2.5.0, transformers 4.46.0; "
                f"this is torch {now['torch']}, transformers {now['transformers']}")
    for args in (["evaluate", str(older), "--split", "dev", "--json"], ["predict", str(older), "--text", "a b c"],
                 ["train", str(recipe), "--out", str(older), "--resume", *overrides, "--json"]):
        result = run_cli(*args)
        assert result.returncode == 0, result.stderr
        assert [line for line in result.stderr.splitlines() if NOTE in line] == [expected], args[0]


def test_version_changes_name_plugins_and_missing_packages():
    from mmlabel.environment import note_version_changes, software, version_changes
    from mmlabel.log import MMLabelNote

    current = software()
    recorded = json.loads(json.dumps(current))
    recorded["packages"]["timm"] = "0.9.0"
    recorded["plugins"]["gone"] = {"distribution": "mmlabel-gone", "version": "1.0"}
    assert version_changes(recorded, current) == [("timm", "0.9.0", current["packages"]["timm"]),
                                                  ("mmlabel-gone", "1.0", None)]
    with pytest.warns(MMLabelNote, match=r"runs/x was trained with timm 0\.9\.0, mmlabel-gone 1\.0; this is timm "
                                         r"\S+, mmlabel-gone not installed$"):
        note_version_changes("runs/x", {"environment": recorded}, current)
    assert version_changes(current, current) == []
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        note_version_changes("runs/x", {"status": "finished"})  # recorded before run.json kept the environment
