"""`mmlabel tune` with several workers sharing one journal file: `--jobs 2` in processes of their own, and
`--launcher slurm --jobs 2` as jobs of a real single-node Slurm (tests/slurm_cluster.py). Every trial is run once,
by one worker, the study holds what `--trials` asks, and the best recipe is written."""
import re

import pytest

from conftest import TINY, run_cli, run_process
from slurm_cluster import module_cluster
from test_tune import STEPS, read_trials

pytestmark = pytest.mark.system
pytest.importorskip("optuna")


def tune_args(data, out, trials: int, *extra: str) -> list[str]:
    return ["tune", "quickstart", "--space", "quickstart", "--trials", str(trials), "--out", str(out),
            "--set", f"data.root={data}", *STEPS, *TINY, *extra]


def worker_trials(log_text: str) -> set[int]:
    """The trials a worker's log says it trained (its `trial N: values` lines)."""
    return {int(number) for number in re.findall(r"^trial (\d+): \w", log_text, re.M)}


def check_search(out, trials: int) -> None:
    rows = read_trials(out)
    finished = [row for row in rows if row["state"] in ("complete", "pruned")]
    assert len(finished) >= trials and all(row["state"] != "fail" for row in rows), rows
    assert len({row["run_dir"] for row in rows}) == len(rows)  # every trial its own run
    assert (out / "best.toml").exists()


def test_two_local_workers_share_the_journal(small_synthetic, tmp_path):
    out = tmp_path / "search"
    result = run_process(*tune_args(small_synthetic, out, 4, "--jobs", "2"))
    assert result.returncode == 0, result.stderr
    check_search(out, 4)
    by_worker = [worker_trials((out / "logs" / f"worker-{k}.log").read_text()) for k in (0, 1)]
    assert by_worker[0] and by_worker[1] and not by_worker[0] & by_worker[1], by_worker
    assert by_worker[0] | by_worker[1] == {int(row["number"]) for row in read_trials(out)}


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    yield from module_cluster(tmp_path_factory)


def test_two_slurm_workers_share_the_journal(slurm, small_synthetic, tmp_path):
    out = tmp_path / "search"
    args = tune_args(small_synthetic, out, 4, "--launcher", "slurm", "--jobs", "2", "--slurm", "cpus=1",
                     "--slurm", "time=10")
    result = run_cli(*args, env=slurm)
    assert result.returncode == 0, result.stderr
    assert "submitted 2 workers to Slurm" in result.stderr
    check_search(out, 4)
    logs = [path.read_text() for path in (out / "slurm-logs").glob("*_log.err")]
    by_worker = [worker_trials(text) for text in logs]
    assert len(by_worker) == 2 and all(by_worker), logs
    assert set().union(*by_worker) == {int(row["number"]) for row in read_trials(out)}
    again = run_cli(*args, env=slurm)  # the study holds its trials: nothing submitted, nothing trained
    assert again.returncode == 0 and "submitted" not in again.stderr, again.stderr
