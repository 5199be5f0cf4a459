"""The synthetic dataset: deterministic, readable by the jml reader, and built so that the image decides a known
share of the sentiments."""
import json

import numpy as np
import pytest
from PIL import Image

from mmlabel.data.example import Example, Span
from mmlabel.data.synth import DISC_COLOURS, SyntheticPost, make_posts, text_only_ceiling, write_synthetic
from mmlabel.registry import build


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = write_synthetic(out, train=60, dev=20, test=30, seed=5)
    return out, summary


def test_layout_is_what_the_jml_reader_finds(synthetic):
    out, summary = synthetic
    reader = build("dataset_reader", "jml")
    splits = reader.find_splits(out)
    assert splits == {split: out / f"{split}.txt" for split in ("train", "dev", "test")}
    examples = reader.read(splits["test"])
    assert len(examples) == summary["test"]["sentences"] == 30
    assert all((out / "images" / example.image).is_file() for example in examples)
    assert json.loads((out / "synth.json").read_text())["splits"] == summary


def test_same_seed_same_files_other_seed_other_files(synthetic, tmp_path):
    out, _ = synthetic
    write_synthetic(tmp_path / "again", train=60, dev=20, test=30, seed=5)
    write_synthetic(tmp_path / "other", train=60, dev=20, test=30, seed=6)
    assert (tmp_path / "again" / "train.txt").read_bytes() == (out / "train.txt").read_bytes()
    assert (tmp_path / "again" / "images" / "dev-0003.png").read_bytes() == (out / "images" / "dev-0003.png").read_bytes()
    assert (tmp_path / "other" / "train.txt").read_bytes() != (out / "train.txt").read_bytes()


def test_image_decided_aspects_have_no_sentiment_word_and_a_disc_of_their_colour(synthetic):
    out, _ = synthetic
    posts = make_posts(30, 5, "test")
    image_posts = [post for post in posts if post.image_aspect is not None]
    assert image_posts and len(image_posts) < len(posts)
    for post in posts:
        pixels = np.asarray(Image.open(out / "images" / post.example.image)).astype(int).reshape(-1, 3)
        coloured = pixels[(pixels.max(axis=1) - pixels.min(axis=1)) > 60]
        if post.image_aspect is None:
            assert len(coloured) == 0  # grey only: the image tells nothing
            continue
        label = post.example.spans[post.image_aspect].label
        mean = coloured.mean(axis=0)
        nearest = min(DISC_COLOURS, key=lambda name: np.abs(mean - DISC_COLOURS[name]).sum())
        assert nearest == label


def test_the_share_of_image_decided_aspects_is_near_the_target():
    posts = make_posts(2000, 1, "train", image_share=0.5)
    aspects = sum(len(post.example.spans) for post in posts)
    share = sum(post.image_aspect is not None for post in posts) / aspects
    assert 0.46 < share < 0.54
    assert 64 < text_only_ceiling(posts) < 70


def test_text_only_ceiling_hand_computed():
    def post(n_spans, image):
        return SyntheticPost(Example("x", ["w"] * 4, "x.png", [Span(i, i + 1, "POS") for i in range(n_spans)]), image)

    # 3 text aspects, 1 image aspect: guessing gives (3 + 1/3) / 4 = 83.3; leaving it out 6/7 = 85.7
    assert text_only_ceiling([post(2, None), post(2, 0)]) == pytest.approx(600 / 7)
    # 1 text aspect, 2 image aspects: guessing (1 + 2/3) / 3 = 55.6 beats leaving them out (2/4 = 50)
    assert text_only_ceiling([post(1, None), post(1, 0), post(1, 0)]) == pytest.approx(500 / 9)


def test_a_second_process_writing_the_cached_dataset_at_once_keeps_the_first_ones(tmp_path, monkeypatch):
    """Two runs start at once on a machine without the cached dataset (`mmlabel sweep --jobs 2` on a fresh machine,
    two test runs): both write it. The one that finishes second must leave the first one's files alone, which that
    process is reading already, and drop its own copy."""
    import mmlabel.data.synth as synth
    from mmlabel.data.splits import cached_synthetic

    monkeypatch.setenv("MMLABEL_CACHE", str(tmp_path))
    root = tmp_path / "synthetic-v1"
    real_write = synth.write_synthetic

    def written_while_the_other_process_finished(out, **sizes):
        real_write(tmp_path / "other-process", train=4, dev=2, test=2, seed=1)
        (tmp_path / "other-process").rename(root)  # the other process's rename: its run now reads root
        return real_write(out, train=4, dev=2, test=2, seed=2)

    monkeypatch.setattr(synth, "write_synthetic", written_while_the_other_process_finished)
    assert cached_synthetic() == root
    assert json.loads((root / "synth.json").read_text())["seed"] == 1  # the first process's files, untouched
    assert [path.name for path in tmp_path.iterdir()] == ["synthetic-v1"]  # no half-written copy left behind


def test_the_ocr_variant_has_the_same_sentences_and_writes_the_cue_into_larger_photos(tmp_path):
    from mmlabel.data.synth import cue_word

    plain, variant = tmp_path / "plain", tmp_path / "ocr"
    write_synthetic(plain, train=6, dev=1, test=1)
    write_synthetic(variant, train=6, dev=1, test=1, ocr_cue=True)
    assert (plain / "train.txt").read_bytes() == (variant / "train.txt").read_bytes()
    assert json.loads((variant / "synth.json").read_text())["ocr_cue"] is True
    for post in make_posts(6, 13, "train"):
        photo = Image.open(variant / "images" / post.example.image)
        band = photo.crop((0, 96, 128, 128)).convert("L")
        assert photo.size == (128, 128)
        assert (band.getextrema()[0] < 50) == bool(cue_word(post, 13))  # black letters only under a cue
        assert bool(cue_word(post, 13)) == (post.image_aspect is not None)
