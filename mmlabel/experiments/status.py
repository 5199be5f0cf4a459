"""Where each run of a sweep stands (`mmlabel sweep-status DIR`): results.csv's status, made current by the Slurm
queue for the runs submitted as jobs (DIR/slurm-jobs.json): queued or running while Slurm lists them so; and, for a
run of this machine, by its run.json: running while the process that started it is alive, interrupted once that
process is gone without recording an end (killed)."""
import shutil
import socket
from pathlib import Path

from mmlabel.errors import MMLabelError

QUEUED = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD", "SUSPENDED"}


def run_states(out: Path) -> list[dict]:
    """[{cell, seed, status, job_id}] in results.csv's order."""
    from mmlabel.experiments.results import read_results
    from mmlabel.experiments.slurm import LIVE_STATES, queue_states, read_job_ids

    path = Path(out) / "results.csv"
    if not path.exists():
        raise MMLabelError(f"{path}: no such file (not a sweep folder, or the sweep has not started)")
    ids = read_job_ids(out)
    live = (queue_states(list(ids.values())) if ids and shutil.which("squeue") else {}) or {}
    states = []
    for row in read_results(path):
        job_id = ids.get(f"{row['cell']}.seed-{row['seed']}", "")
        status = row["status"]
        if live.get(job_id) in LIVE_STATES:
            status = "queued" if live[job_id] in QUEUED else "running"
        elif status in ("pending", "interrupted"):
            status = _local_state(Path(out) / row["cell"] / f"seed-{row['seed']}") or status
        states.append({"cell": row["cell"], "seed": row["seed"], "status": status, "job_id": job_id})
    return states


def _local_state(run_dir: Path) -> str | None:
    """"running" or "interrupted" for a run whose run.json says running and was started on this machine."""
    from mmlabel.run_dir import RunDir
    from mmlabel.threads import process_alive

    info = RunDir(run_dir).info()
    if info.get("status") != "running" or info.get("host") != socket.gethostname() or not info.get("pid"):
        return None
    return "running" if process_alive(int(info["pid"])) else "interrupted"
