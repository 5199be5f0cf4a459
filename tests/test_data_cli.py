"""The data commands end to end: `data stats`, `data convert`, `data synth`, `score`, and one-line errors with exit
code 2 for bad data."""
import json
import os
import subprocess
import sys

import pytest

from conftest import run_command
from data_paths import DATA_DIR, REPO_ROOT, realdata
from mmlabel.cli import main
from mmlabel.registry import build
from test_readers import BAD_INPUTS, _write

STATS_KEYS = ["sentences", "aspects", "positive", "neutral", "negative", "multi_aspect", "multi_sentiment",
              "mean_length", "max_length"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    with pytest.raises(SystemExit) as exit_:
        main(["data", "synth", str(out), "--train", "30", "--dev", "10", "--test", "12", "--seed", "3"])
    assert exit_.value.code == 0
    return out


def test_synth_command_writes_a_dataset(synthetic):
    assert sorted(path.name for path in synthetic.iterdir()) == ["dev.txt", "images", "synth.json", "test.txt", "train.txt"]
    assert len(list((synthetic / "images").iterdir())) == 52


def test_stats_json_has_exactly_the_issue_keys(capsys, synthetic):
    code, out, err = run_command("data", "stats", synthetic, "--format", "jml", "--json")
    figures = json.loads(out)
    assert code == 0 and list(figures) == ["train", "dev", "test"]
    assert all(list(row) == STATS_KEYS for row in figures.values())
    assert figures["test"]["sentences"] == 12
    assert figures["test"]["aspects"] == figures["test"]["positive"] + figures["test"]["neutral"] + figures["test"]["negative"]
    assert "duplicate_records 0" in err


def test_stats_table_and_conll_valid_split(capsys, synthetic, tmp_path):
    run_command("data", "convert", synthetic / "dev.txt", tmp_path / "valid.txt", "--from", "jml", "--to", "conll")
    code, out, _ = run_command("data", "stats", tmp_path, "--json")
    assert code == 0 and list(json.loads(out)) == ["dev"]
    code, out, _ = run_command("data", "stats", synthetic)
    assert code == 0 and "multi_sentiment" in out and "duplicate records merged away" in out


def test_ner_stats_replace_sentiments_by_entity_types(capsys, tmp_path):
    (tmp_path / "test.txt").write_text("IMGID:1\nObama\tB-PER\nin\tO\nParis\tB-LOC\n\nIMGID:2\nhi\tO\n")
    code, out, _ = run_command("data", "stats", tmp_path, "--format", "conll", "--json")
    assert json.loads(out)["test"] == {"sentences": 2, "entities": 2, "LOC": 1, "PER": 1, "multi_entity": 1,
                                       "multi_type": 1, "mean_length": 2.0, "max_length": 3}
    code, out, _ = run_command("data", "stats", tmp_path, "--format", "conll")
    assert code == 0 and "entities" in out and "multi_entity" in out and "aspect" not in out  # NER has no aspects


def test_score_gold_against_itself_and_a_partial_prediction(capsys, synthetic, tmp_path):
    run_command("data", "convert", synthetic, tmp_path / "gold", "--from", "jml", "--to", "jsonl")
    code, out, _ = run_command("score", synthetic, tmp_path / "gold" / "test.jsonl", "--json")
    assert code == 0 and json.loads(out)["f1"] == pytest.approx(100.0)
    predictions = build("dataset_reader", "jsonl").read(tmp_path / "gold" / "test.jsonl")
    for example in predictions:
        example.spans = example.spans[:1]
    build("dataset_reader", "jsonl").write(predictions, tmp_path / "pred.jsonl")
    code, out, _ = run_command("score", synthetic / "test.txt", tmp_path / "pred.jsonl", "--json")
    figures = json.loads(out)
    assert figures["precision"] == pytest.approx(100.0) and figures["recall"] < 100.0
    code, out, _ = run_command("score", synthetic / "test.txt", tmp_path / "pred.jsonl")
    assert code == 0 and "sentiment_accuracy" in out and "POS" in out


def test_score_refuses_predictions_that_miss_sentences(capsys, synthetic, tmp_path):
    examples = build("dataset_reader", "jml").read(synthetic / "test.txt")
    build("dataset_reader", "jsonl").write(examples[1:], tmp_path / "pred.jsonl")
    code, _, err = run_command("score", synthetic / "test.txt", tmp_path / "pred.jsonl")
    assert code == 2 and "1 of 12 gold sentences have no prediction (first: 'test-0000')" in err


@pytest.mark.parametrize("format_name, file_name, content, line, message", BAD_INPUTS)
def test_bad_data_exits_2_with_one_line(capsys, tmp_path, format_name, file_name, content, line, message):
    path = _write(tmp_path, file_name, content)
    code, out, err = run_command("data", "stats", path, "--format", format_name)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {path}:{line}: ") and message in err


def test_bad_data_through_python_m_has_no_traceback(tmp_path):
    path = _write(tmp_path, "train.txt", BAD_INPUTS[1][2])
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-m", "mmlabel", "data", "stats", str(path), "--format", "jml"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2
    assert result.stderr == f"error: {path}:3: sentiment must be -1, 0 or 1, found '2'\n"


def test_skip_bad_counts_what_it_skipped(capsys, tmp_path):
    path = _write(tmp_path, "train.txt", "$T$ ok\nasp\n1\na.jpg\n$T$ bad\nasp\n9\nb.jpg\n")
    code, out, _ = run_command("data", "stats", path, "--format", "jml", "--skip-bad")
    assert code == 0 and "1 bad records skipped" in out


def test_missing_data_directory_is_one_line(capsys, tmp_path):
    code, _, err = run_command("data", "stats", tmp_path / "absent", "--format", "jml")
    assert code == 2 and "absent: data directory not found" in err


@realdata
@pytest.mark.realdata
@pytest.mark.parametrize("folder", ["mabsa/twitter2015", "mabsa/twitter2017", "mabsa-conll/twitter2017", "mner/twitter2017"])
def test_real_stats_print(capsys, folder):
    code, out, _ = run_command("data", "stats", DATA_DIR / folder)
    assert code == 0 and "train" in out and "test" in out and "mean_length" in out


@realdata
@pytest.mark.realdata
def test_real_stats_json_figures(capsys):
    code, out, _ = run_command("data", "stats", DATA_DIR / "mabsa" / "twitter2015", "--format", "jml", "--json")
    figures = json.loads(out)
    assert figures["test"]["sentences"] == 674 and figures["test"]["aspects"] == 1037
    assert all(list(row) == STATS_KEYS for row in figures.values())


@realdata
@pytest.mark.realdata
def test_real_ner_gold_scores_100_per_type(capsys, tmp_path):
    gold = DATA_DIR / "mner" / "twitter2015"
    run_command("data", "convert", gold, tmp_path, "--from", "conll", "--to", "jsonl")
    code, out, _ = run_command("score", gold, tmp_path / "test.jsonl", "--format", "conll", "--json")
    figures = json.loads(out)
    assert figures["f1"] == pytest.approx(100.0)
    assert set(figures["per_type"]) == {"PER", "LOC", "ORG", "OTHER"}
    assert all(row["f1"] == pytest.approx(100.0) for row in figures["per_type"].values())


def test_converting_entities_to_a_sentiment_format_names_the_target_file(capsys, tmp_path):
    source = _write(tmp_path, "train.txt", "IMGID:7\nObama\tB-PER\nspeaks\tO\n")
    code, out, err = run_command("data", "convert", source, tmp_path / "out.json", "-f", "conll", "--to", "json")
    assert code == 2 and out == "" and not (tmp_path / "out.json").exists()
    assert err == (f"error: {tmp_path / 'out.json'}: cannot write as json: example '7': label 'PER' is not a sentiment "
                   f"(POS, NEU, NEG); the format holds aspect sentiments only (use conll or jsonl for entity types)\n")


@realdata
@pytest.mark.realdata
@pytest.mark.parametrize("source", ["mabsa-conll/twitter2015", "mabsa-conll/twitter2017"])
def test_real_mabsa_in_the_json_format_has_the_same_stats(capsys, tmp_path, source):
    """The CoNLL files here; jml -> json -> jml keeps every post (test_readers.py), so its stats are the same too."""
    code, _, err = run_command("data", "convert", DATA_DIR / source, tmp_path / "json", "--to", "json")
    assert code == 0, err
    assert sorted(path.name for path in (tmp_path / "json").iterdir()) == ["dev.json", "test.json", "train.json"]
    _, expected, _ = run_command("data", "stats", DATA_DIR / source, "--json")
    code, found, err = run_command("data", "stats", tmp_path / "json", "--json")  # the format guessed from .json
    assert code == 0, err
    assert json.loads(found) == json.loads(expected) and json.loads(found)["test"]["aspects"] > 1000


@pytest.mark.parametrize("format_name", ["jml", "tsv", "conll", "jsonl", "json"])
def test_every_format_is_guessed_from_its_files_when_format_is_omitted(capsys, synthetic, tmp_path, format_name):
    from mmlabel.data.convert import sniff_format

    code, _, err = run_command("data", "convert", synthetic, tmp_path / "data", "-f", "jml", "--to", format_name)
    assert code == 0, err
    assert sniff_format(tmp_path / "data") == format_name
    _, expected, _ = run_command("data", "stats", synthetic, "-f", "jml", "--json")
    code, guessed, err = run_command("data", "stats", tmp_path / "data", "--json")
    assert code == 0, err
    assert json.loads(guessed) == json.loads(expected)


def test_files_that_do_not_tell_their_format_need_format_or_a_fallback(capsys, tmp_path):
    from mmlabel.data.convert import sniff_format

    (tmp_path / "train.data").write_text("anything\n")
    assert sniff_format(tmp_path, fallback="jml") == "jml"  # evaluate --data falls back on the run's reader
    code, out, err = run_command("data", "stats", tmp_path)
    assert code == 2 and out == ""
    assert err == f"error: {tmp_path}: cannot tell the format; give it with --format (jml, tsv, conll, jsonl, json)\n"
