"""A sweep's runs as Slurm jobs, submitted with submitit (https://github.com/facebookincubator/submitit): one job per
cell and seed, all in one job array; `--jobs N` caps how many run at once.

Each job runs `python -m mmlabel.experiments.launch DIR/jobs/<cell>.seed-<n>.json` (torchrun with one process per GPU
for `gpus` > 1) in its allocation, so it trains exactly what the local sweep trains. Slurm's own stop signals reach
that process: SIGTERM (`scontrol requeue`, preemption) makes it save a checkpoint and stop; Slurm requeues the job and
the next start resumes from the checkpoint. Before the time limit, submitit's warning signal (SIGUSR2) calls
`RunJob.checkpoint`: the run saves its checkpoint, the job requeues itself and resumes.

The job ids are kept in DIR/slurm-jobs.json; a run whose job is still queued or running is never submitted again,
nor a finished one. Slurm's and submitit's logs: DIR/slurm-logs/<job id>_0_log.out / .err.

While waiting, the queue's state and Slurm's pending reasons are printed as they change; jobs pending for a reason
that waiting cannot end (`slurm_pending`: PartitionConfig, InvalidAccount, ...) are cancelled and reported in one
line naming the `--slurm` option to change, as is sbatch refusing the array (both exit code 2).
"""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from rich.console import Console

from mmlabel import atomic
from mmlabel.errors import MMLabelError, RecipeError
from mmlabel.experiments.launch import job_key, read_back, read_row, where, worker_command, write_job
from mmlabel.experiments.results import write_results
from mmlabel.experiments.slurm_pending import fix_for_reason, fix_for_sbatch_error, is_permanent, pending_summary
from mmlabel.experiments.sweep import Sweep, _pending_row

JOBS_FILE = "slurm-jobs.json"
LIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
               "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"}
_child: list[subprocess.Popen] = []  # the training process of the job running in this process


class SlurmError(MMLabelError):
    """Slurm's commands do not answer, or Slurm refuses the jobs or will never start them."""


class SlurmOptions(BaseModel):
    """What each job asks Slurm for (`--slurm key=value`)."""

    model_config = ConfigDict(extra="forbid")
    partition: str | None = None
    time: int = 240  # minutes per job; a longer run requeues itself and resumes
    gpus: int = 0  # GPUs per run; more than one trains it with torchrun, one process per GPU
    cpus: int = 4  # CPU cores per run
    mem_gb: float | None = None
    signal_delay_s: int = 120  # how long before the time limit the job is told to checkpoint
    sbatch: dict[str, str] = {}  # other sbatch parameters: --slurm sbatch.account=myteam


