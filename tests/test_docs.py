"""The docs cannot drift from the code: every hook and its signature appear in docs/plugin-hooks.md."""
import inspect

import pytest

from conftest import REPO
from mmlabel import hookspecs
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
