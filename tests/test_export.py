"""`mmlabel export` (mmlabel/export.py): the folder predicts, evaluates and loads exactly as its run does; its recipe
retrains the run exactly (the card's training command); the model card's figures are the run's, with mean ± std over
seeds where several ran, and it says when the photos were all blanked; `--push` goes as far as huggingface_hub's
upload call."""
import json
import shutil
import statistics

import pytest

from conftest import TINY, run_cli

FAST = ["--set", "train.epochs=2", "--set", "train.batch_size=4", "--set", "train.max_steps_per_epoch=3", *TINY]


@pytest.fixture(scope="module")
def seeds_run(small_synthetic, tmp_path_factory):
    """The tiny quickstart trained on seeds 1 and 2 (`train --seeds`), seed-1 exported."""
    root = tmp_path_factory.mktemp("export")
    result = run_cli("train", "recipes/quickstart.toml", "--out", str(root / "runs"), "--seeds", "1,2",
                     "--set", f"data.root={small_synthetic}", *FAST)
    assert result.returncode == 0, result.stderr
    exported = run_cli("export", str(root / "runs" / "seed-1"), str(root / "export"))
    assert exported.returncode == 0, exported.stderr
    return root / "runs", root / "export"


def test_the_export_predicts_and_evaluates_as_its_run(seeds_run, small_synthetic):
    from mmlabel.tagger import Tagger

    runs, export = seeds_run
    assert not (export / "checkpoint.pt").exists() and (export / "README.md").exists()
    run_test = json.loads((runs / "seed-1" / "metrics.json").read_text())["test"]
    evaluated = run_cli("evaluate", str(export), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout) == run_test  # evaluate reproduces a run's figures exactly
    original, handed_on = Tagger.load(runs / "seed-1"), Tagger.load(export)
    words = "the food here was great but the service slow".split()
    image = sorted((small_synthetic / "images").iterdir())[0]
    assert handed_on.predict(words, image=image) == original.predict(words, image=image)
    predicted = run_cli("predict", str(export), "--text", "the food here was great", "--image", str(image), "--json")
    assert predicted.returncode == 0, predicted.stderr
    expected = original.predict("the food here was great", image=image)
    assert [(span["start"], span["end"], span["label"]) for span in json.loads(predicted.stdout)] == \
        [(span.start, span.end, span.label) for span in expected]


def test_the_cards_training_command_retrains_the_run_exactly(seeds_run, tmp_path):
    runs, export = seeds_run
    card = (export / "README.md").read_text()
    assert "mmlabel train recipe.toml --seeds 1,2" in card
    again = run_cli("train", str(export / "recipe.toml"), "--out", str(tmp_path / "again"), "--json")
    assert again.returncode == 0, again.stderr
    original = json.loads((runs / "seed-1" / "metrics.json").read_text())
    assert json.loads(again.stdout)["test"] == original["test"] and json.loads(again.stdout)["dev"] == original["dev"]


def test_the_card_has_the_runs_figures_and_the_mean_and_std_over_seeds(seeds_run):
    runs, export = seeds_run
    card = (export / "README.md").read_text()
    metrics = json.loads((runs / "seed-1" / "metrics.json").read_text())
    assert f"| test (this model) | {metrics['test']['precision']:.2f} | {metrics['test']['recall']:.2f} | " \
           f"{metrics['test']['f1']:.2f} |" in card
    f1s = [json.loads((runs / f"seed-{seed}" / "metrics.json").read_text())["test"]["f1"] for seed in (1, 2)]
    assert f"{statistics.fmean(f1s):.2f} ± {statistics.stdev(f1s):.2f} |" in card.split("| test (mean ± std, 2 seeds)")[1]
    assert "`mmlabel:dtca`" in card and "Yu et al." in card and "AACL 2022" in card
    environment = json.loads((export / "environment.json").read_text())
    assert environment["exported_with"]["packages"]["torch"] and environment["trained_with"]["status"] == "finished"


def test_a_run_whose_photos_were_all_blanked_says_so(small_synthetic, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small_synthetic, data)
    shutil.rmtree(data / "images")
    (data / "images").mkdir()
    result = run_cli("train", "recipes/quickstart.toml", "--out", str(tmp_path / "run"), "--set", f"data.root={data}",
                     "--set", "data.missing_image=blank", *FAST, "--set", "train.epochs=1")
    assert result.returncode == 0, result.stderr
    assert run_cli("export", str(tmp_path / "run"), str(tmp_path / "export")).returncode == 0
    assert "- Trained without photos: every one of the 32 photos" in (tmp_path / "export" / "README.md").read_text()


def test_export_refuses_a_folder_that_is_not_empty(seeds_run, tmp_path):
    runs, _ = seeds_run
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    result = run_cli("export", str(runs / "seed-1"), str(tmp_path / "busy"))
    assert result.returncode == 2 and result.stderr.strip() == f"error: {tmp_path / 'busy'}: not empty; export into " \
                                                               "a new folder"


def test_push_creates_the_repository_and_uploads_the_folder(seeds_run, tmp_path, monkeypatch):
    """No network here: huggingface_hub's HfApi is replaced by a recorder at the two calls the upload makes."""
    import huggingface_hub

    runs, _ = seeds_run
    calls = []

    class RecordingApi:
        def create_repo(self, repo_id, **options):
            calls.append(("create_repo", repo_id, options))

        def upload_folder(self, **options):
            calls.append(("upload_folder", options["repo_id"], options))
            assert (tmp_path / "pushed" / "README.md").exists() and (tmp_path / "pushed" / "model.safetensors").exists()

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    result = run_cli("export", str(runs / "seed-1"), str(tmp_path / "pushed"), "--push", "someone/tiny-tagger")
    assert result.returncode == 0, result.stderr
    assert [(name, repo) for name, repo, _ in calls] == [("create_repo", "someone/tiny-tagger"),
                                                        ("upload_folder", "someone/tiny-tagger")]
    assert calls[1][2]["folder_path"] == str(tmp_path / "pushed") and calls[1][2]["repo_type"] == "model"
    assert "pushed: https://huggingface.co/someone/tiny-tagger" in result.stderr
