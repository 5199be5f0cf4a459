"""One broken plugin does not break the others: real distributions (a `*.dist-info` folder and the plugin's module)
on the PYTHONPATH of `python -m mmlabel`, each with one fault, next to a working plugin and the built-ins."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, run_cli

GOOD = '''
from mmlabel import hookimpl

class Good:
    """A text encoder of a working plugin."""

@hookimpl
def register_text_encoders(register):
    register("good_tiny", Good)
'''

# fault -> (distribution, version, entry-point name, module source, the warning after "warning: plugin ... ")
FAULTS = {
    "failed import": ("mmlabel-broken", "1.0", "broken", 'raise ImportError("needs libfoo")\n',
                      "is skipped: failed to load: ImportError: needs libfoo"),
    "misspelt hook": ("mmlabel-misspelt", "2.0", "misspelt",
                      "from mmlabel import hookimpl\n\n@hookimpl\ndef register_metric(register):\n"
                      "    register('misspelt_metric', object)\n",
                      "is skipped: unknown hook 'register_metric' (did you mean 'register_metrics'?)"),
    "raising hook": ("mmlabel-raising", "0.5", "raising",
                     "from mmlabel import hookimpl\n\n@hookimpl\ndef register_alignment_losses(register):\n"
                     "    register('halfway', object)\n    raise RuntimeError('boom')\n",
                     "is broken: register_alignment_losses raised RuntimeError: boom"),
}
TAKEN = "is skipped: its entry-point name 'good' is taken by mmlabel-good 0.3"


def install(site: Path, distribution: str, version: str, entry_points: dict[str, str], modules: dict[str, str]):
    """Leave `site` as `pip install --target site` would: the modules and the distribution's metadata."""
    site.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[mmlabel]\n{lines}")


def with_faults(tmp_path: Path, faults) -> dict[str, str]:
    """The working plugin `good` first on the path, then one distribution per fault; the environment to run with."""
    first, second = tmp_path / "first", tmp_path / "second"
    install(first, "mmlabel-good", "0.3", {"good": "good_plugin"}, {"good_plugin": GOOD})
    for fault in faults:
        if fault == "taken name":  # a second distribution, later on the path, reusing the entry-point name `good`
            install(second, "mmlabel-other", "4.1", {"good": "other_plugin"}, {"other_plugin": GOOD})
            continue
        distribution, version, name, source, _ = FAULTS[fault]
        install(first, distribution, version, {name: f"{name}_plugin"}, {f"{name}_plugin": source})
    return {"PYTHONPATH": f"{first}:{second}", "COLUMNS": "250"}


def warning(fault: str) -> str:
    if fault == "taken name":
        return f"warning: plugin 'good' (mmlabel-other 4.1) {TAKEN}"
    distribution, version, name, _, text = FAULTS[fault]
    return f"warning: plugin {name!r} ({distribution} {version}) {text}"


def warnings(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning:")]


ALL = [*FAULTS, "taken name"]


@pytest.mark.parametrize("fault", ALL)
def test_one_warning_line_and_the_others_keep_working(tmp_path, fault):
    env = with_faults(tmp_path, [fault])
    listing = run_cli("list", env=env)
    assert listing.returncode == 0, listing.stderr
    assert listing.stderr.splitlines() == [warning(fault)]
    rows = listing.stdout.splitlines()
    assert any("good_tiny" in row and "mmlabel-good 0.3" in row for row in rows)
    assert any("sinkhorn" in row and "mmlabel 0.1.0" in row for row in rows)

    plugins = run_cli("plugins", env=env)
    assert plugins.returncode == 0, plugins.stderr
    assert plugins.stderr.splitlines() == [warning(fault)]
    rows = json.loads(plugins.stdout)
    assert {"name": "good", "distribution": "mmlabel-good", "version": "0.3", "builtin": False,
            "components": {"text_encoder": ["good_tiny"]}} in rows
    broken = [row for row in rows if "error" in row]
    assert len(broken) == 1
    assert warning(fault).endswith(broken[0]["error"])


def test_with_every_fault_the_quickstart_still_checks_with_one_line_per_fault(tmp_path):
    result = run_cli("recipe", "check", "recipes/quickstart.toml", env=with_faults(tmp_path, ALL))
    assert result.returncode == 0, result.stderr
    assert sorted(result.stderr.splitlines()) == sorted(warning(fault) for fault in ALL)
    assert 'name = "sinkhorn"' in result.stdout


def test_a_component_registered_before_its_hook_raised_exits_2_with_the_reason(tmp_path):
    result = run_cli("recipe", "check", "recipes/quickstart.toml", "--set", "alignment_loss.name=halfway",
                     env=with_faults(tmp_path, ["raising hook"]))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        warning("raising hook"),
        "error: recipes/quickstart.toml (with --set alignment_loss.name=halfway): alignment_loss.name: "
        "alignment_loss 'halfway' is unusable: plugin 'raising' (mmlabel-raising 0.5) is broken: "
        "register_alignment_losses raised RuntimeError: boom",
    ]


