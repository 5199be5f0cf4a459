"""Bad recipes and command lines end in one line naming what is wrong, and exit code 2 (no traceback: the error is
printed by `cli.main`, which `--debug` bypasses). The cases test_recipe, test_cli and test_train already cover
(unknown component, misspelt option, missing recipe, an --out holding a run, an incomplete run) are not repeated."""
import json
import os

import pytest

from mmlabel.cli import main


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from mmlabel.data.synth import write_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic(root, train=8, dev=4, test=4, seed=3)
    return root


def fails(capsys, *args) -> str:
    """Run the command line in-process; it must exit 2 with one error line, which is returned."""
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def fake_run(path, format_version=1):
    """A directory with every file of a finished run (empty but for run.json)."""
    path.mkdir()
    for name in ("recipe.toml", "tags.json", "architecture.json", "model.safetensors"):
        (path / name).write_text("")
    (path / "run.json").write_text(json.dumps({"mmlabel": "9.0", "format": format_version, "status": "finished"}))
    return path


@pytest.mark.parametrize("override, message", [
    ("train.lrr=1", "unknown key train.lrr (did you mean train.lr?)"),
    ("train.epochs=many", "train.epochs: Input should be a valid integer"),
    ("train.on_nonfinite=ignore", "train.on_nonfinite: Input should be 'stop' or 'skip'"),
    ("fusion_head.name=dtcaa", "fusion_head.name: unknown fusion_head 'dtcaa'"),
])
def test_a_bad_override_names_its_key(capsys, tmp_path, override, message):
    error = fails(capsys, "train", "recipes/quickstart.toml", "--out", str(tmp_path / "run"), "--set", override)
    assert message in error and "recipes/quickstart.toml" in error
    assert not (tmp_path / "run").exists()


def test_a_missing_data_root_is_named(capsys, tmp_path):
    error = fails(capsys, "train", "recipes/quickstart.toml", "--out", str(tmp_path / "run"),
                  "--set", f"data.root={tmp_path / 'nowhere'}")
    assert error == f"error: data.root: no such directory: {tmp_path / 'nowhere'}"


def test_an_out_directory_holding_other_files_is_refused(capsys, synthetic, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    error = fails(capsys, "train", "recipes/quickstart.toml", "--out", str(tmp_path), "--set", f"data.root={synthetic}")
    assert "not empty and holds no mmlabel run" in error
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


def test_resume_with_another_recipe_is_refused(capsys, synthetic, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "recipe.toml").write_text("[train]\nepochs = 99\n")
    error = fails(capsys, "train", "recipes/quickstart.toml", "--out", str(tmp_path / "run"), "--resume",
                  "--set", f"data.root={synthetic}")
    assert "--resume with a recipe that differs from the run's recipe.toml" in error


@pytest.mark.parametrize("command", [["evaluate"], ["predict", "--text", "a fine day"]])
def test_a_run_from_an_incompatible_version_is_refused(capsys, tmp_path, command):
    run = fake_run(tmp_path / "run", format_version=99)
    error = fails(capsys, command[0], str(run), *command[1:])
    assert error.endswith("run format 99 written by mmlabel 9.0 cannot be read by mmlabel "
                          f"{__import__('mmlabel').__version__} (format 1)")


@pytest.mark.parametrize("command", [["evaluate"], ["predict", "--text", "a fine day"]])
def test_an_incomplete_or_missing_run_is_refused(capsys, tmp_path, command):
    run = fake_run(tmp_path / "run")
    (run / "model.safetensors").unlink()
    assert fails(capsys, command[0], str(run), *command[1:]) == f"error: {run}: incomplete run: model.safetensors is missing"
    missing = tmp_path / "nowhere"
    assert fails(capsys, command[0], str(missing), *command[1:]) == f"error: {missing}: no such run directory"


def test_debug_shows_the_traceback_instead(tmp_path):
    from mmlabel.errors import DataError

    try:
        with pytest.raises(DataError):
            main(["--debug", "train", "recipes/quickstart.toml", "--out", str(tmp_path / "run"),
                  "--set", f"data.root={tmp_path / 'nowhere'}"])
    finally:
        os.environ.pop("MMLABEL_DEBUG", None)  # --debug sets it for the process


@pytest.mark.parametrize("command", [["data", "stats", "{data}"], ["data", "convert", "{data}", "{out}"],
                                     ["score", "{data}", "{data}/test.txt"], ["bench", "train", "--data", "{data}"]])
def test_a_misspelt_format_is_named_by_every_command_that_reads_data(capsys, synthetic, tmp_path, command):
    """`-f` is the same option everywhere: the reader's name, checked against the registry before any work."""
    args = [word.format(data=synthetic, out=tmp_path / "out") for word in command]
    line = fails(capsys, *args, "-f", "jmll")
    assert line.startswith("error: unknown dataset_reader 'jmll'") and "did you mean 'jml'" in line, line
    assert not (tmp_path / "out").exists()
