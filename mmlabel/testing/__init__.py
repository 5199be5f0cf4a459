"""The conformance kit: the checks the core runs on its own components, for plugin authors to run on theirs (in the
spirit of scikit-learn's `check_estimator`). One call in a test suite:

    from mmlabel.testing import check_component

    def test_my_head_meets_the_contract(registered):
        check_component("fusion_head", "my_head", hidden=8)     # tiny options of your component

or one test per check, each named in pytest's output:

    @pytest.mark.parametrize("check", component_checks("fusion_head", "my_head"), ids=str)
    def test_contract(registered, check):
        check()

Each check builds the component small as the core does (`mmlabel.registry.build`, so the contract check made
at build time runs too), runs it on a tiny hand-made batch and raises `ContractViolation` (an `AssertionError`)
naming the component and the check that failed. Which checks a kind has, and the runtime arguments and tiny options
it is built with, are declared with the kind in `mmlabel.kinds`.
"""
from dataclasses import dataclass, field
from typing import Any, Callable

from mmlabel import kinds
from mmlabel.registry import Component
from mmlabel.testing.kit import ContractViolation, Subject, tiny_options

__all__ = ["Check", "ContractViolation", "check_component", "check_factory", "component_checks", "tiny_options"]


def _checks_of(kind: str) -> list[tuple[str, Callable[[Subject], None]]]:
    return [("build", _build), *kinds.load(kinds.get_kind(kind).checks)]


def _build(subject: Subject) -> None:
    subject.built  # the registry's contract check: members, their kinds, signatures (and a metric's keys)


@dataclass
class Check:
    """One conformance check of one component: call it to run it; `str(check)` is `kind:name:check`."""

    subject: Subject
    check: str
    function: Callable[[Subject], None] = field(repr=False)

    def __call__(self) -> None:
        try:
            self.function(self.subject)
        except ContractViolation as error:
            raise ContractViolation(f"{self._who()}: {self.check}: {error}") from None
        except Exception as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ContractViolation(f"{self._who()}: {self.check}: {type(error).__name__}: {message}") from error

    def _who(self) -> str:
        try:
            origin = self.subject.component.origin
        except Exception:  # not registered: the check's own error says so
            return f"{self.subject.kind} {self.subject.name!r}"
        return f"{self.subject.kind} {self.subject.name!r} ({origin})"

    def __str__(self) -> str:
        return f"{self.subject.kind}:{self.subject.name}:{self.check}"


def _checks(subject: Subject) -> list[Check]:
    return [Check(subject, name, function) for name, function in _checks_of(subject.kind)]


def component_checks(kind: str, name: str, **tiny_options: Any) -> list[Check]:
    """The checks of the registered component `name` of `kind`, one callable each (for `pytest.mark.parametrize`).
    The component is looked up when a check first runs (after a fixture has registered it). Without options: the
    factory's `tiny_options` (a dict, or a function of a scratch directory returning one),
    else its kind's for a built-in (`mmlabel.kinds`), else the `Config`'s defaults."""
    return _checks(Subject(kind, name, tiny_options or None))


def check_component(kind: str, name: str, **tiny_options: Any) -> None:
    """Run every conformance check of the registered component `name` of `kind` (see `component_checks`); the
    first failure raises `ContractViolation` naming the check."""
    for check in component_checks(kind, name, **tiny_options):
        check()


def check_factory(kind: str, factory: Callable, name: str | None = None, **tiny_options: Any) -> None:
    """Run every check on a factory that is not registered (a class with a nested `Config`), built as the registry
    would build it: `check_factory("fusion_head", MyHead, hidden=8)`."""
    component = Component(kind, name or getattr(factory, "__name__", "factory"), factory, plugin="")
    for check in _checks(Subject(kind, component.name, tiny_options or None, component)):
        check()


def check_installed(selection: str | None = None) -> list[tuple[Component, str | None]]:
    """Every registered component (or those of the plugin, distribution or component name `selection`), each with
    None when it passes every check, else the first failure's reason: what `mmlabel plugins check` prints."""
    from mmlabel.errors import ComponentError
    from mmlabel.plugins import plugin_info
    from mmlabel.registry import components

    chosen = [component for component in components() if selection is None or selection in (
        component.name, component.plugin, plugin_info(component.plugin).distribution)]
    if not chosen:
        names = sorted({c.plugin for c in components()} | {plugin_info(c.plugin).distribution for c in components()})
        raise ComponentError(f"no plugin, distribution or component named {selection!r}; plugins and distributions: "
                             f"{', '.join(names)}")
    results = []
    for component in chosen:
        try:
            for check in _checks(Subject(component.kind, component.name, component=component)):
                check()
        except ContractViolation as error:
            results.append((component, str(error).removeprefix(f"{component.kind} {component.name!r} "
                                                                f"({component.origin}): ")))
        else:
            results.append((component, None))
    return results