def test_an_unknown_name_while_plugins_are_broken_names_them_and_their_errors(tmp_path):
    result = run_cli("recipe", "check", "recipes/quickstart.toml", "--set", "metric.name=misspelt_metric",
                     env=with_faults(tmp_path, ["failed import", "misspelt hook"]))
    assert result.returncode == 2
    error = result.stderr.splitlines()[-1]
    assert error.startswith("error: recipes/quickstart.toml (with --set metric.name=misspelt_metric): metric.name: "
                            "unknown metric 'misspelt_metric'; broken plugins, which may provide it: ")
    assert "plugin 'broken' (mmlabel-broken 1.0): failed to load: ImportError: needs libfoo" in error
    assert "plugin 'misspelt' (mmlabel-misspelt 2.0): unknown hook 'register_metric'" in error
    assert "available: mabsa (mmlabel 0.1.0)" in error
    assert len(warnings(result)) == 2


EMD = '''
from mmlabel import hookimpl

class Emd:
    """Another earth mover's distance."""

@hookimpl
def register_alignment_losses(register):
    register("emd", Emd)
'''


def test_a_plugin_reusing_a_builtin_name_shadows_it_and_the_builtin_stays_reachable(tmp_path):
    install(tmp_path, "mmlabel-emd", "3.0", {"emd2": "emd_plugin"}, {"emd_plugin": EMD})
    env = {"PYTHONPATH": str(tmp_path), "COLUMNS": "250"}
    listing = run_cli("list", "alignment_loss", env=env)
    assert listing.returncode == 0
    note = ("note: alignment_loss 'emd' is mmlabel-emd 3.0's (emd2:emd), which shadows the built-in: name it "
            "mmlabel:emd for mmlabel's own")
    assert listing.stderr.splitlines() == [note]
    rows = listing.stdout.splitlines()
    assert any(row.split()[1:3] == ["mmlabel:emd", "│"] and "(shadowed by emd2:emd)" in row for row in rows)
    assert any(row.split()[1:3] == ["emd", "│"] and "mmlabel-emd 3.0" in row for row in rows)
    assert run_cli("plugins", env=env).stderr.splitlines() == [note]
    assert run_cli("recipe", "check", "recipes/quickstart.toml", env=env).stderr == ""  # no note on other commands

    result = run_cli("recipe", "check", "recipes/quickstart.toml", "--set", "alignment_loss.name=emd", env=env)
    assert result.returncode == 2  # the plugin's `emd`, whose factory has no Config
    assert "alignment_loss 'emd' (plugin emd2, mmlabel-emd 3.0): its factory Emd has no nested `Config`" in result.stderr
    builtin = run_cli("recipe", "check", "recipes/quickstart.toml", "--set", "alignment_loss.name=mmlabel:emd",
                      env=env)
    assert builtin.returncode == 0 and 'name = "mmlabel:emd"' in builtin.stdout


INTERRUPTING = '''
import os
from pathlib import Path

from mmlabel import hookimpl

marker = Path(os.environ["MARKER"])
if not marker.exists():  # the first import is cut short, as by a Ctrl-C during loading
    marker.write_text("interrupted once")
    raise KeyboardInterrupt

@hookimpl
def register_metrics(register):
    register("late", object)
'''

RELOAD = '''
import mmlabel
from mmlabel.plugins import get_plugin_manager, pm
try:
    get_plugin_manager()
except KeyboardInterrupt:
    print("registered after the interrupt:", [name for name, _ in pm.list_name_plugin()])
print("then:", sorted(c.name for c in mmlabel.components("metric")))
'''


def test_loading_cut_short_leaves_nothing_half_loaded_and_is_done_again(tmp_path):
    install(tmp_path / "site", "mmlabel-late", "1.0", {"late": "late_plugin"}, {"late_plugin": INTERRUPTING})
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{tmp_path / 'site'}", "MARKER": str(tmp_path / "marker")}
    result = subprocess.run([sys.executable, "-c", RELOAD], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["registered after the interrupt: []",
                                          "then: ['late', 'mabsa', 'span_f1']"]
