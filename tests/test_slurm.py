"""`--launcher slurm` against a real single-node Slurm (tests/slurm_cluster.py): a sweep of 4 runs as a job array,
one job requeued while it trains (as preemption does) and one sent the time-limit warning (SIGUSR2: submitit's
checkpoint hook requeues it), both resumed from their checkpoints, the same figures as the sweep
run locally; the waiting command stopped and run again submits nothing twice; `mmlabel sweep-status`.

Where Slurm cannot start here the test skips and says why; MMLABEL_REQUIRE_SLURM=1 (set by .ci/run) makes that a
failure instead."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, process_environment, run_cli, sweep_args
from slurm_cluster import ClusterUnavailable, start, stop
from test_launchers import figures, read_csv

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """SLURM_CONF of a running test cluster, for this module's tests; the daemons are stopped after them."""
    folder = tmp_path_factory.mktemp("slurm")
    try:
        environment = start(folder)
    except (ClusterUnavailable, subprocess.SubprocessError, OSError) as error:
        if os.environ.get("MMLABEL_REQUIRE_SLURM") == "1":
            pytest.fail(f"Slurm is required here (MMLABEL_REQUIRE_SLURM=1) but could not start: {error}")
        print(f"\nSlurm tests skipped: {error}", file=sys.stderr)
        pytest.skip(f"Slurm cannot start here: {error}")
    yield environment
    stop(folder)


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def warn_of_time_limit(job_id: str, environment: dict) -> None:
    """What Slurm does `signal_delay_s` before the time limit (submitit's `--signal=USR2@...`): SIGUSR2 to the
    job's step processes, here its Python processes (submitit's, whose handler calls RunJob.checkpoint, and the
    run's). Sent directly: `scancel --signal` retries while the job is requeued and hits its next start."""
    raw_id = subprocess.run(["squeue", "-h", "-o", "%A", "-j", job_id], env=environment, capture_output=True,
                            text=True, check=True, timeout=30).stdout.strip()  # listpids wants the plain job id
    listed = subprocess.run(["scontrol", "listpids", raw_id], env=environment, capture_output=True, text=True,
                            check=True, timeout=30)
    pids = [int(line.split()[0]) for line in listed.stdout.splitlines()[1:] if line.split()[0].isdigit()]
    pythons = [pid for pid in pids if b"python" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(pythons) >= 2, listed.stdout
    for pid in pythons:
        os.kill(pid, signal.SIGUSR2)


def test_a_slurm_sweep_with_a_requeued_job_gives_the_local_figures(slurm, synthetic, reference_sweep, tmp_path):
    out = tmp_path / "slurm"
    args = sweep_args(synthetic, out, "--launcher", "slurm", "--slurm", "cpus=1", "--slurm", "time=10")
    environment = process_environment(slurm)
    with open(tmp_path / "first.txt", "w") as log:
        first = subprocess.Popen([sys.executable, "-m", "mmlabel", *args], cwd=REPO, env=environment,
                                 stdout=log, stderr=subprocess.STDOUT)
    for run in ("seed-1", "seed-2"):  # the two jobs that start first (one CPU each)
        wait_for(lambda: (out / "beta=0" / run / "run.json").exists() or first.poll() is not None, 120, run)
    job_id, warned_id = (json.loads((out / "slurm-jobs.json").read_text())[f"beta=0.seed-{n}"] for n in (1, 2))
    subprocess.run(["scontrol", "requeue", job_id], env=environment, check=True, timeout=30)  # as preemption does
    warn_of_time_limit(warned_id, environment)
    during = run_cli("sweep-status", str(out), env=slurm)  # results.csv says "pending"; the queue says more
    ids = json.loads((out / "slurm-jobs.json").read_text())
    assert during.returncode == 0 and len(set(ids.values())) == 4, during.stderr
    for line in during.stdout.splitlines():
        cell, _, seed, status, job = line.split()
        assert status in ("queued", "running") and job == ids[f"{cell}.seed-{seed}"], during.stdout
    first.send_signal(signal.SIGINT)  # stop waiting; the jobs go on in Slurm
    assert first.wait(timeout=60) == 130, (tmp_path / "first.txt").read_text()
    assert "submitted as job" in (tmp_path / "first.txt").read_text()

    second = run_cli(*args, env=slurm)  # submits nothing again, waits for the jobs
    assert second.returncode == 0, second.stderr
    assert "submitted as job" not in second.stderr and "already in Slurm" in second.stderr
    for requeued in (job_id, warned_id):
        shown = subprocess.run(["scontrol", "show", "job", requeued], env=environment, capture_output=True, text=True)
        assert "Restarts=1" in shown.stdout, shown.stdout
        job_log = "".join(path.read_text() for path in (out / "slurm-logs").glob(f"{requeued}_*log.err"))
        assert "resuming after" in job_log, job_log
    submitit_log = "".join(path.read_text() for path in (out / "slurm-logs").glob(f"{warned_id}_*log.out"))
    assert "Calling checkpoint method" in submitit_log and f"Requeued job {warned_id}" in submitit_log
    rows = read_csv(out / "results.csv")
    assert [row["status"] for row in rows] == ["finished"] * 4
    assert figures(rows) == figures(read_csv(reference_sweep / "results.csv"))

    status = run_cli("sweep-status", str(out), env=slurm)
    assert status.returncode == 0 and "4 finished" in status.stderr, status.stderr
    assert f"beta=0  seed 1  finished  {job_id}" in status.stdout
    again = run_cli(*args, env=slurm)
    assert again.returncode == 0 and again.stderr.count("already finished, skipped") == 4, again.stderr
