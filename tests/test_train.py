"""Training end to end on the quickstart: train, evaluate (reproducing the stored figures), predict, resume."""
import json
import shutil

import pytest

from conftest import SHORT, TINY, process_environment, run_cli


@pytest.fixture
def trained(quickstart_run):
    """The session's quickstart run (conftest.PREDICTS: two short epochs; it predicts spans)."""
    return quickstart_run


def test_train_writes_a_complete_run(trained):
    out, _ = trained
    for name in ("model.safetensors", "recipe.toml", "tags.json", "architecture.json", "metrics.json", "log.jsonl",
                 "predictions-dev.jsonl", "predictions-test.jsonl", "checkpoint.pt", "run.json"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"dev", "test", "best_epoch"}
    assert {"precision", "recall", "f1"} <= set(metrics["test"])
    assert metrics["test"]["predicted"] > 0  # the tests below compare predictions: they must not all be empty
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in log] == [1, 2]
    assert metrics["best_epoch"] == max(record["epoch"] for record in log if record["best"])


def test_train_json_prints_only_the_final_figures_on_stdout(trained):
    """Progress and notes go to stderr: stdout is one JSON document, the run directory and its metrics.json."""
    out, result = trained
    assert result.stdout.lstrip().startswith("{")
    assert json.loads(result.stdout) == {"run": str(out), **json.loads((out / "metrics.json").read_text())}
    assert "epoch 1: loss" in result.stderr and f"training {out}" in result.stderr


def test_a_log_that_is_not_a_terminal_has_one_line_per_epoch_with_its_time(trained):
    """stderr is not a terminal here (as in a batch job's log file): no progress bars, so no blank lines between
    the epochs, no line cut at 80 columns, and each epoch's line ends with its time, as log.jsonl records it."""
    out, result = trained
    lines = result.stderr.splitlines()
    assert "" not in lines, result.stderr
    assert lines[0].startswith(f"training {out} on ") and lines[0].endswith("train/dev/test sentences")
    epochs = [line for line in lines if line.startswith("epoch ")]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(epochs) == len(log) == 2
    for line, record in zip(epochs, log):
        assert line.startswith(f"epoch {record['epoch']}: loss ") and line.endswith(f"  {record['seconds']:.1f} s")


def test_missing_images_under_blank_are_counted_on_stderr_and_in_the_log(small_synthetic, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small_synthetic, data)
    for name in ("dev-0000.png", "dev-0001.png", "dev-0002.png"):
        (data / "images" / name).unlink()
    out = tmp_path / "run"
    result = run_cli("train", "recipes/quickstart.toml", "--out", str(out), "--set", f"data.root={data}",
                     "--set", "data.missing_image=blank", *SHORT, *TINY)
    assert result.returncode == 0, result.stderr
    assert "3 of 32 images missing: using blank images" in result.stderr
    (record,) = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    # the three missing dev photos are blank; every other photo is in the image store, decoded by this run or an
    # earlier one (the store outlives runs)
    counts = record["images"]
    assert counts | {"decoded": None, "stored": None} == {"checked": 32, "decoded": None, "stored": None, "blank": 3,
                                                          "missing": 3, "unreadable": 0, "downscaled": 0}
    assert counts["decoded"] + counts["stored"] == 29


def test_evaluate_reproduces_the_stored_test_figures(trained):
    out, _ = trained
    result = run_cli("evaluate", str(out), "--split", "test", "--json")
    assert result.returncode == 0, result.stderr
    stored = json.loads((out / "metrics.json").read_text())["test"]
    assert json.loads(result.stdout) == stored


def test_predict_jsonl_and_python_api_agree(trained, synthetic, tmp_path):
    out, _ = trained
    from mmlabel.tagger import Tagger

    test_lines = [json.loads(line) for line in (out / "predictions-test.jsonl").read_text().splitlines()][:5]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"tokens": r["tokens"], "image": r["image"]}) + "\n" for r in test_lines))
    result = run_cli("predict", str(out), "--input", str(source), "--output", str(tmp_path / "out.jsonl"),
                     "--images", str(synthetic / "images"))
    assert result.returncode == 0, result.stderr
    predicted = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [p["spans"] for p in predicted] == [r["spans"] for r in test_lines]
    tagger = Tagger.load(out)
    spans = tagger.predict(test_lines[0]["tokens"], image=synthetic / "images" / test_lines[0]["image"])
    assert [{"start": s.start, "end": s.end, "label": s.label} for s in spans] == test_lines[0]["spans"]


