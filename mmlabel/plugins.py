"""The plugin manager: loads the built-in plugins and those of the entry-point group `mmlabel`, once, on first use.

A plugin that fails (its import raises, it misspells a hook, its entry-point name is taken, or one of its hooks raises)
is recorded with its error and reported by one warning line; the other plugins and the built-ins keep working.
"""
import difflib
import importlib
import importlib.metadata
import os
from dataclasses import dataclass, field

import pluggy

from mmlabel import __version__, hookspecs, kinds

# Built-in components are plugins like any other: registered through the same hooks (simonw/llm's DEFAULT_PLUGINS).
DEFAULT_PLUGINS: tuple[str, ...] = (
    "mmlabel.readers",
    "mmlabel.metrics",
    "mmlabel.text_encoders",
    "mmlabel.image_encoders",
    "mmlabel.fusion",
    "mmlabel.alignment",
    "mmlabel.tag_schemes",
    "mmlabel.describers",
)

# Known plugins that are not part of the core: an unknown name listed here gets an install hint.
KNOWN_PLUGINS: dict[tuple[str, str], str] = {
    ("image_encoder", "hf_vision"): "pip install ./plugins/mmlabel-hf-vision",
}

ENV_PLUGINS = "MMLABEL_PLUGINS"


@dataclass
class PluginInfo:
    """One plugin: its pluggy name, the distribution that ships it and that distribution's version; `error` says why
    it was not registered, `hook_errors` which of its hooks raised (hook name -> error)."""

    name: str
    distribution: str
    version: str
    builtin: bool = False
    error: str | None = None
    hook_errors: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """`plugin 'name' (distribution version)`, as warnings and errors name it."""
        version = f" {self.version}" if self.version != "?" else ""
        return f"plugin {self.name!r} ({self.distribution}{version})"

    @property
    def problem(self) -> str | None:
        """What is wrong with the plugin, in one line, or None."""
        if self.error:
            return self.error
        if self.hook_errors:
            return "; ".join(f"{hook} raised {error}" for hook, error in self.hook_errors.items())
        return None


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, counting registrations: the registry is built again only when this count or the kinds
    change. A kind declared after start-up gets its hook before the next plugin is registered."""

    generation = 0

    def register(self, plugin, name=None):
        add_kind_hooks()
        result = super().register(plugin, name)
        self.generation += 1
        return result

    def unregister(self, plugin=None, name=None):
        result = super().unregister(plugin, name)
        self.generation += 1
        return result


def add_kind_hooks() -> None:
    """Give every declared kind its hookspec (`mmlabel.hookspecs`), once."""
    for kind in kinds.KINDS.values():
        caller = getattr(pm.hook, kind.hook, None)
        if caller is None or not caller.has_spec():
            pm.add_hookspecs(hookspecs.namespace(kind))


def registry_generation() -> int:
    """A number that changes whenever a plugin is registered or unregistered."""
    return pm.generation


pm = PluginManager("mmlabel")
pm.add_hookspecs(hookspecs)
_plugin_info: dict[str, PluginInfo] = {}  # registered plugins, by pluggy name
_failed: list[PluginInfo] = []  # plugins that were not registered, each with its error
_warned: set[str] = set()
_loaded = False
_loading = False


def get_plugin_manager() -> pluggy.PluginManager:
    """The plugin manager with every plugin loaded (loading happens on the first call only)."""
    load_plugins()
    return pm


def load_plugins() -> None:
    """Register the built-in plugins, then the entry points allowed by MMLABEL_PLUGINS; a broken plugin only warns.

    Each plugin is registered whole or not at all. Should loading be cut short all the same (Ctrl-C), what it
    registered is unregistered again and the next call loads from the start: the manager is never left half-loaded."""
    global _loaded, _loading
    if _loaded or _loading:  # _loading: a plugin that looks a component up while it is imported
        return
    _loading = True
    before = {name for name, _ in pm.list_name_plugin()}
    try:
        for module_name in DEFAULT_PLUGINS:
            _load(module_name, lambda module_name=module_name: importlib.import_module(module_name),
                  PluginInfo(module_name, "mmlabel", __version__, builtin=True))
        for entry_point in _allowed_entry_points():
            _load_entry_point(entry_point)
        _loaded = True
    except BaseException:
        for name, _ in pm.list_name_plugin():
            if name not in before:
                pm.unregister(name=name)
                _plugin_info.pop(name, None)
        _failed.clear()
        raise
    finally:
        _loading = False


def _allowed_entry_points() -> list[importlib.metadata.EntryPoint]:
    entry_points = list(importlib.metadata.entry_points(group="mmlabel"))
    allowed = os.environ.get(ENV_PLUGINS)
    if allowed is None:
        return entry_points
    names = {name.strip() for name in allowed.split(",") if name.strip()}
    return [ep for ep in entry_points if ep.name in names or (ep.dist and ep.dist.name in names)]


def _load_entry_point(entry_point: importlib.metadata.EntryPoint) -> None:
    distribution = entry_point.dist.name if entry_point.dist else entry_point.name
    version = entry_point.dist.version if entry_point.dist else "?"
    info = PluginInfo(entry_point.name, distribution, version)
    if entry_point.name == "mmlabel":  # the built-ins' provider name: `mmlabel:NAME` must stay theirs
        _fail(info, "its entry-point name 'mmlabel' is the core's own; choose another")
        return
    if pm.has_plugin(entry_point.name):  # a second distribution reusing the name: the first one found keeps it
        holder = plugin_info(entry_point.name)
        _fail(info, f"its entry-point name {entry_point.name!r} is taken by {holder.distribution} {holder.version}")
        return
    _load(entry_point.name, entry_point.load, info)


def _load(name: str, load, info: PluginInfo) -> None:
    """Import the plugin with `load()` and register it under `name`; any failure is recorded and warned about."""
    try:
        plugin = load()
        pm.register(plugin, name=name)
    except (Exception, SystemExit) as error:  # a broken plugin must not take the others down
        _fail(info, f"failed to load: {one_line(error)}")
        return
    unknown = _unknown_hooks(plugin)
    if unknown:  # what pm.check_pending() would raise for every command: this plugin alone is dropped instead
        pm.unregister(plugin)
        _fail(info, "; ".join(unknown))
        return
    _plugin_info[name] = info


def _unknown_hooks(plugin: object) -> list[str]:
    """A message per hook implementation of `plugin` that no hookspec declares (a misspelt hook name)."""
    messages = []
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.has_spec() or all(impl.optionalhook for impl in caller.get_hookimpls() if impl.plugin is plugin):
            continue
        specs = [kind.hook for kind in kinds.KINDS.values()]
        close = difflib.get_close_matches(caller.name, specs, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        messages.append(f"unknown hook {caller.name!r}{hint}")
    return messages


def _fail(info: PluginInfo, error: str) -> None:
    info.error = error
    _failed.append(info)
    warn_once(info.label, f"{info.label} is skipped: {error}")


def one_line(error: BaseException) -> str:
    """`Type: message` on one line, for warnings and error messages."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def warn_once(key: str, message: str) -> None:
    """Warn (`mmlabel.MMLabelWarning`: `warning: message` on the command line), once per process for each `key`."""
    from mmlabel.log import warn

    if key not in _warned:
        _warned.add(key)
        warn(message)


