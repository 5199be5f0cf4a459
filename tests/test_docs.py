"""The docs cannot drift from the code: they are checked against the contract objects themselves. Every kind of
mmlabel/kinds.py has its hook; each hook's section of docs/plugin-hooks.md names every member of the kind's protocol
(and of its optional capabilities) with the parameters the protocol gives it, and no call the protocol does not
define; every member is in its kind's section of docs/writing-plugins.md."""
import inspect
import re

import pytest

from conftest import REPO
from mmlabel import contracts, hookspecs
from mmlabel.kinds import KINDS

HOOKS = [name for name, value in vars(hookspecs).items() if name.startswith("register_") and callable(value)]
REFERENCE = (REPO / "docs" / "plugin-hooks.md").read_text()


def test_every_kind_has_a_hook_and_every_hook_a_kind():
    assert sorted(kind.hook for kind in KINDS.values()) == sorted(HOOKS)


def _hook_section(hook: str) -> str:
    """The `### `register_...(register)`` section of the hook reference."""
    sections = [part for part in REFERENCE.split("\n### ") if part.startswith(f"`{hook}(")]
    assert len(sections) == 1, f"docs/plugin-hooks.md has no section for {hook}"
    return sections[0].split("\n## ")[0]


def _protocol_members(kind) -> dict:
    found = dict(contracts.members(kind.protocol))
    for capability in kind.capabilities:
        found.update(contracts.members(capability, own=True))
    return found


def _named(name: str, spec) -> str:
    """How the docs must name a member: `forward(text_states, text_mask, ...)` for a method, `hidden_size` else."""
    return f"`{name}{contracts.signature_text(spec)}`" if inspect.isfunction(spec) else f"`{name}`"


@pytest.mark.parametrize("kind", list(KINDS.values()), ids=list(KINDS))
def test_each_hook_section_names_every_protocol_member_with_its_parameters(kind):
    section = _hook_section(kind.hook)
    for name, spec in _protocol_members(kind).items():
        assert _named(name, spec) in section, f"{kind.hook}: {_named(name, spec)} is not in docs/plugin-hooks.md"
    assert f"contracts.{kind.protocol.__name__}" in section


@pytest.mark.parametrize("kind", list(KINDS.values()), ids=list(KINDS))
def test_each_hook_section_calls_no_method_the_protocol_lacks(kind):
    """An alignment loss's member is `forward`, not `loss(...)`: a call named in the prose must be the protocol's."""
    members = _protocol_members(kind)
    called = set(re.findall(r"`(\w+)\(", _hook_section(kind.hook)))
    unknown = called - set(members) - {"factory", kind.hook}
    assert not unknown, f"{kind.hook}'s section names {sorted(unknown)}, which contracts.{kind.protocol.__name__} lacks"
    for name in called & set(members):
        if inspect.isfunction(members[name]):
            assert _named(name, members[name]) in _hook_section(kind.hook)


def test_the_check_finds_a_method_the_protocol_lacks():
    """The check above can fail: the old prose's `loss(text_states, ...)` for an alignment loss is caught."""
    members = _protocol_members(KINDS["alignment_loss"])
    assert "loss" not in members and "forward" in members


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_signature_and_whole_docstring(hook):
    function = getattr(hookspecs, hook)
    parameters = ", ".join(inspect.signature(function).parameters)
    assert f"### `{hook}({parameters})`" in REFERENCE
    assert " ".join(inspect.getdoc(function).split()) in " ".join(REFERENCE.split())


def test_hook_docstrings_name_the_protocol_members():
    for kind in KINDS.values():
        doc = inspect.getdoc(getattr(hookspecs, kind.hook))
        assert f"contracts.{kind.protocol.__name__}" in doc
        for name, spec in _protocol_members(kind).items():
            assert _named(name, spec) in doc, f"{kind.hook}'s docstring lacks {_named(name, spec)}"


def _guide_section(protocol: str) -> str:
    """The `### ... (`contracts.<protocol>`)` section of the plugin guide."""
    guide = (REPO / "docs" / "writing-plugins.md").read_text()
    sections = [part for part in guide.split("\n### ") if part.splitlines()[0].endswith(f"(`contracts.{protocol}`)")]
    assert len(sections) == 1, f"docs/writing-plugins.md has no section for contracts.{protocol}"
    return sections[0].split("\n## ")[0]


@pytest.mark.parametrize("kind", list(KINDS.values()), ids=list(KINDS))
def test_every_protocol_member_is_in_its_kinds_section_of_the_guide(kind):
    section = _guide_section(kind.protocol.__name__)
    for member in _protocol_members(kind):
        assert f"`{member}" in section, f"contracts.{kind.protocol.__name__}.{member} is not in its section of the guide"


def test_the_guide_and_the_reference_state_the_shadowing_rule():
    guide = (REPO / "docs" / "writing-plugins.md").read_text()
    for text in (guide, REFERENCE):
        flat = " ".join(text.split())
        assert "A plugin installed on purpose wins" in flat and "mmlabel:NAME" in flat and "PROVIDER:NAME" in flat
