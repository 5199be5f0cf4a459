"""The component registry: built once from the plugins' `register_*` hooks (again only when a plugin is registered
or unregistered, or a kind declared), it finds, describes and builds components by name.

Every component has a qualified name `PROVIDER:NAME`: the plugin's entry-point name, `mmlabel` for the built-ins.
A plain name means the one component of that name, except that an installed plugin's component shadows a built-in
of the same name (the built-in stays reachable as `mmlabel:NAME`): growing the core never takes a name from a plugin
installed on purpose. Two plugins registering one name make the plain name an error naming both qualified names.
"""
import difflib
from dataclasses import dataclass, replace
from typing import Any, Callable

from pydantic import BaseModel, ValidationError

from mmlabel import contracts, kinds
from mmlabel.configs import ComponentConfig, error_line
from mmlabel.errors import ComponentError
from mmlabel.kinds import get_kind
from mmlabel.plugins import (KNOWN_PLUGINS, broken_plugins, get_plugin_manager, plugin_info, record_hook_error,
                             registry_generation)

BUILTIN_PROVIDER = "mmlabel"
__all__ = ["Component", "ComponentConfig", "LazyFactory", "build", "components", "get", "lazy"]


class LazyFactory:
    """A factory named by its import path, imported on first use so that registering a component imports no torch;
    `config`, the import path of its `Config` where that lives apart, lets a recipe be checked without importing it."""

    def __init__(self, target: str, description: str, config: str | None = None):
        self.target = target
        self.description = description
        self.config = config

    def load(self) -> Callable:
        return kinds.load(self.target)

    @property
    def Config(self) -> type[BaseModel] | None:  # noqa: N802 - mirrors the nested `Config` of a component class
        if self.config is not None:
            return kinds.load(self.config)
        return getattr(self.load(), "Config", None)

    def __call__(self, *args, **kwargs):
        return self.load()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"lazy({self.target!r})"


def lazy(target: str, description: str, config: str | None = None) -> LazyFactory:
    """Register `"package.module:Class"` without importing it: `register("name", lazy("pkg.mod:Cls", "What it is.",
    config="pkg.configs:ClsConfig"))`; with `config`, validating a recipe imports only that module."""
    return LazyFactory(target, description, config)


@dataclass(frozen=True)
class Component:
    """A registered component: its kind, name, factory and the plugin (and distribution) that provides it.
    `problem` says why it cannot be used under any name (its plugin's hook raised); `conflict` why its plain name
    cannot be used (another plugin registers it too); `shadowed_by` names the plugin component that took the plain
    name of this built-in."""

    kind: str
    name: str
    factory: Callable
    plugin: str
    problem: str = ""
    conflict: str = ""
    shadowed_by: str = ""

    @property
    def builtin(self) -> bool:
        return bool(self.plugin) and plugin_info(self.plugin).builtin

    @property
    def qualified_name(self) -> str:
        """`PROVIDER:NAME`: `mmlabel:dtca` for a built-in, `<entry-point name>:NAME` for a plugin's."""
        return f"{BUILTIN_PROVIDER if self.builtin else self.plugin}:{self.name}"

    @property
    def distribution(self) -> str:
        return plugin_info(self.plugin).distribution

    @property
    def version(self) -> str:
        return plugin_info(self.plugin).version

    @property
    def provider(self) -> str:
        """`mmlabel 0.1.0`: the distribution and its version, for listings and messages."""
        return self.distribution if self.version == "?" else f"{self.distribution} {self.version}"

    @property
    def description(self) -> str:
        text = getattr(self.factory, "description", None) or getattr(self.factory, "__doc__", None) or ""
        return text.strip().splitlines()[0] if text.strip() else ""

    @property
    def origin(self) -> str:
        """`plugin mmlabel.fusion, mmlabel 0.1.0`: who provides the component, for messages."""
        if not self.plugin:
            return "not registered"
        return f"plugin {self.plugin}, {self.provider}"

    @property
    def config_class(self) -> type[BaseModel] | None:
        return getattr(self.factory, "Config", None)

    def validate(self, options: dict[str, Any], where: str = "") -> ComponentConfig:
        """Options checked against the component's `Config` (imported alone where the factory is lazy and names
        it); errors name the key path under `where`."""
        config_class = self.config_class
        if not (isinstance(config_class, type) and issubclass(config_class, ComponentConfig)):
            raise ComponentError(
                f"{self.kind} {self.name!r} ({self.origin}): its factory {_factory_name(self.factory)} has no nested "
                f"`Config` subclass of mmlabel.ComponentConfig; every component declares its options in one")
        try:
            return config_class(**options)
        except ValidationError as error:
            raise ComponentError(error_line(error, config_class, where or self.kind)) from None


