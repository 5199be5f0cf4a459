"""A search's workers in processes of their own: `--jobs K` on this machine, or K Slurm jobs (`--launcher slurm`,
through the sweep's submitit set-up in `mmlabel.experiments.slurm`). Every worker opens the same study storage and
runs trials until it holds `--trials` (`mmlabel.tuning.study.run_trials`); a worker's output goes to
OUT/logs/worker-<k>.log, and each gets its own GPU where there are GPUs and its share of the CPU cores, as the
sweep's runs do. The Slurm jobs' ids are kept in OUT/tune-jobs.json: the same command run again while they still
run waits for them instead of submitting more.
"""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from mmlabel import atomic

JOBS_FILE = "tune-jobs.json"


def run_local_workers(spec_path: Path, jobs: int, console: Console, progress) -> bool:
    """Start `jobs` worker processes and wait for them; a stop signal is passed on to them (each trial in progress
    saves its checkpoint and is marked interrupted). Returns whether every worker ended normally. `progress()` is
    called while waiting."""
    import os

    from mmlabel.experiments.launch import slot_environments
    from mmlabel.training import interrupts

    out = spec_path.parent
    (out / "logs").mkdir(parents=True, exist_ok=True)
    processes = []
    for worker, environment in enumerate(slot_environments(jobs)):
        log = out / "logs" / f"worker-{worker}.log"
        with open(log, "w", encoding="utf-8") as handle:
            processes.append(subprocess.Popen(worker_command(spec_path, worker), stdout=handle,
                                              stderr=subprocess.STDOUT, env={**os.environ, **environment},
                                              start_new_session=True))
        console.print(f"worker {worker}: started (log {log})")
    passed_on = False
    with interrupts.stop_requests():
        try:
            while any(process.poll() is None for process in processes):
                if interrupts.requested() and not passed_on:
                    _signal_all(processes, interrupts.requested())
                    passed_on = True
                progress()
                time.sleep(0.5)
        except KeyboardInterrupt:  # a second signal: the workers stop at once
            _signal_all(processes, signal.SIGINT)
            for process in processes:
                process.wait()
    return all(process.returncode == 0 for process in processes)


def worker_command(spec_path: Path, worker: int) -> list[str]:
    return [sys.executable, "-m", "mmlabel.tuning.study", str(spec_path), str(worker)]


def _signal_all(processes: list, number: int) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(number)


class SlurmWorker:
    """What a Slurm job runs: one worker's loop, in the job's process."""

    def __init__(self, spec_path: str, worker: int):
        self.spec_path, self.worker = spec_path, worker

    def __call__(self) -> int:
        from mmlabel.tuning.study import TuneSpec, run_trials

        return run_trials(TuneSpec.read(Path(self.spec_path)), self.worker)


def run_slurm_workers(spec_path: Path, jobs: int, options, console: Console, progress,
                      poll_seconds: float = 2.0) -> bool:
    """Submit `jobs` workers as one Slurm job array (unless the jobs of an earlier command still run) and wait for
    them. A stop signal ends the waiting only; the jobs go on and the same command waits for them again."""
    from mmlabel.experiments.slurm import LIVE_STATES, SlurmError, _executor, queue_states
    from mmlabel.training import interrupts

    out = spec_path.parent
    ids = _read_ids(out)
    states = queue_states(ids)
    if states is None:
        raise SlurmError("squeue failed: is the Slurm controller reachable? Nothing was submitted")
    if not any(states.get(job_id) in LIVE_STATES for job_id in ids):
        executor = _executor(out, options, jobs)
        with executor.batch():
            submitted = [executor.submit(SlurmWorker(str(spec_path.resolve()), worker)) for worker in range(jobs)]
        ids = [job.job_id for job in submitted]
        atomic.write_json(out / JOBS_FILE, ids)
        console.print(f"submitted {jobs} worker{'s' if jobs > 1 else ''} to Slurm: jobs {', '.join(ids)}")
    else:
        console.print(f"the workers of an earlier command are still in Slurm (jobs {', '.join(ids)}): waiting")
    with interrupts.stop_requests():
        while not interrupts.requested():
            states = queue_states(ids)
            progress()
            if states is not None and not any(states.get(job_id) in LIVE_STATES for job_id in ids):
                return True
            time.sleep(poll_seconds)
    console.print(f"the workers go on in Slurm (jobs {', '.join(ids)}); the same command waits for them again")
    return False


def _read_ids(out: Path) -> list[str]:
    path = Path(out) / JOBS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
