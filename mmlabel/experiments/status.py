"""Where each run of a sweep stands (`mmlabel sweep-status DIR`): results.csv's status, made current by the Slurm
queue for the runs submitted as jobs (DIR/slurm-jobs.json): queued or running while Slurm lists them so."""
import shutil
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
        states.append({"cell": row["cell"], "seed": row["seed"], "status": status, "job_id": job_id})
    return states
