"""`mmlabel data prepare` and `mmlabel data verify`: the photos of a recipe stored ahead with one summary of the
missing and unreadable ones, a manifest that verifies and then fails once a photo changes, one-line errors with exit
code 2 for bad input; and a training run whose photos are decoded once, in its first epoch or by an earlier run."""
import hashlib
import json
import shutil

import pytest

from conftest import run_cli, run_command



@pytest.fixture
def data(synthetic, tmp_path, monkeypatch):
    """The synthetic dataset with one dev photo missing and one that is not an image; the store in a fresh cache."""
    monkeypatch.setenv("MMLABEL_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "data"
    shutil.copytree(synthetic, root)
    (root / "images" / "dev-0001.png").unlink()
    (root / "images" / "dev-0002.png").write_bytes(b"<html>not found</html>")
    return root


def test_prepare_stores_every_photo_once_and_summarises_the_missing_and_unreadable_ones(data, tmp_path, capsys):
    manifest = tmp_path / "photos.tsv"
    code, out, err = run_command("data", "prepare", "recipes/quickstart.toml", "--set", f"data.root={data}",
                         "--manifest", manifest)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"image store: {tmp_path / 'cache' / 'images'}")
    assert lines[1].startswith("96 photos: 94 decoded, 0 already stored; 1 missing (dev-0001.png); 1 unreadable "
                               "(dev-0002.png: not a readable image (UnidentifiedImageError: cannot identify image file "
                               "dev-0002.png))")
    assert "data.missing_image = \"error\"" in lines[2]  # the quickstart's policy would stop training on them
    assert lines[3] == (f"manifest: {manifest} (95 photos); check it with: mmlabel data verify {manifest} --images "
                        f"{data / 'images'}")
    rows = manifest.read_text().splitlines()
    assert rows[0] == "file\tsize\tsha256" and len(rows) == 96
    name, size, sha = rows[1].split("\t")
    content = (data / "images" / name).read_bytes()
    assert (int(size), sha) == (len(content), hashlib.sha256(content).hexdigest())
    assert "dev-0001.png" not in manifest.read_text()  # missing: nothing to list
    code, out, _ = run_command("data", "prepare", "recipes/quickstart.toml", "--set", f"data.root={data}",
                       "--manifest", manifest)
    assert code == 0 and "96 photos: 0 decoded, 94 already stored" in out


def test_a_manifest_verifies_until_a_photo_changes(data, tmp_path):
    manifest = tmp_path / "photos.tsv"
    assert run_command("data", "prepare", "recipes/quickstart.toml", "--set", f"data.root={data}",
               "--manifest", manifest)[0] == 0
    code, out, err = run_command("data", "verify", manifest, "--images", data / "images")
    assert (code, out.strip()) == (0, f"all 95 photos of {manifest} match"), err
    # like sha256sum -c: names are read from the current directory by default
    assert run_command("data", "verify", manifest, cwd=data / "images")[0] == 0
    photo = data / "images" / "train-0003.png"
    photo.write_bytes(photo.read_bytes()[:-1] + bytes([photo.read_bytes()[-1] ^ 1]))  # same size, one bit
    (data / "images" / "test-0000.png").unlink()
    code, out, _ = run_command("data", "verify", manifest, cwd=data / "images")
    assert code == 1
    assert out.strip() == (f"2 of 95 photos of {manifest} do not match: 1 missing (test-0000.png), 1 changed "
                           f"(train-0003.png)")


@pytest.mark.parametrize("problem", ["no manifest", "not a manifest", "bad line", "no image folder"])
def test_verify_refuses_bad_input_in_one_line_with_exit_code_2(problem, tmp_path, capsys):
    manifest = tmp_path / "photos.tsv"
    images = tmp_path
    if problem == "not a manifest":
        manifest.write_text("name,size\n")
    elif problem == "bad line":
        manifest.write_text("file\tsize\tsha256\na.png\t12\tnot-a-hash\n")
    elif problem == "no image folder":
        manifest.write_text("file\tsize\tsha256\n")
        images = tmp_path / "elsewhere"
    code, out, err = run_command("data", "verify", manifest, "--images", images)
    expected = {"no manifest": f"{manifest}: cannot read the manifest: No such file or directory",
                "not a manifest": f"{manifest}:1: not a photo manifest",
                "bad line": f"{manifest}:2: expected file<TAB>size<TAB>sha256",
                "no image folder": f"{images}: no such image folder"}[problem]
    assert code == 2 and out == "" and err.startswith(f"error: {expected}") and err.count("\n") == 1


def test_prepare_refuses_a_text_only_recipe_in_one_line(data, capsys):
    code, _, err = run_command("data", "prepare", "recipes/quickstart.toml", "--set", f"data.root={data}",
                       "--set", "image_encoder=none")
    assert code == 2 and "no image encoder" in err and err.count("\n") == 1


def test_a_training_run_decodes_its_photos_once(synthetic, tmp_path):
    """log.jsonl's `images` record: the run decodes every photo of train, dev and test before its first epoch and
    none after (flat over the epochs); a second run with the same cache finds them all stored."""
    env = {"MMLABEL_CACHE": str(tmp_path / "cache")}
    short = ["--set", f"data.root={synthetic}", "--set", "train.epochs=2", "--set", "train.max_steps_per_epoch=2",
             "--set", "train.patience=5"]
    for run_name, expected in (("first", {"decoded": 96, "stored": 0}), ("second", {"decoded": 0, "stored": 96})):
        out = tmp_path / run_name
        result = run_cli("train", "recipes/quickstart.toml", "--out", str(out), *short, env=env)
        assert result.returncode == 0, result.stderr
        records = [json.loads(line)["images"] for line in (out / "log.jsonl").read_text().splitlines()]
        assert len(records) == 2
        for record in records:
            assert {key: record[key] for key in expected} == expected
            assert record["blank"] == record["missing"] == record["unreadable"] == 0
