"""A sweep's runs in processes of their own: `--jobs N` on this machine, or Slurm jobs (`mmlabel.experiments.slurm`).

Each run is described by a job file, DIR/jobs/<cell>.seed-<n>.json (the base recipe, the cell's overrides, the seed),
and trained by `python -m mmlabel.experiments.launch JOBFILE`, which does what the sequential sweep does for that run
(read back where finished, resume where started, record a failure) and writes the run's row of results.csv to
DIR/jobs/<cell>.seed-<n>.row.json. The same recipe and seed train the same way in any of these processes.

Locally, `--jobs N` keeps N such processes going, each with its own GPU (`CUDA_VISIBLE_DEVICES`, round robin over
the visible GPUs) where there are GPUs, and its share of the CPU cores (`MMLABEL_THREADS`, unless set) in any case;
its output goes to DIR/logs/<cell>.seed-<n>.log. A run that fails or crashes is recorded and the others go on.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from mmlabel import atomic
from mmlabel.experiments.grid import Cell
from mmlabel.experiments.results import write_results
from mmlabel.experiments.sweep import Sweep, _finished, _pending_row, _run_one, _run_or_stop
from mmlabel.run_dir import RunDir


def job_key(cell: Cell, seed: int) -> str:
    return f"{cell.name}.seed-{seed}"


def write_job(sweep: Sweep, cell: Cell, seed: int, where: str) -> Path:
    """The job file of one run; its row file, left by an earlier attempt, is removed."""
    path = sweep.out / "jobs" / f"{job_key(cell, seed)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_json(path, {"base": sweep.base, "source": sweep.source, "labels": cell.labels,
                             "overrides": [list(item) for item in cell.overrides], "seed": seed,
                             "out": str(sweep.out), "axes": sweep.axes, "where": where})
    row_path(path).unlink(missing_ok=True)
    return path


def row_path(job: Path) -> Path:
    return job.with_suffix(".row.json")


def read_row(job: Path, log: Path, code: int | None = None) -> dict:
    """The row a run's process wrote, or a failure naming its exit code and log where it wrote none."""
    path = row_path(job)
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    how = f"exited with code {code}" if code is not None else "ended"
    return {"status": "failed", "error": f"the run's process {how} without a result (see {log})"}


def run_job(job: Path) -> int:
    """Train the run of a job file (in this process: the entry point of every launcher); 0 when finished, 3 when
    interrupted (its checkpoint saved), 1 when failed."""
    from mmlabel.training import interrupts

    spec = json.loads(job.read_text(encoding="utf-8"))
    cell = Cell(spec["labels"], [tuple(item) for item in spec["overrides"]])
    sweep = Sweep(spec["base"], spec["source"], [cell], [spec["seed"]], Path(spec["out"]), spec["axes"])
    recipe = sweep.recipes()[cell.name]
    console = Console(stderr=True, soft_wrap=True, quiet=os.environ.get("RANK", "0") != "0")
    with interrupts.stop_requests():
        if hasattr(signal, "SIGUSR2"):
            signal.signal(signal.SIGUSR2, _stop_once)  # Slurm's time-limit warning (submitit's --signal=USR2)
        row = _run_or_stop(recipe, sweep, cell, spec["seed"], spec["where"], console)
    if os.environ.get("RANK", "0") == "0":
        atomic.write_json(row_path(job), row)
    return {"finished": 0, "interrupted": 3}.get(row["status"], 1)


def _stop_once(number: int, frame) -> None:
    """SIGUSR2 asks the run to stop with a checkpoint, as SIGTERM does; sent again (by Slurm to every process of
    the job, then by `RunJob.checkpoint`), it is still one request, never the second signal that stops at once."""
    from mmlabel.training import interrupts

    if not interrupts.requested():
        os.kill(os.getpid(), signal.SIGTERM)


def worker_command(job: Path, processes: int = 1) -> list[str]:
    """The command that trains a job file: python, or torchrun with `processes` per node for a multi-GPU run."""
    if processes > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                "-m", "mmlabel.experiments.launch", str(job)]
    return [sys.executable, "-m", "mmlabel.experiments.launch", str(job)]