def test_the_library_changes_no_process_wide_setting(trained, synthetic):
    """Loading and using a Tagger leaves glibc's malloc and PIL's truncated-image switch as the program had them;
    the command line opts in for its own processes."""
    import subprocess
    import sys

    out, _ = trained
    image = sorted((synthetic / "images").iterdir())[0]
    code = (
        "import sys; from PIL import ImageFile; import mmlabel, mmlabel.device as device\n"
        "tagger = mmlabel.Tagger.load(sys.argv[1]); tagger.predict('the pizza was great', image=sys.argv[2])\n"
        "print(device._tuned, ImageFile.LOAD_TRUNCATED_IMAGES)"
    )
    result = subprocess.run([sys.executable, "-c", code, str(out), str(image)], capture_output=True, text=True,
                            env=process_environment())
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_predict_one_post_from_the_command_line_prints_the_models_spans(trained, synthetic):
    from mmlabel.tagger import Tagger

    out, _ = trained
    record = next(json.loads(line) for line in (out / "predictions-test.jsonl").read_text().splitlines()
                  if json.loads(line)["spans"] and "so-so" not in json.loads(line)["tokens"])
    text = glued(record["tokens"])
    image = synthetic / "images" / record["image"]
    spans = Tagger.load(out).predict(record["tokens"], image=image)
    assert spans  # a post the model finds spans in, so that the comparisons below could fail
    expected = []
    for span in spans:  # an aspect's name occurs once in its post
        name = " ".join(record["tokens"][span.start:span.end])
        expected.append({"words": name, "start": span.start, "end": span.end, "label": span.label,
                         "start_char": text.index(name), "end_char": text.index(name) + len(name)})
    as_json = run_cli("predict", str(out), "--text", text, "--image", str(image), "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == expected
    plain = run_cli("predict", str(out), "--text", text, "--image", str(image))
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.splitlines() == [f"{span['words']}\t{span['label']}" for span in expected]


def glued(tokens: list[str]) -> str:
    """A synthetic post as typed: punctuation glued to the words, which the run's tokenizer splits off again."""
    return " ".join(tokens).replace(" ,", ",").replace(" !", "!").replace("@ ", "@").replace(" :", ":")


def test_jsonl_text_is_split_by_the_tokenizer_the_run_recorded(trained, synthetic, tmp_path):
    """`text` lines are split by the run's `data.tokenizer` (saved in its recipe.toml, default `twitter`): the
    words are the dataset's, the spans the same as for those words, with character offsets into the text; a run
    recorded with `whitespace` splits the same text as mmlabel did before."""
    import tomllib

    from mmlabel.tagger import Tagger

    out, _ = trained
    assert tomllib.loads((out / "recipe.toml").read_text())["data"]["tokenizer"] == "twitter"
    records = [json.loads(line) for line in (out / "predictions-test.jsonl").read_text().splitlines()]
    records = [r for r in records if "so-so" not in r["tokens"] and glued(r["tokens"]) != " ".join(r["tokens"])][:6]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": glued(r["tokens"]), "image": r["image"]}) + "\n" for r in records))
    result = run_cli("predict", str(out), "--input", str(source), "--output", str(tmp_path / "out.jsonl"),
                     "--images", str(synthetic / "images"))
    assert result.returncode == 0, result.stderr
    predicted = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [p["tokens"] for p in predicted] == [r["tokens"] for r in records]
    assert [[{k: s[k] for k in ("start", "end", "label")} for s in p["spans"]] for p in predicted] == \
        [r["spans"] for r in records]
    assert any(p["spans"] for p in predicted)
    for p in predicted:
        for span in p["spans"]:
            assert p["text"][span["start_char"]:span["end_char"]] == " ".join(p["tokens"][span["start"]:span["end"]])
    copy = tmp_path / "whitespace-run"
    shutil.copytree(out, copy)
    recipe = (copy / "recipe.toml").read_text()
    (copy / "recipe.toml").write_text(recipe.replace('tokenizer = "twitter"', 'tokenizer = "whitespace"'))
    tagger = Tagger.load(copy)
    assert tagger.tokenizer == "whitespace"
    assert [t.text for t in tagger.words(glued(records[0]["tokens"]))] == glued(records[0]["tokens"]).split()


def test_predict_json_goes_with_text_only(trained, tmp_path):
    out, _ = trained
    result = run_cli("predict", str(out), "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o.jsonl"),
                     "--json")
    assert result.returncode == 2
    assert "--json goes with --text" in result.stderr and not (tmp_path / "o.jsonl").exists()


