"""The commands of docs/training.md's "Tracking", "Tuning" and "Sharing a tagger" sections run as written: every
`mmlabel` line of their bash blocks, in order, with only the suite's fast settings appended to those that train (the
tiny encoders on the 16/8/8 data, short epochs), `runs/` put in a temporary folder and `photo.png` one of the data's
photos; the folders the other lines open (`tensorboard --logdir`) exist."""
import re
import shlex

import pytest

from conftest import REPO, TINY, run_cli

# Whole documented workflows (a search of 8 trials with 3 final seeds, an MLflow store created, an export): about
# 20 s, kept out of the quick loop; tests/test_tracking.py, test_tune.py and test_export.py cover the same code there.
pytestmark = pytest.mark.system
pytest.importorskip("optuna")
pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")

FAST = ["--set", "train.epochs=2", "--set", "train.batch_size=4", "--set", "train.max_steps_per_epoch=2", *TINY]


def section_commands(title: str) -> list[str]:
    text = (REPO / "docs" / "training.md").read_text(encoding="utf-8")
    section = text.split(f"\n## {title}\n")[1].split("\n## ")[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


@pytest.mark.parametrize("title", ["Tracking", "Tuning", "Sharing a tagger"])
def test_the_sections_commands_run_as_written(title, small_synthetic, tmp_path):
    commands = section_commands(title)
    assert any(command.startswith("mmlabel ") for command in commands)
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    for command in commands:
        photo = str(sorted((small_synthetic / "images").iterdir())[0])
        words = [word.replace("runs/", f"{tmp_path}/runs/").replace("photo.png", photo) for word in shlex.split(command)]
        words = [str(REPO / word) if word.startswith("recipes/") else word for word in words]
        if words[0] == "mmlabel":  # in the temporary folder: default outputs and MLflow's ./mlruns land there
            trains = words[1] in ("train", "tune")
            result = run_cli(*words[1:], *(["--set", f"data.root={small_synthetic}", *FAST] if trains else []), env=env,
                             cwd=tmp_path)
            assert result.returncode == 0, (command, result.stderr)
        elif words[0] == "tensorboard":
            logdir = words[words.index("--logdir") + 1]
            assert list((tmp_path / "runs").rglob("events.out.tfevents.*")) and logdir.startswith(str(tmp_path))
            assert any(path.name.startswith("events.out") for path in (tmp_path / logdir).rglob("*")), command
        else:
            assert words[0] == "mlflow", command  # the UI: not run here (it serves until stopped)
