"""`--jobs N` on this machine: the runs in processes of their own, a failed run recorded while the others go on,
and the same figures as the sequential sweep."""
import csv
import json
from pathlib import Path

from conftest import SHORT, run_cli

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


def tiny_sweep(synthetic, out: Path, *extra: str) -> list[str]:
    return ["sweep", "quickstart", "--out", str(out), "--grid", "loss.beta=0,0.6", "--seeds", "1,2",
            "--set", f"data.root={synthetic}", *SHORT, *extra]


def test_jobs_2_gives_the_sequential_figures_and_skips_finished_runs(synthetic, tmp_path):
    sequential = run_cli(*tiny_sweep(synthetic, tmp_path / "one"))
    assert sequential.returncode == 0, sequential.stderr
    parallel = run_cli(*tiny_sweep(synthetic, tmp_path / "two", "--jobs", "2"))
    assert parallel.returncode == 0, parallel.stderr
    assert parallel.stderr.count("training into") == 4 and "(log " in parallel.stderr
    one, two = read_csv(tmp_path / "one" / "results.csv"), read_csv(tmp_path / "two" / "results.csv")
    assert [row["status"] for row in two] == ["finished"] * 4
    assert figures(two) == figures(one)
    assert len({tuple(losses(Path(row["run_dir"]))) for row in two}) == 4  # the runs differ: the comparison means something
    assert (tmp_path / "two" / "logs" / "beta=0.seed-2.log").read_text().strip()
    again = run_cli(*tiny_sweep(synthetic, tmp_path / "two", "--jobs", "2"))
    assert again.returncode == 0 and again.stderr.count("already finished, skipped") == 4
    assert "training into" not in again.stderr and figures(read_csv(tmp_path / "two" / "results.csv")) == figures(one)


def test_a_failing_run_is_recorded_and_the_others_finish(synthetic, tmp_path):
    """A cell whose data folder is missing fails in its process; the other cell trains to the end beside it."""
    out = tmp_path / "sweep"
    result = run_cli("sweep", "quickstart", "--out", str(out), "--grid", f"data.root={synthetic},{tmp_path / 'gone'}",
                     "--jobs", "2", *SHORT)
    assert result.returncode == 1, result.stderr
    rows = read_csv(out / "results.csv")
    assert [row["status"] for row in rows] == ["finished", "failed"]
    assert "DataError: data.root: no such directory" in rows[1]["error"] and rows[0]["error"] == ""
    assert "error: 1 of 2 runs failed" in result.stderr


def test_launcher_usage_errors_are_one_line(tmp_path):
    for args, message in ((["--launcher", "pbs"], "--launcher pbs: expected local or slurm"),
                          (["--slurm", "time=5"], "--slurm: only with --launcher slurm"),
                          (["--launcher", "slurm", "--slurm", "gpu=1"], "--slurm gpu: Extra inputs are not permitted"),
                          (["--launcher", "slurm", "--slurm", "time"], "--slurm time: expected key=value")):
        result = run_cli("sweep", "quickstart", "--out", str(tmp_path / "s"), *args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_sigterm_reaches_the_parallel_runs_which_checkpoint_and_the_rerun_resumes_them(synthetic, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from conftest import REPO

    out = tmp_path / "sweep"
    args = ["sweep", "quickstart", "--out", str(out), "--grid", "loss.beta=0,0.6", "--jobs", "2",
            "--set", f"data.root={synthetic}", "--set", "train.epochs=2", "--set", "train.max_steps_per_epoch=6"]
    with open(tmp_path / "stderr.txt", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "mmlabel", *args], cwd=REPO, stdout=log, stderr=log)
    runs = [out / "beta=0" / "seed-1", out / "beta=0.6" / "seed-1"]
    deadline = time.time() + 120
    while not all((run / "run.json").exists() for run in runs) and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 143, (tmp_path / "stderr.txt").read_text()
    rows = read_csv(out / "results.csv")
    assert [row["status"] for row in rows] == ["interrupted"] * 2, (tmp_path / "stderr.txt").read_text()
    assert all((run / "checkpoint.pt").exists() for run in runs)
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert [row["status"] for row in read_csv(out / "results.csv")] == ["finished"] * 2
    assert all("resuming after" in (out / "logs" / f"{cell}.seed-1.log").read_text() for cell in ("beta=0", "beta=0.6"))