def test_evaluate_other_data_guesses_its_format_and_reads_images_from_images_option(trained, synthetic, tmp_path):
    """--data without --format is read as what its files are; --images says where their images are, and without it
    the images are looked for in images/ beside the data (here absent: the run's policy, "error", stops)."""
    out, _ = trained
    stored = json.loads((out / "metrics.json").read_text())["test"]
    jsonl = tmp_path / "test.jsonl"  # the test split in another format, without its images
    converted = run_cli("data", "convert", str(synthetic / "test.txt"), str(jsonl), "-f", "jml", "--to", "jsonl")
    assert converted.returncode == 0, converted.stderr
    result = run_cli("evaluate", str(out), "--data", str(jsonl), "--images", str(synthetic / "images"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == stored
    missing = run_cli("evaluate", str(out), "--data", str(jsonl), "--json")
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.startswith(f"error: {tmp_path / 'images'}: 24 of 24 images are missing")


def test_predict_reports_every_malformed_line_naming_the_field_and_writes_nothing(trained, synthetic, tmp_path):
    out, _ = trained
    image = sorted((synthetic / "images").iterdir())[0].name
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(json.dumps({"text": "a fine day", "image": image}) + "\n{not json\n"
                      + json.dumps({"tokens": [], "image": image}) + "\n" + json.dumps({"txt": "a", "image": image})
                      + "\n" + json.dumps({"text": "a fine day", "image": 3}) + "\n")
    target.write_text("the previous predictions\n")
    result = run_cli("predict", str(out), "--input", str(source), "--output", str(target),
                     "--images", str(synthetic / "images"))
    assert result.returncode == 2 and "KeyError" not in result.stderr
    assert result.stderr.splitlines() == [
        f"error: {source}:2: not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 "
        f"(char 1))",
        f"error: {source}:3: 'tokens' must be a non-empty list of non-empty strings (the post's words)",
        f"error: {source}:4: no 'text' (the post's raw text) or 'tokens' (its words) field; found 'txt', 'image'",
        f"error: {source}:5: 'image' must be a file name in the images folder, found 3",
        f"error: 4 malformed lines in {source}: nothing written to {target}"]
    assert target.read_text() == "the previous predictions\n"  # kept as it was, and no temporary left beside it
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


def test_predict_on_a_damaged_image_suggests_its_own_option_and_leaves_no_output(trained, synthetic, tmp_path):
    """A truncated photo stops `predict` under the run's policy ("error"), naming the file and suggesting
    --missing-image (not the recipe key predict cannot set); with --missing-image blank its post is tagged with a
    blank image and a warning, like a post without an image. The same for --text and --input."""
    from PIL import Image

    out, _ = trained
    cut = tmp_path / "cut.png"
    Image.open(sorted((synthetic / "images").iterdir())[0]).save(cut)
    cut.write_bytes(cut.read_bytes()[:len(cut.read_bytes()) // 2])
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(json.dumps({"text": "a fine day", "image": "cut.png"}) + "\n"
                      + json.dumps({"text": "a fine day"}) + "\n")
    for command in (["--text", "a fine day", "--image", str(cut)], ["--input", str(source), "--output", str(target)]):
        refused = run_cli("predict", str(out), *command)
        assert refused.returncode == 2 and not target.exists()
        assert refused.stderr.splitlines()[-1].startswith(f"error: {cut}: not a readable image (")
        assert refused.stderr.rstrip().endswith("give --missing-image blank to tag its post with a blank image instead")
        assert "data.missing_image" not in refused.stderr
        blank = run_cli("predict", str(out), *command, "--missing-image", "blank")
        assert blank.returncode == 0, blank.stderr
        assert f"warning: {cut}: not a readable image (" in blank.stderr
        assert "the post is tagged with a blank image" in blank.stderr
    assert len(target.read_text().splitlines()) == 2
    assert "warning: 1 of 2 posts have no image: this model reads images, and sees a blank one for it" in blank.stderr
    no_image = run_cli("predict", str(out), "--text", "a fine day")
    assert no_image.returncode == 0, no_image.stderr
    assert no_image.stderr == "warning: this model reads images: without --image it sees a blank one\n"


def test_an_output_directory_holding_a_run_is_refused(trained, synthetic):
    out, _ = trained
    result = run_cli("train", "recipes/quickstart.toml", "--out", str(out), "--set", f"data.root={synthetic}", *SHORT)
    assert result.returncode == 2
    assert "already holds a run" in result.stderr and "Traceback" not in result.stderr


def test_evaluate_an_incomplete_run_is_one_line(tmp_path):
    result = run_cli("evaluate", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"error: {tmp_path}: incomplete run")


def test_frozen_image_encoder_cache_changes_nothing_but_speed(synthetic, tmp_path):
    figures = []
    for cache in ("true", "false"):
        out = tmp_path / f"cache-{cache}"
        result = run_cli("train", "recipes/quickstart.toml", "--out", str(out), "--set", f"data.root={synthetic}",
                         "--set", "image_encoder.freeze=true", "--set", f"train.cache_image_features={cache}", *SHORT)
        assert result.returncode == 0, result.stderr
        assert ("computing each image's patch states once" in result.stderr) == (cache == "true")
        figures.append(json.loads((out / "metrics.json").read_text()))
        predictions = (out / "predictions-test.jsonl").read_text()
        figures[-1]["predictions"] = predictions
    assert figures[0] == figures[1]
    evaluated = run_cli("evaluate", str(tmp_path / "cache-true"), "--json")
    assert json.loads(evaluated.stdout) == figures[0]["test"]


def test_seeds_are_summarised_as_mean_and_std(synthetic, tmp_path):
    out = tmp_path / "seeds"
    result = run_cli("train", "recipes/quickstart.toml", "--out", str(out), "--set", f"data.root={synthetic}",
                     "--seeds", "1,2", *SHORT)
    assert result.returncode == 0, result.stderr
    runs = [json.loads((out / f"seed-{seed}" / "metrics.json").read_text()) for seed in (1, 2)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [1, 2]
    f1 = [run["test"]["f1"] for run in runs]
    assert summary["test"]["f1"]["mean"] == pytest.approx(sum(f1) / 2)
    assert summary["test"]["f1"]["std"] == pytest.approx(abs(f1[0] - f1[1]) / 2 ** 0.5)
    assert "mean ± std" in result.stdout


def test_feature_cache_encodes_every_missing_image_once(tmp_path):
    import torch

    from mmlabel.data.image_store import DecodedImages
    from mmlabel.data.images import ImageLoader
    from mmlabel.feature_cache import ImageFeatureCache

    class CountingEncoder(torch.nn.Module):
        calls = 0

        def transform(self, image):
            return torch.zeros(3, 4, 4)

        def forward(self, pixels):
            CountingEncoder.calls += pixels.shape[0]
            return torch.ones(pixels.shape[0], 2, 8), torch.ones(pixels.shape[0], 2, dtype=torch.bool)

    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "here.png")
    encoder = CountingEncoder()
    pixels = DecodedImages(ImageLoader(tmp_path, "blank"), encoder.transform)  # an encoder without pixel_transform
    cache = ImageFeatureCache(encoder, pixels, torch.device("cpu"))
    cache.fill(["a.png", "b.png", None, "here.png", "here.png"])
    assert CountingEncoder.calls == 2  # one blank for every absent image, one real image
    assert cache.get("c.png")[0].shape == (2, 8) and CountingEncoder.calls == 2


def test_a_run_written_before_tag_schemes_were_components_still_loads(trained, synthetic, tmp_path):
    import shutil
    import tomllib

    import tomli_w

    from mmlabel.errors import RunError
    from mmlabel.tagger import Tagger

    out, _ = trained
    tags = json.loads((out / "tags.json").read_text())
    assert tags["scheme"] == "collapsed5" and tags["options"] == {}  # what rebuilds the scheme
    old = tmp_path / "old"
    shutil.copytree(out, old)
    (old / "tags.json").write_text(json.dumps({"scheme": "collapsed5", "labels": tags["labels"], "tags": tags["tags"]}))
    recipe = tomllib.loads((old / "recipe.toml").read_text())
    recipe["data"]["tag_scheme"] = "collapsed5"  # then a plain string
    (old / "recipe.toml").write_text(tomli_w.dumps(recipe))
    words, image = ["the", "pizza", "was", "great"], sorted((synthetic / "images").iterdir())[0]
    assert Tagger.load(old).predict(words, image=image) == Tagger.load(out).predict(words, image=image)
    (old / "tags.json").write_text(json.dumps({**tags, "scheme": "bio"}))
    with pytest.raises(RunError, match="tag scheme .bio. now gives the tags"):
        Tagger.load(old)


def test_each_epoch_logs_the_loss_terms_raw_and_weighted_and_its_learning_rates(trained):
    out, result = trained
    record = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert set(record["terms"]) == set(record["weighted_terms"]) == {"crf", "text", "align"}
    assert sum(record["weighted_terms"].values()) == pytest.approx(record["train_loss"], rel=1e-6)
    # quickstart: alpha = beta = 0.6, the CRF term a batch mean with weight 1
    assert record["weighted_terms"]["text"] == pytest.approx(0.6 * record["terms"]["text"], rel=1e-6)
    assert record["weighted_terms"]["crf"] == pytest.approx(record["terms"]["crf"], rel=1e-6)
    assert record["terms"]["align"] > 0
    # 2 epochs x 12 steps planned, warm-up int(0.1 x 24) = 2 steps from 0 to 3e-3, then linear decay to 0 at step 24
    second = json.loads((out / "log.jsonl").read_text().splitlines()[1])
    assert record["lr_start"] == 0.0 and record["lr"] == pytest.approx(3e-3 * 12 / 22) and "head_lr" not in record
    assert second["lr_start"] == pytest.approx(record["lr"]) and second["lr"] == 0.0
    weighted = record["weighted_terms"]
    assert f"= crf {weighted['crf']:.4f} + text {weighted['text']:.4f} + align {weighted['align']:.4f}" in result.stderr


def test_the_schedule_plans_for_schedule_epochs_and_the_heads_get_their_own_rate(synthetic, tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", "recipes/quickstart.toml", "--out", str(out), "--set", f"data.root={synthetic}", *SHORT,
                     "--set", "train.schedule_epochs=4", "--set", "train.warmup_ratio=0", "--set", "train.head_lr=0.01")
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    # 6 of the 4 x 6 = 24 planned steps: a quarter of the linear decay
    assert (record["lr_start"], record["lr"]) == (pytest.approx(1e-3), pytest.approx(0.75e-3))
    assert (record["head_lr_start"], record["head_lr"]) == (pytest.approx(1e-2), pytest.approx(0.75e-2))


def test_parameter_groups_give_the_heads_their_own_rate_and_keep_weight_decay_groups(trained):
    from mmlabel.tagger import Tagger
    from mmlabel.training.optim import parameter_groups

    model = Tagger.load(trained[0]).model
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    one_rate = parameter_groups(model, 0.01, 1e-3)
    assert [(group["lr"], group["weight_decay"]) for group in one_rate] == [(1e-3, 0.01), (1e-3, 0.0)]
    groups = parameter_groups(model, 0.01, 1e-3, head_lr=5e-3)
    assert [(group["lr"], group["weight_decay"]) for group in groups] == [(1e-3, 0.01), (1e-3, 0.0), (5e-3, 0.01),
                                                                          (5e-3, 0.0)]
    grouped = [{names[id(parameter)] for parameter in group["params"]} for group in groups]
    encoders, heads = grouped[0] | grouped[1], grouped[2] | grouped[3]
    assert encoders and all(name.startswith(("text_encoder.", "image_encoder.")) for name in encoders)
    assert {"fusion_head", "text_head"} <= {name.split(".")[0] for name in heads} <= {"fusion_head", "text_head",
                                                                                      "image_projection"}
    assert "fusion_head.crf.crf.transitions" in grouped[2] and "text_head.bias" in grouped[3]
    assert encoders | heads == set(names.values())  # every trainable parameter, once
    assert sum(len(group) for group in grouped) == len(names)


def test_predict_tags_every_word_of_a_long_post_from_the_command_line(trained, synthetic, tmp_path):
    """200 words, of which the model reads under 60 at once: --text and --input tag them in overlapping windows,
    as Tagger.predict does, with spans past the first window."""
    from mmlabel.tagger import Tagger

    out, _ = trained
    records = [json.loads(line) for line in (out / "predictions-test.jsonl").read_text().splitlines()]
    words = ([word for record in records if record["spans"] for word in record["tokens"]] * 10)[:200]
    image = synthetic / "images" / records[0]["image"]
    expected = [span.to_dict() for span in Tagger.load(out).predict(" ".join(words), image=image)]
    assert max(span["end"] for span in expected) > 60
    one = run_cli("predict", str(out), "--text", " ".join(words), "--image", str(image), "--json")
    assert one.returncode == 0, one.stderr
    assert [{key: span[key] for key in expected[0]} for span in json.loads(one.stdout)] == expected
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"text": " ".join(words), "image": image.name}) + "\n")
    many = run_cli("predict", str(out), "--input", str(source), "--output", str(tmp_path / "out.jsonl"),
                   "--images", str(synthetic / "images"))
    assert many.returncode == 0, many.stderr
    assert json.loads((tmp_path / "out.jsonl").read_text())["spans"] == expected
