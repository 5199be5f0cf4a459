"""Why a sweep's Slurm jobs wait, and whether waiting can help: Slurm's pending reasons (`squeue -o %r`), split into
those that end by themselves (a busy queue: `Priority`, `Resources`, a group limit, nodes down or reserved) and
those that never do (the job asks for something its partition, account or QOS cannot give), each of the latter
turned into the `--slurm` option that fixes it, with the node's size where `sinfo` tells it.

The permanent reasons are Slurm's names for a job that no amount of waiting starts unless an administrator changes
the cluster's configuration: more CPUs, memory or GPUs than any node of the partition has (`PartitionConfig`), a
longer time limit than the partition allows (`PartitionTimeLimit`), an unknown or forbidden account or QOS, a
constraint no node has, a per-job limit of the QOS or association. `ReqNodeNotAvail` (`UnavailableNodes`,
`Reserved for maintenance`) and `PartitionNodeLimit` are not among them: with the one node per job a sweep asks for,
they mean that nodes are down, drained or reserved, which ends when the nodes come back.
"""
import re
import subprocess

PERMANENT = {"PartitionConfig", "PartitionTimeLimit", "InvalidAccount", "InvalidQOS", "AccountNotAllowed",
             "QOSNotAllowed", "BadConstraints", "DependencyNeverSatisfied"}
# A per-job maximum (or minimum) of a QOS or association: this job alone is outside it, so no other job's end helps.
# The group, per-user and per-account limits (QOSGrpCpuLimit, AssocMaxJobsLimit, ...) end as other jobs end.
PER_JOB_LIMIT = re.compile(r"^(QOS|Assoc)(Max\w*PerJob\w*|Min\w*NotSatisfied)$")


def is_permanent(reason: str) -> bool:
    """True for a pending reason that cannot end by waiting (see the module's docstring)."""
    name = reason.split(",")[0].strip()
    return name in PERMANENT or bool(PER_JOB_LIMIT.match(name))


def fix_for_reason(reason: str, options: "slurm.SlurmOptions", partition: str | None) -> str:
    """What to change for a job pending for `reason` in `partition`: the `--slurm` option, as users write it."""
    name = reason.split(",")[0].strip()
    if name == "PartitionConfig":
        return fix_for_node_size(options, partition)
    if name == "PartitionTimeLimit" or "Wall" in name:
        limit = _sinfo(partition, "%l")
        allowed = f" (partition {partition} allows {', '.join(limit)})" if limit else ""
        return f"a shorter --slurm time=MINUTES than {options.time}{allowed}"
    if name in ("InvalidAccount", "AccountNotAllowed"):
        return _sbatch_fix(options, "account", partition)
    if name in ("InvalidQOS", "QOSNotAllowed"):
        return _sbatch_fix(options, "qos", partition)
    if name == "BadConstraints":
        return _sbatch_fix(options, "constraint", partition)
    if name == "DependencyNeverSatisfied":
        return _sbatch_fix(options, "dependency", partition)
    for word, option in (("Cpu", "cpus"), ("Mem", "mem_gb"), ("GRES", "gpus"), ("Node", "partition")):
        if word in name:
            return f"--slurm {option} (now {getattr(options, option)}) within the limit of your QOS or account"
    return "the --slurm options (`scontrol show job` says more)"


def fix_for_sbatch_error(message: str, options: "slurm.SlurmOptions") -> str:
    """What to change when sbatch refuses the job array outright, from sbatch's error message."""
    text = message.lower()
    if "node configuration is not available" in text or "memory specification" in text:
        return fix_for_node_size(options, options.partition or default_partition())
    if "--mem" in text:
        return f"--slurm mem_gb=N (now {options.mem_gb})"
    if "invalid partition" in text:
        return f"--slurm partition=NAME (now {options.partition or 'the default'}; `sinfo -s` lists them)"
    if "time limit" in text:
        return f"a shorter --slurm time=MINUTES than {options.time}"
    if "account" in text:
        return _sbatch_fix(options, "account", options.partition)
    if "qos" in text:
        return _sbatch_fix(options, "qos", options.partition)
    if "gres" in text or "gpu" in text:
        return f"--slurm gpus=N (now {options.gpus}) or --slurm partition=NAME of a partition with GPUs"
    return "the --slurm options"