def build(kind: str, spec: Any, **runtime):
    """The one way to create a component: `spec` is a recipe's component section, `{"name": ..., **options}` or a
    name (plain or qualified); `runtime` is what only the core knows (a fusion head's `text_dim`, a tag scheme's
    `labels`, as the kind declares). `build("alignment_loss", {"name": "emd", "cost": "cosine"})`."""
    name, options = _name_and_options(spec)
    return construct(get(kind, name), options, **runtime)


def construct(component: Component, options: dict[str, Any], **runtime):
    """What `build` does once the name is found (the kit calls it for a factory that is not registered): validate
    the options, call the factory with the config and `runtime`, and check the result against the kind's contract
    (a missing or wrong member is a `ComponentError` naming the component)."""
    kind = get_kind(component.kind)
    unknown = sorted(set(runtime) - set(kind.runtime))
    if unknown:
        raise TypeError(f"{kind.name} factories take {', '.join(kind.runtime) or 'no runtime arguments'}, "
                        f"not {', '.join(unknown)}")
    built = component.factory(component.validate(options, kind.section), **runtime)
    problems = contracts.problems(kind, built)
    if problems:
        raise ComponentError(f"{component.kind} {component.name!r} ({component.origin}) breaks the {component.kind} "
                             f"contract: {'; '.join(problems)}")
    contracts.remember(built, f"{component.kind} {component.name!r} ({component.origin})")
    return built


def _name_and_options(spec: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, dict):
        options = dict(spec)
        return options.pop("name"), options
    return spec.name, dict(spec.options)  # a recipe's ComponentSpec


def _factory_name(factory: Callable) -> str:
    if isinstance(factory, LazyFactory):
        return factory.target
    return getattr(factory, "__qualname__", None) or repr(factory)


# -- the registry, built once ---------------------------------------------------------------------------------------
_built: tuple[tuple, dict[str, list[Component]]] | None = None


def _registry() -> dict[str, list[Component]]:
    """Kind -> its components in registration order; built from the hooks on first use and again only after a
    plugin was registered or unregistered, or a kind declared or withdrawn."""
    global _built
    manager = get_plugin_manager()
    key = (registry_generation(), kinds.generation())
    if _built is None or _built[0] != key:
        _built = (key, {kind: _resolve(kind, _collect(manager, kind)) for kind in kinds.KINDS})
    return _built[1]


def _collect(manager, kind: str) -> list[Component]:
    hook = getattr(manager.hook, kinds.KINDS[kind].hook, None)
    found: list[Component] = []
    # Called one implementation at a time so that each registration is recorded with the plugin that made it,
    # and a plugin whose hook raises spoils only its own registrations.
    for implementation in hook.get_hookimpls() if hook is not None else []:
        found.extend(_registrations(kind, implementation))
    return found


def _registrations(kind: str, implementation) -> list[Component]:
    """What one plugin's hook implementation registers; if it raises, what it registered so far, marked unusable."""
    plugin = implementation.plugin_name
    hook = kinds.KINDS[kind].hook
    registered: list[Component] = []

    def register(name: str, factory: Callable) -> None:
        registered.append(Component(kind, name, factory, plugin))

    arguments = {"register": register}
    try:
        implementation.function(*[arguments[name] for name in implementation.argnames])
    except Exception as error:  # one plugin's bug must not break every lookup of this kind
        reason = record_hook_error(plugin, hook, error)
        return [replace(each, problem=f"{kind} {each.name!r} is unusable: {reason}") for each in registered]
    plugin_info(plugin).hook_errors.pop(hook, None)
    return registered


def _resolve(kind: str, found: list[Component]) -> list[Component]:
    """Mark who holds each plain name: a plugin's component shadows a built-in; two plugins conflict."""
    by_name: dict[str, list[Component]] = {}
    for component in found:
        by_name.setdefault(component.name, []).append(component)
    marked = []
    for component in found:
        plugins = [each for each in by_name[component.name] if not each.builtin]
        if len(plugins) > 1:  # the built-in too: the plain name is nobody's
            component = replace(component, conflict=_conflict(kind, component.name, plugins))
        elif len(plugins) == 1 and component.builtin:
            component = replace(component, shadowed_by=plugins[0].qualified_name)
        marked.append(component)
    return marked