def record_hook_error(plugin_name: str, hook: str, error: BaseException) -> str:
    """Record that `plugin_name`'s implementation of `hook` raised, warn once; returns the reason, on one line."""
    info = plugin_info(plugin_name)
    info.hook_errors[hook] = one_line(error)
    reason = f"{info.label} is broken: {hook} raised {info.hook_errors[hook]}"
    warn_once(f"{plugin_name}:{hook}", reason)
    return reason


def plugin_info(plugin_name: str) -> PluginInfo:
    """What is known of a registered plugin; one registered by hand (a test fixture) gets its name as distribution."""
    load_plugins()
    if plugin_name not in _plugin_info:
        _plugin_info[plugin_name] = PluginInfo(plugin_name, plugin_name, "?")
    return _plugin_info[plugin_name]


def plugins() -> list[PluginInfo]:
    """Every registered plugin, then every plugin that was skipped, each with its error."""
    load_plugins()
    return [plugin_info(name) for name, _ in pm.list_name_plugin()] + list(_failed)


def broken_plugins(hook: str | None = None) -> list[PluginInfo]:
    """The plugins that were skipped, and those whose implementation of `hook` raised: a name they would have
    provided is unknown for that reason."""
    load_plugins()
    raised = [info for name, info in _plugin_info.items() if hook in info.hook_errors and pm.has_plugin(name)]
    return list(_failed) + raised
