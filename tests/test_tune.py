"""`mmlabel tune` (mmlabel/tuning/) with the real Optuna: the shipped quickstart space searched for 8 trials on the
tiny quickstart, some pruned by the median pruner (each pruning decision checked against the median computed here
from the trials' own log.jsonl), the test split never evaluated, the study resumed by the same command, the best trial
a recipe `mmlabel train` takes, and `--final-seeds` reporting test mean ± std from the final runs' metrics."""
import csv
import json
import statistics
import sys

import pytest

from conftest import SHORT, TINY, run_cli

pytest.importorskip("optuna")

# Three epochs of three batches of four: the dev figure moves from epoch to epoch and between trials, so that the
# median pruner has something to decide (all-zero figures would never be below the median).
STEPS = ["--set", "train.epochs=3", "--set", "train.batch_size=4", "--set", "train.max_steps_per_epoch=3"]


def tune_args(data, out, trials: int, *extra: str) -> list[str]:
    return ["tune", "quickstart", "--space", "quickstart", "--trials", str(trials), "--out", str(out),
            "--set", f"data.root={data}", *STEPS, *TINY, *extra]


def read_trials(out) -> list[dict]:
    with open(out / "trials.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def dev_by_epoch(run_dir) -> dict[int, float]:
    lines = (run_dir / "log.jsonl").read_text().splitlines()
    return {record["epoch"]: record["dev"]["f1"] for record in map(json.loads, lines)}


@pytest.fixture(scope="module")
def search(small_synthetic, tmp_path_factory):
    """5 trials, then the same command with --trials 8 and --final-seeds 1,2 (a resumed study), with every call
    of Trainer.evaluate recorded: whether it was given the test split."""
    from mmlabel.training.trainer import Trainer

    out = tmp_path_factory.mktemp("tune") / "search"
    evaluated: list[str] = []
    original = Trainer.evaluate

    def spy(self, examples):
        evaluated.append(f"{self.run.path.parent.name}/{self.run.path.name}:"
                         f"{'test' if examples is self.parts.splits['test'] else 'dev'}")
        return original(self, examples)

    Trainer.evaluate = spy
    try:
        first = run_cli(*tune_args(small_synthetic, out, 5))
        assert first.returncode == 0, first.stderr
        first_trials = read_trials(out)
        second = run_cli(*tune_args(small_synthetic, out, 8, "--final-seeds", "1,2", "--json"))
        assert second.returncode == 0, second.stderr
    finally:
        Trainer.evaluate = original
    return out, first_trials, read_trials(out), json.loads(second.stdout), evaluated


def test_the_search_holds_8_trials_some_pruned_and_resumes(search):
    out, first_trials, trials, result, _ = search
    assert len(first_trials) == 5 and len(trials) == 8
    assert trials[:5] == first_trials  # the resumed study kept its trials; it ran 3 more
    states = [row["state"] for row in trials]
    assert set(states) <= {"complete", "pruned"} and states.count("pruned") >= 1, states
    assert result["trials"] == {"complete": states.count("complete"), "pruned": states.count("pruned")}
    for row in trials:
        records = [json.loads(line) for line in (out / "trials" / f"trial-{int(row['number']):04d}" /
                                                 "log.jsonl").read_text().splitlines()]
        assert int(row["epochs"]) == len(records)
        assert (row["state"] == "pruned") == bool(records[-1].get("pruned"))


def test_each_pruning_decision_is_the_median_rule(search):
    """A trial is pruned at epoch e exactly when, with at least 3 trials completed before it (the space's
    n_startup_trials), its best dev f1 up to e is below the median of theirs at e (Optuna's MedianPruner)."""
    out, _, trials, _, _ = search
    curves = {int(row["number"]): dev_by_epoch(out / "trials" / f"trial-{int(row['number']):04d}") for row in trials}
    completed: list[int] = []
    for row in trials:
        number = int(row["number"])
        pruned_at = None
        for epoch in sorted(curves[number]):
            best_so_far = max(value for e, value in curves[number].items() if e <= epoch)
            if len(completed) >= 3 and best_so_far < statistics.median(curves[c][epoch] for c in completed):
                pruned_at = epoch
                break
        assert (row["state"] == "pruned") == (pruned_at is not None), (number, curves, completed)
        if pruned_at is not None:
            assert max(curves[number]) == pruned_at  # it stopped there
        else:
            completed.append(number)


def test_the_test_split_is_never_evaluated_while_searching(search):
    out, _, trials, _, evaluated = search
    during_search = [call for call in evaluated if call.startswith("trials/")]
    assert len({call.split(":")[0] for call in during_search}) == 8
    assert all(call.endswith(":dev") for call in during_search), during_search
    for row in trials:
        run = out / "trials" / f"trial-{int(row['number']):04d}"
        assert "test" not in json.loads((run / "metrics.json").read_text())
        assert not (run / "predictions-test.jsonl").exists()
    finals = [call for call in evaluated if call.startswith("base/")]  # the final runs: test once each
    assert sorted(call for call in finals if call.endswith(":test")) == ["base/seed-1:test", "base/seed-2:test"]


def test_the_best_trial_is_a_recipe_train_takes(search, small_synthetic, tmp_path):
    from mmlabel.recipe import load_recipe

    out, _, trials, result, _ = search
    complete = [row for row in trials if row["state"] == "complete"]
    best = max(complete, key=lambda row: float(row["dev"]))
    assert result["best"]["number"] == int(best["number"]) and result["best"]["dev"] == pytest.approx(float(best["dev"]))
    recipe = load_recipe(out / "best.toml")
    assert recipe.train.lr == pytest.approx(float(best["train.lr"]))
    assert recipe.fusion_head.name == best["fusion_head.name"]
    trained = run_cli("train", str(out / "best.toml"), "--out", str(tmp_path / "again"), *SHORT, "--json")
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["test"]["f1"] >= 0


def test_final_seeds_report_test_mean_and_std_of_the_final_runs(search):
    out, _, _, result, _ = search
    test_f1 = [json.loads((out / "final" / "base" / f"seed-{seed}" / "metrics.json").read_text())["test"]["f1"]
               for seed in (1, 2)]
    assert result["final"]["test"]["f1"]["mean"] == pytest.approx(statistics.fmean(test_f1))
    assert result["final"]["test"]["f1"]["std"] == pytest.approx(statistics.stdev(test_f1))
    assert result["final"]["test"]["f1"]["n"] == 2
    summary = (out / "summary.md").read_text()
    assert f"| test | f1 | {statistics.fmean(test_f1):.2f} ± {statistics.stdev(test_f1):.2f} | 2 |" in summary
    assert (out / "optimization-history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_interrupted_trial_is_tried_again_with_the_same_values(small_synthetic, tmp_path, stop_signals_guarded):
    import signal

    from conftest import signal_when

    out = tmp_path / "search"
    sender = signal_when(lambda: (out / "trials" / "trial-0001" / "log.jsonl").exists(), signal.SIGTERM)
    stopped = run_cli(*tune_args(small_synthetic, out, 2))
    sender.join()
    assert stopped.returncode == 143, stopped.stderr
    assert "run the same command again" in stopped.stderr.strip().splitlines()[-1]
    resumed = run_cli(*tune_args(small_synthetic, out, 2))
    assert resumed.returncode == 0, resumed.stderr
    trials = read_trials(out)
    assert [row["state"] for row in trials][1] == "fail" and trials[1]["error"] == "interrupted"
    retry = [row for row in trials if row["number"] not in ("0", "1")][0]
    assert (retry["train.lr"], retry["fusion_head.name"]) == (trials[1]["train.lr"], trials[1]["fusion_head.name"])
    assert sum(row["state"] in ("complete", "pruned") for row in trials) == 2


@pytest.mark.parametrize(("space", "expected"), [
    ('[params."train.lrr"]\ntype = "float"\nlow = 0.1\nhigh = 0.2\n', "train.lrr"),
    ('[params."fusion_head.name"]\ntype = "categorical"\nchoices = ["dtca", "nope"]\n', "'nope'"),
    ('[params."train.lr"]\ntype = "float"\nlow = 0.2\nhigh = 0.1\n', "low < high"),
    ('[params."train.lr"]\ntype = "float"\nlow = 0.1\nhigh = 0.2\n[pruner]\nname = "median"\nbogus = 1\n', "bogus"),
])
def test_a_bad_space_is_one_line_naming_the_file_and_key(tmp_path, space, expected):
    path = tmp_path / "space.toml"
    path.write_text(space)
    result = run_cli("tune", "quickstart", "--space", str(path), "--trials", "2", "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr, result.stderr
    assert str(path) in result.stderr
    assert not (tmp_path / "out").exists()


def test_without_optuna_tune_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    result = run_cli("tune", "quickstart", "--space", "quickstart", "--trials", "2", "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert result.stderr.strip() == 'error: mmlabel tune needs the optuna package: pip install "mmlabel[tune]"'