def parse_slurm_options(texts: list[str]) -> SlurmOptions:
    """`key=value` options (`sbatch.<name>=value` for any other sbatch parameter) -> SlurmOptions."""
    from pydantic import ValidationError

    values: dict = {"sbatch": {}}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise RecipeError(f"--slurm {text}: expected key=value")
        if key.startswith("sbatch."):
            values["sbatch"][key.removeprefix("sbatch.")] = value
        else:
            values[key.strip()] = value
    try:
        return SlurmOptions(**values)
    except ValidationError as error:
        first = error.errors()[0]
        raise RecipeError(f"--slurm {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


class RunJob:
    """What a Slurm job calls: train one job file in a child process; `checkpoint` is submitit's requeue hook."""

    def __init__(self, job: str, processes: int = 1, checkpoint_wait_s: int = 60):
        self.job, self.processes, self.checkpoint_wait_s = job, processes, checkpoint_wait_s

    def __call__(self) -> dict:
        from mmlabel.threads import ENV_THREADS

        environment = dict(os.environ)
        if ENV_THREADS not in environment and os.environ.get("SLURM_CPUS_PER_TASK"):
            environment[ENV_THREADS] = os.environ["SLURM_CPUS_PER_TASK"]
        _child[:] = [subprocess.Popen(worker_command(Path(self.job), self.processes), env=environment)]
        while _child[0].poll() is None:  # not wait(): `checkpoint` runs in a signal handler and waits itself
            time.sleep(1)
        code = _child[0].returncode
        return read_row(Path(self.job), Path(self.job).parent.parent / "slurm-logs", code)

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on the time-limit warning: the run saves a checkpoint and stops; the same job,
        requeued, resumes it."""
        import submitit

        if _child and _child[0].poll() is None:
            _child[0].send_signal(signal.SIGUSR2)  # one stop request, however many USR2 Slurm sent too
            try:
                _child[0].wait(timeout=self.checkpoint_wait_s)
            except subprocess.TimeoutExpired:
                pass  # requeued all the same: the run resumes from its previous checkpoint
        return submitit.helpers.DelayedSubmission(RunJob(self.job, self.processes, self.checkpoint_wait_s))


def run_on_slurm(sweep: Sweep, recipes: dict, options: SlurmOptions, jobs: int | None, console: Console,
                 poll_seconds: float = 5.0) -> list[dict]:
    """Submit the runs neither finished nor queued nor running, then wait for all, rewriting results.csv as each
    ends. A stop signal ends the waiting; the jobs go on in Slurm and the same command waits for them again."""
    from mmlabel.training import interrupts

    rows = [_pending_row(sweep, cell, seed) for cell in sweep.cells for seed in sweep.seeds]
    todo = [index for index in range(len(rows)) if not read_back(sweep, rows, index, recipes, console)]
    write_results(sweep.out, rows, sweep.axes)
    ids = _submit_missing(sweep, rows, todo, options, jobs, console)
    shown = ""
    with interrupts.stop_requests():
        while todo and not interrupts.requested():
            queued = queue_jobs([ids[_key(sweep, rows, i)] for i in todo])
            if queued is None:
                time.sleep(poll_seconds)
                continue
            _stop_if_stuck(sweep, rows, todo, ids, queued, options)
            shown = _show_queue(queued, shown, console)
            states = {job_id: state for job_id, (state, _, _) in queued.items()}
            for index in [i for i in todo if states.get(ids[_key(sweep, rows, i)]) not in LIVE_STATES]:
                todo.remove(index)
                job = sweep.out / "jobs" / f"{_key(sweep, rows, index)}.json"
                rows[index] = {**rows[index], **read_row(job, sweep.out / "slurm-logs")}
                write_results(sweep.out, rows, sweep.axes)
                console.print(f"{where(sweep, rows, index)} (job {ids[_key(sweep, rows, index)]}): "
                              f"{rows[index]['status']} {rows[index].get('error', '')}".rstrip())
            time.sleep(poll_seconds if todo else 0)
    if todo:
        console.print(f"{len(todo)} runs still in Slurm; `mmlabel sweep-status {sweep.out}` shows them, the same "
                      "command waits for them again")
    return rows


def _key(sweep: Sweep, rows: list[dict], index: int) -> str:
    return job_key(sweep.cells[index // len(sweep.seeds)], rows[index]["seed"])


def _show_queue(queued: dict[str, tuple[str, str, str]], shown: str, console: Console) -> str:
    """Print where the jobs stand in the queue (`2 running, 2 pending (Priority)`) when it changed; returns it."""
    line = pending_summary({job_id: (state, reason) for job_id, (state, reason, _) in queued.items()})
    if line and line != shown:
        console.print(f"Slurm: {line}")
    return line or shown


def _stop_if_stuck(sweep: Sweep, rows: list[dict], todo: list[int], ids: dict[str, str],
                   queued: dict[str, tuple[str, str, str]], options: SlurmOptions) -> None:
    """Cancel the jobs pending for a reason that waiting cannot end (see `slurm_pending`), record their runs as
    failed and raise, naming Slurm's reason and the option that fixes it; the other jobs go on."""
    stuck = {job_id: (reason, partition) for job_id, (state, reason, partition) in queued.items()
             if state == "PENDING" and is_permanent(reason)}
    if not stuck:
        return
    refused = cancel(list(stuck))
    first = next(iter(stuck))
    reason, partition = stuck[first]
    for index in todo:
        if ids[_key(sweep, rows, index)] in stuck:
            rows[index] = {**rows[index], "status": "failed", "error": f"Slurm: {reason}; cancelled"}
    write_results(sweep.out, rows, sweep.axes)
    runs = [where(sweep, rows, i).split("] ", 1)[1] for i in todo if ids[_key(sweep, rows, i)] in stuck]
    more = f" and {len(runs) - 1} more" if len(runs) > 1 else ""
    others = len(queued) - len(stuck)
    going = f"; the other {others} jobs go on in Slurm" if others else ""
    done = f"scancel of its {len(stuck)} jobs failed ({refused}): cancel them yourself" if refused else \
        f"cancelled the {len(stuck)} jobs pending for it (scancel)"
    raise SlurmError(f"Slurm will never start job {first} ({runs[0]}){more}: pending with reason {reason}; "
                     f"set {fix_for_reason(reason, options, partition)}; {done}{going}")


def cancel(job_ids: list[str]) -> str:
    """scancel the jobs; returns scancel's complaint, "" when it cancelled them (or they had ended meanwhile)."""
    try:
        done = subprocess.run(["scancel", *job_ids], capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        return str(error)
    said = " ".join(line.strip() for line in done.stderr.splitlines() if "already completed" not in line).strip()
    return said if done.returncode != 0 and said else ""


def _submit_missing(sweep: Sweep, rows: list[dict], todo: list[int], options: SlurmOptions, jobs: int | None,
                    console: Console) -> dict[str, str]:
    """Submit, as one job array, the runs of `todo` whose job is not queued or running; returns every run's job id."""
    known = read_job_ids(sweep.out)
    states = queue_states([known[k] for k in (_key(sweep, rows, i) for i in todo) if k in known])
    if states is None:
        raise SlurmError("squeue failed: is the Slurm controller reachable? Nothing was submitted")
    missing = [i for i in todo if states.get(known.get(_key(sweep, rows, i), "")) not in LIVE_STATES]
    for index in todo:
        if index not in missing:
            console.print(f"{where(sweep, rows, index)}: job {known[_key(sweep, rows, index)]} already in Slurm")
    if missing:
        executor = _executor(sweep.out, options, jobs or len(missing))
        files = [write_job(sweep, sweep.cells[i // len(sweep.seeds)], rows[i]["seed"], where(sweep, rows, i))
                 for i in missing]
        submitted = _submit(executor, files, options)
        for index, job in zip(missing, submitted):
            known[_key(sweep, rows, index)] = job.job_id
            console.print(f"{where(sweep, rows, index)}: submitted as job {job.job_id}")
        atomic.write_json(sweep.out / JOBS_FILE, known)
    return {_key(sweep, rows, i): known[_key(sweep, rows, i)] for i in todo}


def _submit(executor, files: list[Path], options: SlurmOptions) -> list:
    """One job array of `files`; sbatch refusing it (a partition's limit enforced at submission) is a one-line
    error naming the option, its multi-line message to stderr (printed by submitit) kept out of the way."""
    import contextlib
    import io

    from submitit.core.utils import FailedJobError

    wait = max(options.signal_delay_s - 15, 5)  # the checkpoint must be written before the time limit
    try:
        with contextlib.redirect_stderr(io.StringIO()), executor.batch():
            return [executor.submit(RunJob(str(path.resolve()), max(options.gpus, 1), wait)) for path in files]
    except FailedJobError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        said = lines[-1].removeprefix("sbatch: error: ").removeprefix("Batch job submission failed: ") if lines \
            else "no message"
        raise SlurmError(f"sbatch refused the job array: {said}; set {fix_for_sbatch_error(str(error), options)}; "
                         "nothing was submitted") from None


def _executor(out: Path, options: SlurmOptions, parallel: int):
    import submitit

    executor = submitit.SlurmExecutor(folder=out / "slurm-logs", max_num_timeout=1000)
    executor.update_parameters(
        partition=options.partition, time=options.time, cpus_per_task=options.cpus, nodes=1, ntasks_per_node=1,
        gpus_per_node=options.gpus or None, mem=_megabytes(options.mem_gb),
        signal_delay_s=options.signal_delay_s, array_parallelism=parallel, job_name="mmlabel",
        additional_parameters=dict(options.sbatch))
    return executor


def _megabytes(gigabytes: float | None) -> str | None:
    """sbatch's --mem for `mem_gb`, in whole MB (Slurm's G is 1024 M): sbatch refuses a fraction such as 48.0GB."""
    return f"{round(gigabytes * 1024)}M" if gigabytes else None


def read_job_ids(out: Path) -> dict[str, str]:
    path = Path(out) / JOBS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def queue_states(job_ids: list[str]) -> dict[str, str] | None:
    """{job id: Slurm state} of the jobs squeue still lists (one line per array task); None when squeue fails (the
    controller busy or restarting): then nothing is known to have ended."""
    queued = queue_jobs(job_ids)
    return None if queued is None else {job_id: state for job_id, (state, _, _) in queued.items()}


def queue_jobs(job_ids: list[str]) -> dict[str, tuple[str, str, str]] | None:
    """{job id: (state, reason, partition)} of the jobs squeue still lists, the reason as `squeue -o %r` gives it
    (`Priority`, `PartitionConfig`, `ReqNodeNotAvail, UnavailableNodes:n1`); None when squeue fails."""
    if not job_ids:
        return {}
    listed = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T %P %r"], capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        return None
    jobs = {}
    for line in listed.stdout.splitlines():
        fields = line.split(maxsplit=3)  # the reason, last, may hold spaces
        if len(fields) >= 2:
            jobs[fields[0]] = (fields[1], fields[3] if len(fields) > 3 else "", fields[2] if len(fields) > 2 else "")
    return {job_id: jobs[job_id] for job_id in job_ids if job_id in jobs}
