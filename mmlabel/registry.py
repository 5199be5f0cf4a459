"""The component registry: built from the plugins' `register_*` hooks, it finds, describes and creates components by name."""
import difflib
import importlib
from dataclasses import dataclass, replace
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, ValidationError

from mmlabel.errors import ComponentError
from mmlabel.plugins import KNOWN_PLUGINS, broken_plugins, get_plugin_manager, plugin_info, record_hook_error

# Component kind -> the hook that registers it.
KINDS: dict[str, str] = {
    "text_encoder": "register_text_encoders",
    "image_encoder": "register_image_encoders",
    "fusion_head": "register_fusion_heads",
    "alignment_loss": "register_alignment_losses",
    "dataset_reader": "register_dataset_readers",
    "metric": "register_metrics",
    "tag_scheme": "register_tag_schemes",
}


class ComponentConfig(BaseModel):
    """Base of every component's `Config`: unknown options are errors, so a typo fails with its key path."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class LazyFactory:
    """A factory named by its import path, imported on first use so that registering a component imports no torch."""

    def __init__(self, target: str, description: str):
        self.target = target
        self.description = description

    def load(self) -> Callable:
        module_name, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module_name), attribute)

    @property
    def Config(self) -> type[BaseModel] | None:  # noqa: N802 - mirrors the nested `Config` of a component class
        return getattr(self.load(), "Config", None)

    def __call__(self, *args, **kwargs):
        return self.load()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"lazy({self.target!r})"


def lazy(target: str, description: str) -> LazyFactory:
    """Register `"package.module:Class"` without importing it: `register("name", lazy("pkg.mod:Cls", "What it is."))`."""
    return LazyFactory(target, description)


@dataclass(frozen=True)
class Component:
    """A registered component: its kind, name, factory and the plugin (and distribution) that provides it.
    `problem` says why it cannot be used (its name is registered twice, or its plugin's hook raised); empty if it can."""

    kind: str
    name: str
    factory: Callable
    plugin: str
    problem: str = ""

    @property
    def provider(self) -> str:
        info = plugin_info(self.plugin)
        return info.distribution if info.version == "?" else f"{info.distribution} {info.version}"

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

    def validate(self, options: dict[str, Any], where: str = "") -> BaseModel:
        """Options checked against the component's `Config`; errors name the key path under `where`. A factory
        class that lacks a method of its kind's contract is an error here already."""
        from mmlabel import contracts

        config_class = self.config_class
        if not (isinstance(config_class, type) and issubclass(config_class, ComponentConfig)):
            raise ComponentError(
                f"{self.kind} {self.name!r} ({self.origin}): its factory {_factory_name(self.factory)} has no nested "
                f"`Config` subclass of mmlabel.ComponentConfig; every component declares its options in one"
            )
        self._check_contract(contracts.class_problems(self.kind, _loaded(self.factory)))
        try:
            return config_class(**options)
        except ValidationError as error:
            raise ComponentError(_first_error(error, where or self.kind)) from None

    def _check_contract(self, problems: list[str]) -> None:
        if problems:
            raise ComponentError(f"{self.kind} {self.name!r} ({self.origin}) breaks the {self.kind} contract: "
                                 f"{'; '.join(problems)}")

    def create(self, **options):
        """The component built from its options alone."""
        return self.build(options)

    def build(self, options: dict[str, Any], **runtime):
        """The component built from its options plus what only the model knows (`num_tags`, `text_dim`, ...),
        checked against its kind's contract (`mmlabel.contracts`): a missing or wrong member is a `ComponentError`."""
        from mmlabel import contracts

        built = self.factory(self.validate(options), **runtime)
        self._check_contract(contracts.problems(self.kind, built))
        contracts.remember(built, f"{self.kind} {self.name!r} ({self.origin})")
        return built


def _loaded(factory: Callable) -> Callable:
    return factory.load() if isinstance(factory, LazyFactory) else factory


def _factory_name(factory: Callable) -> str:
    if isinstance(factory, LazyFactory):
        return factory.target
    return getattr(factory, "__qualname__", None) or repr(factory)


def _first_error(error: ValidationError, prefix: str) -> str:
    detail = error.errors()[0]
    path = ".".join(str(part) for part in (prefix, *detail["loc"]) if part != "")
    return f"{path}: {detail['msg']}"


def components(kind: str | None = None) -> list[Component]:
    """Every registered component of `kind` (or of every kind), in registration order. A name registered twice is
    listed twice, both marked with the conflict: only using that name is an error (see `get`)."""
    if kind is None:
        return [component for each in KINDS for component in components(each)]
    _check_kind(kind)
    found: list[Component] = []
    hook = getattr(get_plugin_manager().hook, KINDS[kind])
    # Called one implementation at a time so that each registration is recorded with the plugin that made it,
    # and a plugin whose hook raises spoils only its own registrations.
    for implementation in hook.get_hookimpls():
        found.extend(_registrations(kind, implementation))
    return _mark_conflicts(kind, found)


def _registrations(kind: str, implementation) -> list[Component]:
    """What one plugin's hook implementation registers; if it raises, what it registered so far, marked unusable."""
    plugin = implementation.plugin_name
    registered: list[Component] = []

    def register(name: str, factory: Callable) -> None:
        registered.append(Component(kind, name, factory, plugin))

    arguments = {"register": register}
    try:
        implementation.function(*[arguments[name] for name in implementation.argnames])
    except Exception as error:  # one plugin's bug must not break every lookup of this kind
        reason = record_hook_error(plugin, KINDS[kind], error)
        return [replace(each, problem=f"{kind} {each.name!r} is unusable: {reason}") for each in registered]
    plugin_info(plugin).hook_errors.pop(KINDS[kind], None)
    return registered


def _mark_conflicts(kind: str, found: list[Component]) -> list[Component]:
    by_name: dict[str, list[Component]] = {}
    for component in found:
        by_name.setdefault(component.name, []).append(component)
    marked = []
    for component in found:
        same = by_name[component.name]
        if len(same) > 1:
            providers = " and ".join(f"by {each.provider} (plugin {each.plugin})" for each in same)
            twice = "twice" if len(same) == 2 else f"{len(same)} times"
            component = replace(component, problem=f"{kind} {component.name!r} is registered {twice}: {providers}")
        marked.append(component)
    return marked


def get(kind: str, name: str) -> Component:
    """The component `name` of `kind`; an unknown name lists close matches, every available name, any install hint
    and the broken plugins that may have provided it. A name registered twice, or by a plugin whose hook raised, is
    an error naming why."""
    found = components(kind)
    for component in found:
        if component.name == name:
            if component.problem:
                raise ComponentError(component.problem)
            return component
    available = {component.name: component for component in found}
    message = f"unknown {kind} {name!r}"
    hint = KNOWN_PLUGINS.get((kind, name))
    if hint:
        message += f": it is provided by a plugin that is not installed; install it with `{hint}`"
    close = difflib.get_close_matches(name, available, n=3)
    if close:
        message += f"; did you mean {', '.join(repr(c) for c in close)}?"
    listing = ", ".join(f"{c.name} ({c.provider})" for c in available.values()) or "none"
    broken = broken_plugins(KINDS[kind])
    if broken:
        message += "; broken plugins, which may provide it: " + "; ".join(f"{b.label}: {b.problem}" for b in broken)
    raise ComponentError(f"{message}; available: {listing}")


def create(kind: str, name: str, **options):
    """Build the component `name` of `kind` from its options: `mmlabel.create("alignment_loss", "emd")`."""
    return get(kind, name).create(**options)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ComponentError(f"unknown component kind {kind!r}{hint}; kinds: {', '.join(KINDS)}")
