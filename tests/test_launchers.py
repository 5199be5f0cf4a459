"""`--jobs N` on this machine: the runs in processes of their own, N at a time, a failed run recorded while the
others go on, SIGTERM passed on to the runs, and the same figures as the sequential sweep (the session's reference
sweep, conftest.reference_sweep)."""
import csv
import json
import signal
import sys
from pathlib import Path

import pytest

from conftest import run_cli, signal_when, sweep_args

FIGURES = ("dev.f1", "dev.precision", "test.f1", "test.precision", "test.recall", "best_epoch")


def read_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def figures(rows: list[dict]) -> list[tuple]:
    """Each run's figures in results.csv and its training losses, epoch by epoch, from its log.jsonl (the tiny runs'
    F1 is often 0; their losses tell runs apart)."""
    return [(row["cell"], row["seed"], row["status"], *(row[key] for key in FIGURES), *losses(Path(row["run_dir"])))
            for row in rows]


def losses(run: Path) -> list[float]:
    return [json.loads(line)["train_loss"] for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.system  # several mmlabel processes at once
def test_jobs_2_gives_the_sequential_figures_and_skips_finished_runs(synthetic, reference_sweep, tmp_path):
    """The two runs of seed 1 in two processes at once (the reference sweep's 4 runs hold them)."""
    parallel = run_cli(*sweep_args(synthetic, tmp_path / "two", "--jobs", "2"), "--seeds", "1")
    assert parallel.returncode == 0, parallel.stderr
    assert parallel.stderr.count("training into") == 2 and "(log " in parallel.stderr
    one = [row for row in read_csv(reference_sweep / "results.csv") if row["seed"] == "1"]
    two = read_csv(tmp_path / "two" / "results.csv")
    assert [row["status"] for row in two] == ["finished"] * 2
    assert figures(two) == figures(one)
    assert len({tuple(losses(Path(row["run_dir"]))) for row in two}) == 2  # the runs differ: the comparison can fail
    assert (tmp_path / "two" / "logs" / "beta=0.6.seed-1.log").read_text().strip()
    again = run_cli(*sweep_args(synthetic, tmp_path / "two", "--jobs", "2"), "--seeds", "1")
    assert again.returncode == 0 and again.stderr.count("already finished, skipped") == 2
    assert "training into" not in again.stderr and figures(read_csv(tmp_path / "two" / "results.csv")) == figures(one)


# A run's process as the launcher starts it, without the training: it notes when it starts and ends, and leaves the
# row of a finished run (or, for seed 3, exits without one, as a crash would).
FAKE_RUN = """
import json, sys, time
from pathlib import Path
job, times = Path(sys.argv[1]), Path(sys.argv[2])
spec = json.loads(job.read_text())
with open(times, "a") as log:
    log.write(f"start {job.stem} {time.time()}\\n")
time.sleep(0.4)
with open(times, "a") as log:
    log.write(f"end {job.stem} {time.time()}\\n")
if spec["seed"] == 3:
    sys.exit(9)
job.with_suffix(".row.json").write_text(json.dumps({"status": "finished", "test.f1": float(spec["seed"])}))
"""


def test_jobs_2_keeps_two_runs_going_until_every_run_is_done(tmp_path, monkeypatch):
    """5 runs in 2 slots: never more than 2 processes at once, a slot taken again as soon as its run ends, every
    run's row read back, and a process that ends without a row recorded as failed while the others finish. (A
    run that fails with an error in its process writes its row as the sequential sweep does: test_sweep.)"""
    from mmlabel.experiments import launch

    times = tmp_path / "times.txt"
    monkeypatch.setattr(launch, "worker_command", lambda job, processes=1: [sys.executable, "-c", FAKE_RUN, str(job),
                                                                              str(times)])
    result = run_cli("sweep", "quickstart", "--out", str(tmp_path / "sweep"), "--grid", "loss.beta=0", "--seeds",
                     "1,2,3,4,5", "--jobs", "2")
    assert result.returncode == 1 and "error: 1 of 5 runs failed" in result.stderr, result.stderr  # seed 3
    rows = read_csv(tmp_path / "sweep" / "results.csv")
    assert [(row["seed"], row["status"], row["test.f1"]) for row in rows] == [
        ("1", "finished", "1.0"), ("2", "finished", "2.0"), ("3", "failed", ""), ("4", "finished", "4.0"),
        ("5", "finished", "5.0")]
    assert "the run's process exited with code 9 without a result" in rows[2]["error"]
    events = sorted((float(when), kind, name) for kind, name, when in map(str.split, times.read_text().splitlines()))
    running, most = set(), 0
    for _, kind, name in events:
        running = running | {name} if kind == "start" else running - {name}
        most = max(most, len(running))
    assert most == 2 and len(events) == 10  # a slot is taken again once its run ends, never more than 2 at once
    assert sorted(name for _, kind, name in events if kind == "start") == [f"beta=0.seed-{n}" for n in range(1, 6)]


def test_launcher_usage_errors_are_one_line(tmp_path):
    for args, message in ((["--launcher", "pbs"], "--launcher pbs: expected local or slurm"),
                          (["--slurm", "time=5"], "--slurm: only with --launcher slurm"),
                          (["--launcher", "slurm", "--slurm", "gpu=1"], "--slurm gpu: Extra inputs are not permitted"),
                          (["--launcher", "slurm", "--slurm", "time"], "--slurm time: expected key=value")):
        result = run_cli("sweep", "quickstart", "--out", str(tmp_path / "s"), *args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr


@pytest.mark.system  # several mmlabel processes at once
def test_sigterm_reaches_the_parallel_runs_which_checkpoint_and_the_rerun_resumes_them(synthetic, tmp_path,
                                                                                        stop_signals_guarded):
    """SIGTERM to `mmlabel sweep --jobs 2` (here this process, sent once both runs have started) is passed on to
    both runs' processes, which save a checkpoint; the same sweep run again (sequentially) resumes both."""
    out = tmp_path / "sweep"
    args = ["sweep", "quickstart", "--out", str(out), "--grid", "loss.beta=0,0.6", "--set", f"data.root={synthetic}",
            "--set", "train.epochs=2", "--set", "train.max_steps_per_epoch=6"]
    runs = [out / "beta=0" / "seed-1", out / "beta=0.6" / "seed-1"]
    sender = signal_when(lambda: all((run / "run.json").exists() for run in runs), signal.SIGTERM)
    stopped = run_cli(*args, "--jobs", "2")
    sender.join()
    assert stopped.returncode == 143, stopped.stderr
    rows = read_csv(out / "results.csv")
    logs = [(out / "logs" / f"{cell}.seed-1.log").read_text() for cell in ("beta=0", "beta=0.6")]
    assert [row["status"] for row in rows] == ["interrupted"] * 2, logs
    assert all((run / "checkpoint.pt").exists() for run in runs)
    assert all("SIGTERM: stopping after this step" in log for log in logs)  # each process got it
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert [row["status"] for row in read_csv(out / "results.csv")] == ["finished"] * 2
    assert again.stderr.count("resuming after epoch 0") == 2
