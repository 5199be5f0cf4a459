"""The plugin registry: fake plugins, duplicate and unknown names, option validation, lazy import."""
import subprocess
import sys

import pytest

import mmlabel
from mmlabel.errors import ComponentError
from mmlabel.hookspecs import hookimpl
from mmlabel.plugins import KNOWN_PLUGINS, get_plugin_manager
from mmlabel.registry import components, get, lazy, shadowing_notes
from conftest import EchoMetric, registered


def test_fake_plugin_component_is_listed_with_its_provider(fake_plugin):
    found = {c.name: c for c in components("metric")}
    assert "echo" in found
    assert found["echo"].plugin == "fake-plugin"
    assert found["echo"].description == "Counts exact matches (a fake metric of the test suite)."


def test_fake_plugin_is_gone_after_the_fixture():
    assert "echo" not in {c.name for c in components("metric")}


def test_build_validates_options_and_builds(fake_plugin):
    metric = mmlabel.build("metric", {"name": "echo", "scale": 2})
    assert metric.config.scale == 2.0
    assert metric.config.average == "micro"


def test_misspelt_option_names_its_key_path(fake_plugin):
    with pytest.raises(ComponentError, match=r"^unknown key metric\.scael \(did you mean metric\.scale\?\)$"):
        mmlabel.build("metric", {"name": "echo", "scael": 2})


def test_wrong_option_type_names_its_key_path(fake_plugin):
    with pytest.raises(ComponentError, match=r"^metric\.scale: Input should be a valid number"):
        mmlabel.build("metric", {"name": "echo", "scale": "big"})


def test_unknown_name_lists_close_matches_and_every_name_with_provider(fake_plugin):
    with pytest.raises(ComponentError) as error:
        get("metric", "ecko")
    message = str(error.value)
    assert "unknown metric 'ecko'" in message
    assert "did you mean 'echo'" in message
    assert "echo (fake-plugin)" in message


def test_unknown_kind_is_an_error():
    with pytest.raises(ComponentError, match=r"unknown component kind 'metrics' \(did you mean 'metric'\?\)"):
        components("metrics")


def test_known_but_uninstalled_plugin_gives_the_install_command(monkeypatch):
    # A name no plugin registers: CI installs mmlabel-hf-vision, whose hf_vision is checked in test_cli.py.
    monkeypatch.setitem(KNOWN_PLUGINS, ("image_encoder", "not_installed"), "pip install ./plugins/not-installed")
    with pytest.raises(ComponentError, match=r"install it with `pip install \./plugins/not-installed`"):
        get("image_encoder", "not_installed")


def test_each_known_plugin_install_command_installs_the_shipped_plugin_that_registers_the_name():
    """The hint is right: the folder holds a plugin distribution of the `mmlabel` entry-point group, and that
    distribution (installed here, as the README's set-up and CI install it) registers the name as that kind."""
    import tomllib
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    assert ("image_encoder", "hf_vision") in KNOWN_PLUGINS
    for (kind, name), command in KNOWN_PLUGINS.items():
        assert command.startswith("pip install ./plugins/"), command
        project = tomllib.loads((repo / command.removeprefix("pip install ./") / "pyproject.toml").read_text())["project"]
        assert project["entry-points"]["mmlabel"], command
        assert get(kind, name).provider == f"{project['name']} {project['version']}"


class DuplicatePlugin:
    @hookimpl
    def register_metrics(self, register):
        register("echo", object)


def test_two_plugins_with_one_name_make_it_an_error_naming_both_qualified_names(fake_plugin):
    pm = get_plugin_manager()
    pm.register(DuplicatePlugin(), name="duplicate-plugin")
    try:
        echoes = [c for c in components("metric") if c.name == "echo"]
        assert [c.plugin for c in echoes] == ["fake-plugin", "duplicate-plugin"]
        problem = ("metric 'echo' is registered twice: by fake-plugin (plugin fake-plugin) and by duplicate-plugin "
                   "(plugin duplicate-plugin); name the one you mean: fake-plugin:echo or duplicate-plugin:echo")
        assert [c.conflict for c in echoes] == [problem, problem]
        assert get("metric", "mabsa").conflict == ""
        with pytest.raises(ComponentError) as error:
            get("metric", "echo")
        assert str(error.value) == problem
        assert get("metric", "duplicate-plugin:echo").factory is object  # the qualified names stay usable
        assert get("metric", "fake-plugin:echo").plugin == "fake-plugin"
    finally:
        pm.unregister(name="duplicate-plugin")
    assert get("metric", "echo").plugin == "fake-plugin"


class ShadowingPlugin:
    @hookimpl
    def register_metrics(self, register):
        register("span_f1", EchoMetric)


