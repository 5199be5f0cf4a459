"""`mmlabel env`: the environment a run started here would record in its run.json (`mmlabel.environment`)."""
from pathlib import Path
from typing import Annotated

import typer

from mmlabel.commands.options import DeviceOption, JsonOption, echo_json


def env(
    folder: Annotated[Path, typer.Argument(help="The folder (a recipe's) whose git commit to show.")] = Path("."),
    device: DeviceOption = "auto",
    as_json: JsonOption = False,
) -> None:
    """Print Python, torch, transformers, timm, mmlabel and every plugin with their versions, the device and its
    driver, and the git commit of FOLDER: what `mmlabel train` records in run.json, and what `evaluate`, `predict`
    and `train --resume` compare a run's versions with. --json prints the record itself."""
    from mmlabel.device import resolve_device
    from mmlabel.environment import environment
    from mmlabel.errors import MMLabelError

    if not folder.is_dir():
        raise MMLabelError(f"{folder}: no such folder (the folder whose git commit to show; default: this one)")
    found = environment(str(resolve_device(device)), folder)
    if as_json:
        echo_json(found)
        return
    _show(found)


def _show(found: dict) -> None:
    """Aligned lines, one per version (the plugins mmlabel itself ships are mmlabel's line), the device, git."""
    rows = {"python": f"{found['python']} ({found['platform']})", "mmlabel": found["mmlabel"]}
    rows |= {name: version or "not installed" for name, version in found["packages"].items()}
    for name, plugin in found["plugins"].items():
        if plugin["distribution"] != "mmlabel":
            rows[plugin["distribution"]] = f"{plugin['version']} (plugin {name})"
    device = found["device"]
    cuda = [f"{key} {device[key]}" for key in ("cuda", "capability", "driver") if device.get(key)]
    rows["device"] = f"{device['type']}: {device['name']}" + (f" ({', '.join(cuda)})" if cuda else "")
    if device["name"] != device["cpu"]:
        rows["cpu"] = device["cpu"]
    git = found.get("git")
    rows["git"] = (f"{git['commit']}{' (uncommitted changes)' if git.get('dirty') else ''}" if git
                   else "not inside a git repository")
    width = max(map(len, rows))
    for name, value in rows.items():
        typer.echo(f"{name:<{width}}  {value}")
