"""The environment a run trained in: Python, the packages a tagger depends on, mmlabel and every plugin with their
versions, the device and its driver, and the git commit of the recipe's folder. `run.json` records it (under
`environment`), an export copies it into `environment.json`, `mmlabel env` prints the current one, and loading or
resuming a run notes the versions that differ from the ones it trained with (`note_version_changes`).

"I cannot reproduce the reported F1" is, after missing data, the most common issue of this field's repositories,
and its answer is often a version nobody wrote down.
"""
import platform
import subprocess
from pathlib import Path

# The packages whose versions change what a tagger computes or how it loads (mmlabel and the plugins come apart).
PACKAGES = ("torch", "transformers", "timm", "tokenizers", "safetensors", "numpy")
_TIMEOUT_S = 10  # nvidia-smi and git: a hung tool must not hold a run's start


def environment(device: str | None = None, folder: str | Path | None = None) -> dict:
    """This process's environment: its `software()`, `device` (see `device_info`; `device` names the one the run
    uses, default CUDA's first where present) and, where `folder` is inside a git repository, `git` (`commit`,
    `dirty`)."""
    commit = git_commit(folder) if folder is not None else None
    return software() | {"device": device_info(device)} | ({"git": commit} if commit else {})


def software() -> dict:
    """`python`, `platform`, `mmlabel`, `packages` (name -> version, None where absent) and `plugins` (name ->
    distribution and version): what `versions` compares."""
    from importlib import metadata

    from mmlabel import __version__
    from mmlabel.plugins import plugins

    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {"python": platform.python_version(), "platform": platform.platform(), "mmlabel": __version__,
            "packages": packages,
            "plugins": {info.name: {"distribution": info.distribution, "version": info.version}
                        for info in plugins() if info.error is None}}


def versions(recorded: dict) -> dict[str, str | None]:
    """What-name -> version of an `environment()`: Python, mmlabel, the packages, and each plugin's distribution."""
    found = {"python": recorded.get("python"), "mmlabel": recorded.get("mmlabel"), **recorded.get("packages", {})}
    for plugin in recorded.get("plugins", {}).values():
        if isinstance(plugin, dict) and plugin.get("distribution") not in found:
            found[plugin["distribution"]] = plugin.get("version")
    return found


def version_changes(recorded: dict, current: dict) -> list[tuple[str, str | None, str | None]]:
    """(name, the run's version, this one) for every version the run recorded that differs here."""
    then, now = versions(recorded), versions(current)
    return [(name, version, now.get(name)) for name, version in then.items()
            if version is not None and version != now.get(name)]


def note_version_changes(run_path: str | Path, info: dict, current: dict | None = None) -> None:
    """One note (an `MMLabelNote`) where the versions the run recorded in run.json (`info`) differ from this
    environment's: `runs/qs was trained with torch 2.5.0, transformers 4.46.0; this is torch 2.6.0, ...`. Runs
    recorded before mmlabel kept the environment get none."""
    from mmlabel.log import MMLabelNote, warn

    recorded = info.get("environment")
    if not isinstance(recorded, dict):
        return
    changes = version_changes(recorded, current or software())
    if changes:
        then = ", ".join(f"{name} {old}" for name, old, _ in changes)
        now = ", ".join(f"{name} {new or 'not installed'}" for name, _, new in changes)
        warn(f"{run_path} was trained with {then}; this is {now}", MMLabelNote, stacklevel=2)


def recipe_folder(recipe: str | Path) -> Path | None:
    """The folder of the recipe file a command names (a path, or a built-in name), whose git commit run.json
    records; None where it names no file."""
    from mmlabel.errors import RecipeError
    from mmlabel.recipe_files import find_file

    try:
        return find_file(recipe).parent
    except RecipeError:
        return None


def device_info(device: str | None = None) -> dict:
    """`name` of the device (the GPU's name, or the CPU's model), `type` (`cuda:0`, `cpu`, `mps`), `cpu` (its
    model), and on CUDA `cuda` (torch's CUDA or ROCm version), `capability` and `driver` (from nvidia-smi, None
    where it is absent)."""
    import torch

    if device is None:
        device = "cuda:0" if torch.cuda.is_available() else "cpu"
    target = torch.device(device)
    cpu = cpu_model()
    if target.type != "cuda":
        return {"type": str(target), "name": cpu, "cpu": cpu}
    index = target.index if target.index is not None else torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    return {"type": f"cuda:{index}", "name": torch.cuda.get_device_name(index), "cpu": cpu,
            "cuda": torch.version.cuda or getattr(torch.version, "hip", None), "capability": f"{major}.{minor}",
            "driver": _nvidia_driver()}


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what `platform` knows of it."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def git_commit(folder: str | Path) -> dict | None:
    """`commit` (HEAD) and `dirty` (tracked files changed; untracked ones do not count) of the git repository that
    holds `folder`; None outside a repository, or without git."""
    head = _git(folder, "rev-parse", "HEAD")
    if head is None:
        return None
    changed = _git(folder, "status", "--porcelain", "--untracked-files=no")
    return {"commit": head, "dirty": bool(changed)} if changed is not None else {"commit": head}


def _git(folder: str | Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=_TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _nvidia_driver() -> str | None:
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.split() if done.returncode == 0 else []
    return lines[0] if lines else None  # one driver serves every GPU of the machine
