"""`--launcher slurm` against a real single-node Slurm (tests/slurm_cluster.py): a sweep of 4 runs as a job array,
one job requeued while it trains (as preemption does) and one sent the time-limit warning (SIGUSR2: submitit's
checkpoint hook requeues it), both resumed from their checkpoints, the same figures as the sweep
run locally; the waiting command stopped and run again submits nothing twice; `mmlabel sweep-status`. Jobs Slurm
will never start (more CPUs than the node has: PartitionConfig) cancelled and named in one line, sbatch refusing
more memory than the node has, and a busy queue waited for with its reason shown.

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
from slurm_cluster import module_cluster
from test_launchers import figures, read_csv

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """SLURM_CONF of a running test cluster, for this module's tests; the daemons are stopped after them."""
    yield from module_cluster(tmp_path_factory)


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


def node_size() -> tuple[int, int]:
    """The test node's CPUs and memory (MB), as tests/slurm_cluster.py configures it."""
    return os.cpu_count() or 1, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20


def listed_jobs(environment: dict) -> str:
    return subprocess.run(["squeue", "-h", "-r", "-o", "%i %T %r"], env=environment, capture_output=True, text=True,
                          check=True, timeout=30).stdout


def test_a_sweep_asking_for_more_cpus_than_a_node_has_is_cancelled_and_named(slurm, synthetic, tmp_path):
    """Slurm accepts the array and leaves it pending with reason PartitionConfig for ever: the command says so in
    one line with the option and the node's CPUs, cancels the jobs and exits 2."""
    cpus, _ = node_size()
    out = tmp_path / "too-many-cpus"
    result = run_cli(*sweep_args(synthetic, out, "--launcher", "slurm", "--slurm", f"cpus={cpus + 2}"), env=slurm)
    ids = json.loads((out / "slurm-jobs.json").read_text())
    assert result.returncode == 2, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: Slurm will never start job ") and "reason PartitionConfig" in error, error
    assert f"--slurm cpus={cpus} or fewer (each run asks for cpus={cpus + 2}; the nodes of partition test have " \
           f"at most {cpus} CPUs)" in error and "cancelled the 4 jobs" in error, error
    assert "Traceback" not in result.stderr
    queue = listed_jobs(process_environment(slurm))
    assert len(ids) == 4 and not any(job_id in queue.split() for job_id in ids.values()), queue
    rows = read_csv(out / "results.csv")
    assert [row["status"] for row in rows] == ["failed"] * 4 and "PartitionConfig" in rows[0]["error"]


def test_sbatch_refusing_the_array_is_one_line_naming_the_option(slurm, synthetic, tmp_path):
    """More memory than the node has: sbatch itself refuses ("Requested node configuration is not available")."""
    _, memory_mb = node_size()
    wanted = memory_mb // 1024 + 8
    out = tmp_path / "too-much-memory"
    result = run_cli(*sweep_args(synthetic, out, "--launcher", "slurm", "--slurm", "cpus=1", "--slurm",
                                 f"mem_gb={wanted}"), env=slurm)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: sbatch refused the job array: Requested node configuration is not available; set --slurm "
        f"mem_gb={memory_mb // 1024} or less (each run asks for mem_gb={wanted}; the nodes of partition test have at "
        f"most {memory_mb} MB); nothing was submitted"), result.stderr
    assert "sbatch: error" not in result.stderr and not (out / "slurm-jobs.json").exists()


def test_a_busy_queue_keeps_the_sweep_waiting_and_shows_why(slurm, synthetic, tmp_path):
    """Every CPU of the node taken by another job: the sweep's jobs wait for Resources, which ends by itself; the
    command says so and goes on waiting (here until Ctrl-C), the jobs left in the queue."""
    cpus, _ = node_size()
    environment = process_environment(slurm)
    blocker = subprocess.run(["sbatch", "--parsable", "-c", str(cpus), "-o", "/dev/null", "--wrap", "sleep 120"],
                             env=environment, capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    out = tmp_path / "busy"
    try:
        wait_for(lambda: f"{blocker} RUNNING" in listed_jobs(environment), 30, "the blocking job to start")
        with open(tmp_path / "busy.txt", "w") as log:
            waiting = subprocess.Popen([sys.executable, "-m", "mmlabel", *sweep_args(synthetic, out, "--launcher",
                                        "slurm", "--slurm", "cpus=1")], cwd=REPO, env=environment, stdout=log,
                                       stderr=subprocess.STDOUT)
        wait_for(lambda: "Slurm: 4 pending (Resources" in (tmp_path / "busy.txt").read_text()
                 or waiting.poll() is not None, 60, "the queue's reason")
        assert waiting.poll() is None, (tmp_path / "busy.txt").read_text()
        ids = json.loads((out / "slurm-jobs.json").read_text())
        queue = listed_jobs(environment)
        assert all(f"{job_id} PENDING" in queue for job_id in ids.values()), queue
        waiting.send_signal(signal.SIGINT)
        assert waiting.wait(timeout=60) == 130, (tmp_path / "busy.txt").read_text()
        assert "4 runs still in Slurm" in (tmp_path / "busy.txt").read_text()
    finally:
        ids = json.loads((out / "slurm-jobs.json").read_text()) if (out / "slurm-jobs.json").exists() else {}
        subprocess.run(["scancel", blocker, *ids.values()], env=environment, check=False, timeout=30)
        wait_for(lambda: not listed_jobs(environment).strip(), 30, "the cancelled jobs to leave the queue")