def test_a_plugin_shadows_a_builtin_of_its_name_which_stays_reachable_qualified(fake_plugin):
    with registered(ShadowingPlugin(), "shadowing"):
        assert get("metric", "span_f1").factory is EchoMetric
        assert get("metric", "shadowing:span_f1").factory is EchoMetric
        builtin = get("metric", "mmlabel:span_f1")
        assert builtin.builtin and builtin.plugin == "mmlabel.metrics" and builtin.shadowed_by == "shadowing:span_f1"
        assert isinstance(mmlabel.build("metric", {"name": "span_f1", "scale": 2}), EchoMetric)
        assert type(mmlabel.build("metric", "mmlabel:span_f1")).__name__ == "SpanF1Metric"
        assert shadowing_notes() == ["metric 'span_f1' is shadowing's (shadowing:span_f1), which shadows the built-in: "
                                     "name it mmlabel:span_f1 for mmlabel's own"]
    assert get("metric", "span_f1").builtin and shadowing_notes() == []


def test_qualified_names_of_builtins_and_plugins(fake_plugin):
    assert get("metric", "mmlabel:mabsa").qualified_name == "mmlabel:mabsa"
    assert get("metric", "echo").qualified_name == "fake-plugin:echo"
    with pytest.raises(ComponentError, match=r"^unknown metric 'other:echo'; did you mean 'fake-plugin:echo'"):
        get("metric", "other:echo")


class CountingPlugin:
    calls = 0

    @hookimpl
    def register_metrics(self, register):
        CountingPlugin.calls += 1
        register("counted", EchoMetric)


def test_the_registry_is_built_once_and_again_only_when_plugins_change():
    with registered(CountingPlugin(), "counting"):
        for _ in range(3):
            get("metric", "counted")
            components()
        assert CountingPlugin.calls == 1
        with registered(DuplicatePlugin(), "duplicate-plugin"):
            get("metric", "counted")
        assert CountingPlugin.calls == 2
        get("metric", "counted")
        assert CountingPlugin.calls == 3  # unregistering rebuilt it too


class RaisingPlugin:
    @hookimpl
    def register_metrics(self, register):
        register("before_the_raise", object)
        raise ValueError("a bug\nover two lines")


def test_a_hook_that_raises_spoils_only_its_own_registrations_and_warns_once(recwarn):
    pm = get_plugin_manager()
    pm.register(RaisingPlugin(), name="raising-plugin")
    try:
        assert get("metric", "mabsa").plugin == "mmlabel.metrics"
        reason = ("plugin 'raising-plugin' (raising-plugin) is broken: register_metrics raised ValueError: a bug "
                  "over two lines")
        with pytest.raises(ComponentError, match=r"^metric 'before_the_raise' is unusable: ") as error:
            get("metric", "before_the_raise")
        assert str(error.value).endswith(reason)
        with pytest.raises(ComponentError) as error:
            get("metric", "after_the_raise")
        assert "broken plugins, which may provide it: plugin 'raising-plugin' (raising-plugin): " in str(error.value)
        assert [str(w.message) for w in recwarn if issubclass(w.category, mmlabel.MMLabelWarning)] == [reason]
    finally:
        pm.unregister(name="raising-plugin")
    with pytest.raises(ComponentError) as error:
        get("metric", "after_the_raise")
    assert "broken plugins" not in str(error.value)


class NarrowPlugin:
    @hookimpl
    def register_text_encoders(self):  # takes fewer arguments than the spec: allowed by pluggy
        NarrowPlugin.called = True


def test_hook_implementation_may_take_fewer_arguments():
    pm = get_plugin_manager()
    pm.register(NarrowPlugin(), name="narrow")
    try:
        components("text_encoder")
        assert NarrowPlugin.called
    finally:
        pm.unregister(name="narrow")


def test_lazy_factory_imports_only_when_used(tmp_path, monkeypatch):
    (tmp_path / "lazily_imported.py").write_text("class Thing:\n    pass\n")
    monkeypatch.syspath_prepend(tmp_path)
    monkeypatch.delitem(sys.modules, "lazily_imported", raising=False)
    factory = lazy("lazily_imported:Thing", "A thing.")
    assert repr(factory) == "lazy('lazily_imported:Thing')" and factory.description == "A thing."
    assert "lazily_imported" not in sys.modules
    assert factory.load() is sys.modules["lazily_imported"].Thing


def _run(code: str, **env) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})


def test_importing_mmlabel_and_listing_components_does_not_import_torch():
    result = _run(
        "import sys, mmlabel; mmlabel.components(); "
        "print(sorted(m for m in ('torch', 'transformers', 'timm', 'geomloss') if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_plugin_that_fails_to_import_only_warns(tmp_path):
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[mmlabel]\nbroken = broken_plugin_module_that_does_not_exist\n")
    code = "import mmlabel; print(len(mmlabel.components()) >= 0)"
    result = _run(code, PYTHONPATH=str(tmp_path))
    assert result.returncode == 0, result.stderr
    warning = ("MMLabelWarning: plugin 'broken' (broken-plugin 1.0) is skipped: failed to load: ModuleNotFoundError: "
               "No module named 'broken_plugin_module_that_does_not_exist'\n")
    assert warning in result.stderr and result.stderr.count("Warning: ") == 1  # a warning a program can filter


def test_mmlabel_plugins_env_restricts_external_plugins(tmp_path):
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[mmlabel]\nbroken = broken_plugin_module_that_does_not_exist\n")
    result = _run("import mmlabel; mmlabel.components()", PYTHONPATH=str(tmp_path), MMLABEL_PLUGINS="")
    assert result.returncode == 0
    assert result.stderr == ""