def fix_for_node_size(options: "slurm.SlurmOptions", partition: str | None) -> str:
    """The options that ask for more than the largest node of `partition` has; all of them where sinfo is silent."""
    cpus, memory_mb, gpus = _largest_node(partition)
    where = f"partition {partition}" if partition else "the partition"
    fixes = []
    if cpus is not None and options.cpus > cpus:
        fixes.append(f"--slurm cpus={cpus} or fewer (each run asks for cpus={options.cpus}; the nodes of {where} "
                     f"have at most {cpus} CPUs)")
    if memory_mb is not None and options.mem_gb and options.mem_gb * 1024 > memory_mb:
        fixes.append(f"--slurm mem_gb={memory_mb // 1024} or less (each run asks for mem_gb={options.mem_gb:g}; "
                     f"the nodes of {where} have at most {memory_mb} MB)")
    if gpus is not None and options.gpus > gpus:
        fixes.append(f"--slurm gpus={gpus} or fewer (each run asks for gpus={options.gpus}; the nodes of {where} "
                     f"have at most {gpus} GPUs)")
    if fixes:
        return " and ".join(fixes)
    return (f"--slurm cpus (now {options.cpus}), gpus (now {options.gpus}), mem_gb (now {options.mem_gb}) or an "
            f"sbatch.* option: one asks for more than a node of {where} has (`scontrol show partition`)")


def pending_summary(jobs: dict[str, tuple[str, str]]) -> str:
    """One line for the jobs still in the queue, {job id: (state, reason)}: `2 running, 2 pending (Priority)`."""
    counts: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for state, reason in jobs.values():
        counts[state.lower()] = counts.get(state.lower(), 0) + 1
        if state == "PENDING":
            reason = reason if reason not in ("", "None") else "not scheduled yet"  # Slurm's "None": just submitted
            reasons[reason] = reasons.get(reason, 0) + 1
    why = ", ".join(f"{reason} {count}" if len(reasons) > 1 else reason for reason, count in reasons.items())
    return ", ".join(f"{count} {state}" + (f" ({why})" if state == "pending" else "")
                     for state, count in counts.items())


def default_partition() -> str | None:
    """The partition sbatch uses without --partition: the one sinfo marks with `*`."""
    names = _sinfo(None, "%P")
    return next((name.rstrip("*") for name in names if name.endswith("*")), None)


def _sbatch_fix(options: "slurm.SlurmOptions", name: str, partition: str | None) -> str:
    current = options.sbatch.get(name)
    now = f"now {current}" if current else "not set"
    return f"--slurm sbatch.{name}=... ({now}; one allowed in partition {partition or 'the default'})"


def _largest_node(partition: str | None) -> tuple[int | None, int | None, int | None]:
    """The most CPUs, memory (MB) and GPUs a node of `partition` has, each None where sinfo does not say."""
    lines = _sinfo(partition, "%c|%m|%G", "-N")  # one line per node: no "2+" for a mix of sizes
    cpus, memory, gpus = [], [], []
    for line in lines:
        fields = line.split("|")
        if len(fields) != 3:
            continue
        cpus += [int(fields[0])] if fields[0].isdigit() else []
        memory += [int(fields[1])] if fields[1].isdigit() else []
        gpus.append(sum(int(match) for match in re.findall(r"gpu(?::[^:,(]+)?:(\d+)", fields[2])))
    return (max(cpus) if cpus else None, max(memory) if memory else None, max(gpus) if gpus else None)


def _sinfo(partition: str | None, form: str, *flags: str) -> list[str]:
    """sinfo's distinct lines in `form` for `partition` (all partitions for None); [] where sinfo fails."""
    command = ["sinfo", "-h", *flags, "-o", form] + (["-p", partition] if partition else [])
    try:
        listed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    if listed.returncode != 0:
        return []
    return list(dict.fromkeys(line.strip() for line in listed.stdout.splitlines() if line.strip()))
