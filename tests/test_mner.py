"""Multimodal NER on the same toolkit: the MNER recipes train, evaluate and predict with tiny encoders on the real
Twitter annotations (blank images: the photos are not distributed with the data)."""
import json

import pytest

from conftest import DATA, run_cli

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not (DATA / "mner").is_dir(), reason=f"the MNER annotations are not in {DATA / 'mner'}"),
]

TINY = [
    "--set", "text_encoder.init=random", "--set", "text_encoder.model_type=bert", "--set", "text_encoder.tokenizer=train",
    "--set", "text_encoder.config_overrides={hidden_size=32, num_hidden_layers=1, num_attention_heads=2, "
             "intermediate_size=64}",
    "--set", "image_encoder.model=vit_tiny_patch16_224", "--set", "image_encoder.pretrained=false",
    "--set", "image_encoder.model_args={img_size=32, patch_size=16, depth=1, embed_dim=32, num_heads=2}",
    "--set", "fusion_head.heads=2", "--set", "alignment_loss.name=sinkhorn",
    "--set", "data.missing_image=blank", "--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=8",
    "--set", "train.batch_size=8", "--set", "train.lr=1e-3",
]


def _slice(year: str, directory, sentences: int = 120):
    """The first sentences of each split of the real data, in a temporary folder (never in the repository)."""
    from mmlabel.registry import build

    reader = build("dataset_reader", "conll")
    directory.mkdir()
    for split, path in reader.find_splits(DATA / "mner" / f"twitter{year}").items():
        reader.write(reader.read(path)[:sentences], directory / path.name)
    return directory


@pytest.mark.parametrize("year", ["2015", "2017"])
def test_mner_recipe_trains_evaluates_and_predicts(year, tmp_path):
    out = tmp_path / f"mner{year}"
    env = {"MMLABEL_DATA": str(DATA)}
    root = _slice(year, tmp_path / "slice")
    result = run_cli("train", f"recipes/mner-twitter{year}.toml", "--out", str(out), *TINY,
                     "--set", f"data.root={root}", env=env)
    assert result.returncode == 0, result.stderr
    tags = json.loads((out / "tags.json").read_text())
    types = {"2015": {"PER", "LOC", "ORG", "OTHER"}, "2017": {"PER", "LOC", "ORG", "MISC"}}[year]
    assert tags["scheme"] == "bio" and set(tags["labels"]) == types
    assert len(tags["tags"]) == 2 * len(types) + 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]["per_type"]) == types
    evaluated = run_cli("evaluate", str(out), "--json", env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout) == metrics["test"]
    source = tmp_path / "posts.jsonl"
    source.write_text(json.dumps({"text": "Kevin Durant visits New York", "image": "none.jpg"}) + "\n")
    predicted = run_cli("predict", str(out), "--input", str(source), "--output", str(tmp_path / "out.jsonl"), env=env)
    # the image is missing and the run's policy is `blank`, so prediction goes on with a blank image
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads((tmp_path / "out.jsonl").read_text())["tokens"] == "Kevin Durant visits New York".split()
