"""The docs cannot drift from the code: every hook, its signature and docstring appear in docs/plugin-hooks.md, and
every member of every component contract (mmlabel/contracts.py) in its kind's section of docs/writing-plugins.md."""
import inspect

import pytest

from conftest import REPO
from mmlabel import contracts, hookspecs
from mmlabel.registry import KINDS

HOOKS = [name for name, value in vars(hookspecs).items() if name.startswith("register_") and callable(value)]


def test_every_kind_has_a_hook():
    assert sorted(KINDS.values()) == sorted(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_signature(hook):
    text = (REPO / "docs" / "plugin-hooks.md").read_text()
    function = getattr(hookspecs, hook)
    parameters = ", ".join(inspect.signature(function).parameters)
    assert f"### `{hook}({parameters})`" in text
    assert inspect.getdoc(function).splitlines()[0] in text


def _normal(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hooks_whole_docstring_is_in_the_reference(hook):
    text = _normal((REPO / "docs" / "plugin-hooks.md").read_text())
    assert _normal(inspect.getdoc(getattr(hookspecs, hook))) in text


def _guide_section(protocol: str) -> str:
    """The `### ... (`contracts.<protocol>`)` section of the plugin guide."""
    guide = (REPO / "docs" / "writing-plugins.md").read_text()
    sections = [part for part in guide.split("\n### ") if part.splitlines()[0].endswith(f"(`contracts.{protocol}`)")]
    assert len(sections) == 1, f"docs/writing-plugins.md has no section for contracts.{protocol}"
    return sections[0].split("\n## ")[0]


@pytest.mark.parametrize("kind", list(contracts.PROTOCOLS))
def test_every_protocol_member_is_in_its_kinds_section_of_the_guide(kind):
    protocol = contracts.PROTOCOLS[kind].__name__
    section = _guide_section(protocol)
    for member in contracts.members(kind):
        assert f"`{member}" in section, f"contracts.{protocol}.{member} is not in its section of the guide"
    assert protocol in (REPO / "docs" / "plugin-hooks.md").read_text()


def test_every_kind_hook_names_its_protocol():
    for kind, hook in KINDS.items():
        assert f"contracts.{contracts.PROTOCOLS[kind].__name__}" in inspect.getdoc(getattr(hookspecs, hook))