def _conflict(kind: str, name: str, same: list[Component]) -> str:
    providers = " and ".join(f"by {each.provider} (plugin {each.plugin})" for each in same)
    twice = "twice" if len(same) == 2 else f"{len(same)} times"
    qualified = " or ".join(each.qualified_name for each in same)
    return f"{kind} {name!r} is registered {twice}: {providers}; name the one you mean: {qualified}"


def components(kind: str | None = None) -> list[Component]:
    """Every registered component of `kind` (or of every kind), in registration order; a built-in that a plugin
    shadows and the components of a conflicting name are listed too, marked (see `Component`)."""
    registry = _registry()
    if kind is None:
        return [component for each in registry.values() for component in each]
    get_kind(kind)
    return list(registry[kind])


def get(kind: str, name: str) -> Component:
    """The component `name` (plain or `PROVIDER:NAME`) of `kind`; an unknown name lists close matches, every
    available name, any install hint and the broken plugins that may have provided it. A name two plugins register,
    or one whose plugin's hook raised, is an error naming why."""
    found = components(kind)
    provider, _, plain = name.rpartition(":")
    for component in found:
        if (component.qualified_name == name) if provider else (component.name == name and not component.shadowed_by):
            if component.problem or (component.conflict and not provider):
                raise ComponentError(component.problem or component.conflict)
            return component
    raise ComponentError(_unknown(kind, name, plain, found))


def _unknown(kind: str, name: str, plain: str, found: list[Component]) -> str:
    available = {component.name: component for component in found}
    message = f"unknown {kind} {name!r}"
    hint = KNOWN_PLUGINS.get((kind, plain))
    if hint:
        message += f": it is provided by a plugin that is not installed; install it with `{hint}`"
    close = difflib.get_close_matches(plain, available, n=3)
    if plain != name:  # `other:echo`: the qualified names of the components called like it
        close = [c.qualified_name for c in found if c.name in close]
    if close:
        message += f"; did you mean {', '.join(repr(c) for c in close)}?"
    listing = ", ".join(f"{c.name} ({c.provider})" for c in available.values()) or "none"
    broken = broken_plugins(kinds.KINDS[kind].hook)
    if broken:
        message += "; broken plugins, which may provide it: " + "; ".join(f"{b.label}: {b.problem}" for b in broken)
    return f"{message}; available: {listing}"


def shadowing_notes() -> list[str]:
    """One line per built-in that an installed plugin shadows, for `mmlabel list` and `mmlabel plugins`."""
    notes = []
    for component in components():
        if component.shadowed_by:
            plugin = get(component.kind, component.shadowed_by)
            notes.append(f"{component.kind} {component.name!r} is {plugin.provider}'s ({plugin.qualified_name}), "
                         f"which shadows the built-in: name it {component.qualified_name} for mmlabel's own")
    return notes


# -- what a run was built from ---------------------------------------------------------------------------------------
def provenance(recipe) -> dict[str, dict[str, str]]:
    """Recipe key path -> the qualified name of the component it names and the distribution (and version) that
    provides it: what a run records in run.json, so that loading it builds the same components."""
    found = {}
    for path, (kind, spec) in recipe.component_specs().items():
        component = get(kind, spec.name)
        found[path] = {"name": component.qualified_name, "distribution": component.distribution,
                       "version": component.version}
    return found


def pinned_name(kind: str, record: dict[str, str]) -> str:
    """The name that builds the component a run recorded (`provenance`): its plain name where that still means it,
    else its qualified name (a plugin installed since shadows it); a one-line `ComponentError` naming the
    distribution to install when it is not installed."""
    try:
        component = get(kind, record["name"])
    except ComponentError:
        distribution = record.get("distribution", "?")
        version = f" {record['version']}" if record.get("version", "?") != "?" else ""
        raise ComponentError(f"{kind} {record['name']!r} came from {distribution}{version}, which is not installed "
                             f"here: pip install {distribution}") from None
    try:
        same = get(kind, component.name).qualified_name == component.qualified_name
    except ComponentError:  # the plain name is two plugins' now
        same = False
    return component.name if same else component.qualified_name
