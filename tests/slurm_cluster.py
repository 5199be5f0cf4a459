"""A single-node Slurm cluster for the tests, in a folder of its own: munged, slurmctld and slurmd (Debian's
`slurm-wlm` and `munge`) configured for a container (no cgroups: proctrack/linuxproc, task/none, no accounting),
this host as its one node with its real CPUs, on free ports. `SLURM_CONF` points Slurm's commands at it.

    python tests/slurm_cluster.py start DIR     # prints the export line for SLURM_CONF
    python tests/slurm_cluster.py stop DIR
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol")


class ClusterUnavailable(RuntimeError):
    """Slurm cannot run here; the message says why."""


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if shutil.which(name) is None and not Path("/usr/sbin", name).exists()]


def start(folder: Path, timeout: float = 30.0) -> dict:
    """Start the three daemons; returns the environment (SLURM_CONF) that Slurm's commands need. Raises
    ClusterUnavailable with the reason (and the daemons stopped) when the node does not come up."""
    if missing_binaries():
        raise ClusterUnavailable(f"not installed: {', '.join(missing_binaries())} (apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        raise ClusterUnavailable("the test cluster runs its daemons as root")
    folder = Path(folder).resolve()
    for sub in ("state", "spool", "munge"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    _start_munge(folder)
    conf = folder / "slurm.conf"
    conf.write_text(_config(folder), encoding="utf-8")
    environment = {"SLURM_CONF": str(conf)}
    for daemon in ("slurmctld", "slurmd"):
        log = open(folder / f"{daemon}.out", "w")
        process = subprocess.Popen([_binary(daemon), "-D", "-f", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **environment}, start_new_session=True)
        (folder / f"{daemon}.pid").write_text(str(process.pid))
    if not _node_idle(environment, timeout):
        logs = " | ".join((folder / f"{d}.log").read_text(errors="replace")[-300:] for d in ("slurmctld", "slurmd")
                          if (folder / f"{d}.log").exists())
        stop(folder)
        raise ClusterUnavailable(f"the Slurm node did not come up within {timeout:.0f} s: {logs}")
    return environment


def module_cluster(tmp_path_factory):
    """The body of a module-scoped fixture: SLURM_CONF and friends of a running test cluster, stopped afterwards; a
    skip with the reason where Slurm cannot start here (a failure under MMLABEL_REQUIRE_SLURM=1, as `.ci/run` sets)."""
    import pytest

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


def stop(folder: Path) -> None:
    """Stop the daemons started in `folder` (by their recorded process ids): all asked at once, then waited for."""
    folder = Path(folder).resolve()
    pid_files = [folder / f"{name}.pid" for name in ("slurmd", "slurmctld")] + [folder / "munge" / "munged.pid"]
    pids = [int(path.read_text().strip()) for path in pid_files if path.exists()]
    for path in pid_files[:2]:
        path.unlink(missing_ok=True)
    _terminate(pids)


def _start_munge(folder: Path) -> None:
    key = folder / "munge" / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
    subprocess.run([_binary("munged"), "--force", f"--socket={folder / 'munge' / 'munge.socket'}",
                    f"--key-file={key}", f"--pid-file={folder / 'munge' / 'munged.pid'}",
                    f"--log-file={folder / 'munge' / 'munged.log'}", f"--seed-file={folder / 'munge' / 'seed'}"],
                   check=True, capture_output=True, timeout=30)


def _config(folder: Path) -> str:
    host = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    controller, node = _free_port(), _free_port()
    return f"""ClusterName=mmlabeltest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={controller}
SlurmdPort={node}
AuthType=auth/munge
# a requeued job waits cred_expire seconds (default 120) before it starts again
AuthInfo=socket={folder / 'munge' / 'munge.socket'},cred_expire=10
CredType=cred/munge
StateSaveLocation={folder / 'state'}
SlurmdSpoolDir={folder / 'spool'}
SlurmctldPidFile={folder / 'state' / 'slurmctld.pidfile'}
SlurmdPidFile={folder / 'spool' / 'slurmd.pidfile'}
SlurmctldLogFile={folder / 'slurmctld.log'}
SlurmdLogFile={folder / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
KillWait=30
MinJobAge=600
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def _node_idle(environment: dict, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        listed = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                                env={**os.environ, **environment}, check=False)
        if listed.returncode == 0 and "idle" in listed.stdout:
            return True
        time.sleep(0.5)
    return False


def _binary(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _terminate(pids: list[int]) -> None:
    """SIGTERM to each process, then SIGKILL to those still there after 10 s."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + 10
    while pids and time.time() < deadline:
        pids = [pid for pid in pids if _alive(pid)]
        time.sleep(0.05)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a child of this process that has exited but was not reaped yet is gone for our purpose
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


if __name__ == "__main__":
    command, where = sys.argv[1], Path(sys.argv[2])
    if command == "start":
        print(f"export SLURM_CONF={start(where)['SLURM_CONF']}")
    else:
        stop(where)