def run_parallel(sweep: Sweep, jobs: int, console: Console, recipes: dict) -> list[dict]:
    """Train the runs not finished yet, `jobs` at a time in processes of their own; results.csv is rewritten as each
    ends. A stop signal is passed on to the runs in progress (each saves a checkpoint) and no further run starts."""
    from mmlabel.training import interrupts

    rows = [_pending_row(sweep, cell, seed) for cell in sweep.cells for seed in sweep.seeds]
    write_results(sweep.out, rows, sweep.axes)
    todo = [index for index in range(len(rows)) if not read_back(sweep, rows, index, recipes, console)]
    write_results(sweep.out, rows, sweep.axes)
    environments = slot_environments(jobs)
    running: dict[int, tuple[subprocess.Popen, dict, Path]] = {}
    with interrupts.stop_requests():
        try:
            _keep_going(sweep, rows, todo, running, environments, console)
        except KeyboardInterrupt:  # a second signal: pass it on, the runs stop at once
            _signal_all(running, signal.SIGINT)
            _collect(sweep, rows, running, console, wait=True)
    return rows


def _keep_going(sweep: Sweep, rows: list[dict], todo: list[int], running: dict, environments: list[dict],
                console: Console) -> None:
    from mmlabel.training import interrupts

    passed_on = False
    while todo or running:
        free = [slot for slot in environments if all(slot is not used for _, used, _ in running.values())]
        while todo and free and not interrupts.requested():
            index = todo.pop(0)
            running[index] = _start(sweep, rows, index, free.pop(0), console)
        if interrupts.requested() and not passed_on:
            _signal_all(running, interrupts.requested())
            todo.clear()
            passed_on = True
        _collect(sweep, rows, running, console)
        time.sleep(0.2)


def read_back(sweep: Sweep, rows: list[dict], index: int, recipes: dict, console: Console) -> bool:
    """A finished run's row, read back in this process (no process started for it); False if it is not finished."""
    cell, seed = sweep.cells[index // len(sweep.seeds)], rows[index]["seed"]
    if not _finished(RunDir(sweep.run_dir(cell, seed))):
        return False
    rows[index] = {**rows[index], **_run_one(recipes[cell.name], sweep, cell, seed, where(sweep, rows, index), console)}
    return True


def where(sweep: Sweep, rows: list[dict], index: int) -> str:
    return f"[{index + 1}/{len(rows)}] {sweep.cells[index // len(sweep.seeds)].name} seed {rows[index]['seed']}"


def _start(sweep: Sweep, rows: list[dict], index: int, environment: dict, console: Console):
    cell, seed = sweep.cells[index // len(sweep.seeds)], rows[index]["seed"]
    job = write_job(sweep, cell, seed, where(sweep, rows, index))
    log = sweep.out / "logs" / f"{job_key(cell, seed)}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    pinned = f", CUDA_VISIBLE_DEVICES={environment['CUDA_VISIBLE_DEVICES']}" if "CUDA_VISIBLE_DEVICES" in environment else ""
    console.print(f"{where(sweep, rows, index)}: training into {sweep.run_dir(cell, seed)} (log {log}{pinned})")
    with open(log, "w", encoding="utf-8") as handle:  # the child keeps its own descriptor
        process = subprocess.Popen(worker_command(job), stdout=handle, stderr=subprocess.STDOUT,
                                   env={**os.environ, **environment}, start_new_session=True)
    return process, environment, job


def _collect(sweep: Sweep, rows: list[dict], running: dict, console: Console, wait: bool = False) -> None:
    """Record the runs whose processes ended (all of them, waiting, with `wait`)."""
    for index, (process, _, job) in list(running.items()):
        code = process.wait() if wait else process.poll()
        if code is None:
            continue
        del running[index]
        log = sweep.out / "logs" / f"{job.stem}.log"
        rows[index] = {**rows[index], **read_row(job, log, code)}
        write_results(sweep.out, rows, sweep.axes)
        status, error = rows[index]["status"], rows[index].get("error", "")
        figure = f": test f1 {rows[index].get('test.f1', float('nan')):.2f}" if status == "finished" else f": {error}"
        console.print(f"{where(sweep, rows, index)}: {status}{figure}")


def _signal_all(running: dict, number: int) -> None:
    for process, _, _ in running.values():
        if process.poll() is None:
            process.send_signal(number)


def slot_environments(jobs: int) -> list[dict]:
    """One environment per parallel run: its GPU where there are GPUs, and its share of the CPU threads."""
    from mmlabel.threads import ENV_THREADS, choose_threads

    gpus = visible_gpus()
    threads = str(choose_threads(None, jobs))
    slots = []
    for slot in range(jobs):
        environment = {ENV_THREADS: threads}
        if gpus:
            environment["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
        slots.append(environment)
    return slots


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    named = [name.strip() for name in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if name.strip()]
    return named[:count] if named else [str(number) for number in range(count)]


if __name__ == "__main__":
    from mmlabel.errors import MMLabelError

    try:
        sys.exit(run_job(Path(sys.argv[1])))
    except MMLabelError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
