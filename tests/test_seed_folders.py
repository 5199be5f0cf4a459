"""The folder that `train --seeds` writes (a seed-N run each) given to `evaluate`, `report` and `predict`: evaluate
scores every seed (mean ± std), report shows every seed as a run, predict names the seed runs to choose from."""
import json
import statistics

import pytest

from conftest import run_cli


@pytest.fixture(scope="module")
def seeds(quickstart_run, text_only_run, tmp_path_factory):
    """A folder as `train --seeds 1,2` leaves it, its runs the session's (two different models, so that the seeds'
    figures differ), and one as `--seeds 1` leaves it."""
    root = tmp_path_factory.mktemp("seed-folders")
    (root / "two").mkdir()
    (root / "two" / "seed-1").symlink_to(quickstart_run[0], target_is_directory=True)
    (root / "two" / "seed-2").symlink_to(text_only_run[0], target_is_directory=True)
    (root / "two" / "seed-10").mkdir()  # not a run: ignored
    (root / "one").mkdir()
    (root / "one" / "seed-1").symlink_to(quickstart_run[0], target_is_directory=True)
    return root


def test_evaluate_scores_every_seed_and_their_mean_and_std(seeds):
    result = run_cli("evaluate", str(seeds / "two"), "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    stored = [json.loads((seeds / "two" / f"seed-{seed}" / "metrics.json").read_text())["test"] for seed in (1, 2)]
    assert found["seeds"] == [1, 2]
    assert found["runs"] == {"seed-1": stored[0], "seed-2": stored[1]}  # each as `evaluate seed-N` gives it
    assert stored[0]["f1"] != stored[1]["f1"]
    for key in ("f1", "precision", "predicted"):
        values = [figures[key] for figures in stored]
        assert found["summary"][key] == pytest.approx({"mean": statistics.fmean(values),
                                                       "std": statistics.stdev(values)})


def test_evaluate_prints_each_seed_counts_as_counts_and_the_spread(seeds):
    result = run_cli("evaluate", str(seeds / "two"))
    assert result.returncode == 0, result.stderr
    stored = [json.loads((seeds / "two" / f"seed-{seed}" / "metrics.json").read_text())["test"] for seed in (1, 2)]
    assert "mean ± std" in result.stdout and "seed-1" in result.stdout and "seed-2" in result.stdout
    gold = next(line for line in result.stdout.splitlines() if " gold " in line)
    assert stored[0]["gold"] == stored[1]["gold"]  # the same split: the same count on every seed, so no spread
    assert [cell.strip() for cell in gold.split("│")[2:5]] == [str(stored[0]["gold"])] * 3
    f1 = next(line for line in result.stdout.splitlines() if " f1 " in line)
    values = [stored[0]["f1"], stored[1]["f1"]]
    assert [cell.strip() for cell in f1.split("│")[2:5]] == [
        f"{values[0]:.2f}", f"{values[1]:.2f}", f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"]
    assert ".00" not in gold


def test_evaluate_of_one_seed_shows_no_spread(seeds):
    result = run_cli("evaluate", str(seeds / "one"))
    assert result.returncode == 0, result.stderr
    assert "±" not in result.stdout and "seed-1" in result.stdout


def test_evaluate_of_one_run_prints_counts_as_whole_numbers(quickstart_run):
    result = run_cli("evaluate", str(quickstart_run[0]))
    assert result.returncode == 0, result.stderr
    stored = json.loads((quickstart_run[0] / "metrics.json").read_text())["test"]
    rows = {cells[1].strip(): cells[2].strip() for cells in
            (line.split("│") for line in result.stdout.splitlines()) if len(cells) == 4}
    assert rows["gold"] == str(stored["gold"]) and rows["predicted"] == str(stored["predicted"])
    assert rows["f1"] == f"{stored['f1']:.2f}"


def test_predict_names_the_seed_runs_to_choose_from(seeds):
    result = run_cli("predict", str(seeds / "two"), "--text", "the game was great")
    assert result.returncode == 2
    assert result.stderr == (f"error: {seeds / 'two'} holds the runs of `train --seeds`, one per seed: give one of "
                             f"{seeds / 'two' / 'seed-1'}, {seeds / 'two' / 'seed-2'}\n")


def test_report_shows_every_seed_as_a_run(seeds, tmp_path):
    out = tmp_path / "report.html"
    result = run_cli("report", str(seeds / "two"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"report: {out} (24 posts, 2 runs, ")
    html = out.read_text(encoding="utf-8")
    assert 'data-run="seed-1"' in html and 'data-run="seed-2"' in html


def test_train_with_one_seed_prints_its_run_without_a_spread(capsys, tmp_path):
    from mmlabel.commands.train import _print_summary

    figures = {"precision": {"mean": 50.0, "std": 0.0}, "recall": {"mean": 40.0, "std": 0.0},
               "f1": {"mean": 44.44, "std": 0.0}}
    _print_summary(tmp_path, {"seeds": [1], "dev": figures, "test": figures})
    out = capsys.readouterr().out
    assert out.startswith(f"run: {tmp_path / 'seed-1'}\n") and "±" not in out and "44.44" in out
    _print_summary(tmp_path, {"seeds": [1, 2], "dev": figures, "test": figures})
    out = capsys.readouterr().out
    assert out.startswith(f"runs: {tmp_path}/seed-{{1,2}}  (mean ± std over the seeds)\n") and "44.44 ± 0.00" in out
