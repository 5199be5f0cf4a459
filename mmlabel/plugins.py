"""The plugin manager: loads the built-in plugins and those of the entry-point group `mmlabel`, once, on first use."""
import importlib
import importlib.metadata
import os
import sys
from dataclasses import dataclass, field

import pluggy

from mmlabel import __version__, hookspecs

# Built-in components are plugins like any other: registered through the same hooks (simonw/llm's DEFAULT_PLUGINS).
DEFAULT_PLUGINS: tuple[str, ...] = (
    "mmlabel.readers",
    "mmlabel.metrics",
    "mmlabel.text_encoders",
    "mmlabel.image_encoders",
    "mmlabel.fusion",
    "mmlabel.alignment",
    "mmlabel.tag_schemes",
)

# Known plugins that are not part of the core: an unknown name listed here gets an install hint.
KNOWN_PLUGINS: dict[tuple[str, str], str] = {
    ("image_encoder", "hf_vision"): "pip install ./plugins/mmlabel-hf-vision",
}

ENV_PLUGINS = "MMLABEL_PLUGINS"


@dataclass
class PluginInfo:
    """One loaded plugin: its pluggy name, the distribution that ships it and that distribution's version."""

    name: str
    distribution: str
    version: str
    builtin: bool = False
    error: str | None = None
    components: dict[str, list[str]] = field(default_factory=dict)


pm = pluggy.PluginManager("mmlabel")
pm.add_hookspecs(hookspecs)
_plugin_info: dict[str, PluginInfo] = {}
_loaded = False


def get_plugin_manager() -> pluggy.PluginManager:
    """The plugin manager with every plugin loaded (loading happens on the first call only)."""
    load_plugins()
    return pm


def load_plugins() -> None:
    """Register the built-in plugins, then the entry points allowed by MMLABEL_PLUGINS; a broken plugin only warns."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module_name in DEFAULT_PLUGINS:
        module = importlib.import_module(module_name)
        pm.register(module, name=module_name)
        _plugin_info[module_name] = PluginInfo(module_name, "mmlabel", __version__, builtin=True)
    for entry_point in _allowed_entry_points():
        _load_entry_point(entry_point)
    pm.check_pending()


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
    if pm.get_plugin(entry_point.name) is not None:
        return
    try:
        plugin = entry_point.load()
        pm.register(plugin, name=entry_point.name)
    except Exception as error:  # a broken plugin must not take the others down
        message = f"{type(error).__name__}: {error}"
        print(f"warning: plugin {entry_point.name!r} ({distribution}) failed to load: {message}", file=sys.stderr)
        _plugin_info[entry_point.name] = PluginInfo(entry_point.name, distribution, version, error=message)
        return
    _plugin_info[entry_point.name] = PluginInfo(entry_point.name, distribution, version)


def plugin_info(plugin_name: str) -> PluginInfo:
    """What is known of a registered plugin; one registered by hand (a test fixture) gets its own name as distribution."""
    load_plugins()
    if plugin_name not in _plugin_info:
        _plugin_info[plugin_name] = PluginInfo(plugin_name, plugin_name, "?")
    return _plugin_info[plugin_name]


def plugins() -> list[PluginInfo]:
    """Every plugin that is registered or failed to load, with the components it registered."""
    from mmlabel.registry import KINDS, components

    load_plugins()
    registered = [name for name, _ in pm.list_name_plugin()]
    infos = {name: plugin_info(name) for name in registered}
    for info in infos.values():
        info.components = {}
    for kind in KINDS:
        for component in components(kind):
            infos[component.plugin].components.setdefault(kind, []).append(component.name)
    failed = [info for name, info in _plugin_info.items() if info.error and name not in infos]
    return list(infos.values()) + failed
