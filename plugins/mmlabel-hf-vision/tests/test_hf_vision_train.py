"""The installed plugin end to end: discovered through its entry point, listed with its distribution, and the tiny
quickstart trained with `--set image_encoder.name=hf_vision` and a tiny CLIP vision tower, then evaluated."""
import json
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parents[3] / "recipes" / "quickstart.toml"  # the repository's
# The quickstart's [image_encoder] section carries timm's keys (model, pretrained, model_args); hf_vision takes the
# same keys, so switching the name and the model (and the config fields to override) is all it takes.
TINY_CLIP = ["--set", "image_encoder.name=hf_vision", "--set", "image_encoder.model=clip_vision_model",
             "--set", "image_encoder.model_args={image_size = 64, patch_size = 8, hidden_size = 64, "
                      "num_hidden_layers = 2, num_attention_heads = 2, intermediate_size = 128}"]
SHORT = ["--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=6"]

pytestmark = pytest.mark.skipif(not QUICKSTART.exists(), reason="needs the mmlabel repository's recipes/")


def test_list_shows_hf_vision_from_the_plugin_distribution(mmlabel_cli):
    result = mmlabel_cli("list", "image_encoder")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "hf_vision" in line)
    assert "image_encoder" in row and "mmlabel-hf-vision 0.1.0" in row


def test_plugins_lists_the_distribution_and_its_component(mmlabel_cli):
    result = mmlabel_cli("plugins")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["hf_vision"]["distribution"] == "mmlabel-hf-vision"
    assert rows["hf_vision"]["components"] == {"image_encoder": ["hf_vision"]}
    assert not rows["hf_vision"]["builtin"]


@pytest.fixture(scope="module")
def trained(mmlabel_cli, synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "hf-vision"
    result = mmlabel_cli("train", str(QUICKSTART), "--out", str(out), "--set", f"data.root={synthetic}",
                         *TINY_CLIP, *SHORT)
    assert result.returncode == 0, result.stderr
    return out


def test_the_quickstart_trains_with_a_tiny_clip_vision_tower(trained):
    recipe = (trained / "recipe.toml").read_text()
    assert 'name = "hf_vision"' in recipe and 'model = "clip_vision_model"' in recipe
    architecture = json.loads((trained / "architecture.json").read_text())
    assert architecture["image_encoder"]["model"] == "./image_encoder"  # rebuilt from the run, with no download
    config = json.loads((trained / "image_encoder" / "config.json").read_text())
    assert config["model_type"] == "clip_vision_model" and config["hidden_size"] == 64
    assert json.loads((trained / "metrics.json").read_text())["best_epoch"] == 1


def test_evaluate_rebuilds_the_run_and_reproduces_its_test_figures(mmlabel_cli, trained):
    result = mmlabel_cli("evaluate", str(trained), "--split", "test", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads((trained / "metrics.json").read_text())["test"]


def test_without_the_plugin_the_same_command_names_the_install_command(mmlabel_cli, synthetic, tmp_path):
    result = mmlabel_cli("train", str(QUICKSTART), "--out", str(tmp_path / "run"), "--set", f"data.root={synthetic}",
                         *TINY_CLIP, *SHORT, env={"MMLABEL_PLUGINS": ""})
    assert result.returncode == 2
    assert "install it with `pip install ./plugins/mmlabel-hf-vision`" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
