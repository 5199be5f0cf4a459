"""Each component kind is declared once (mmlabel/kinds.py): a kind declared in a test alone gets a hook, registration,
a recipe section with option validation, the contract check at build time and the conformance kit. Configs are
validated by the base class, and checking a recipe imports no torch."""
import subprocess
import sys
from typing import Protocol, runtime_checkable

import pytest

from conftest import REPO, registered
from mmlabel import hookimpl, kinds
from mmlabel.configs import ComponentConfig, Configured
from mmlabel.errors import ComponentError, RecipeError
from mmlabel.kinds import KINDS, Kind, declared
from mmlabel.plugins import get_plugin_manager
from mmlabel.recipe import recipe_from_dict
from mmlabel.registry import build, components, get
from mmlabel.testing import ContractViolation, check_component, component_checks
from mmlabel.testing.kit import expect


@runtime_checkable
class Captioner(Protocol):
    """Writes one line about a post (a kind of this test only)."""

    prefix: str

    def caption(self, words: list[str]) -> str:
        """The caption of a post's words, starting with `prefix`."""


def caption_starts_with_prefix(subject) -> None:
    captioner = subject.built
    text = captioner.caption(["great", "game"])
    expect(text.startswith(captioner.prefix), f"caption {text!r} does not start with prefix {captioner.prefix!r}")


CAPTIONER = Kind("captioner", "captioner", "register_captioners", "captioners", Captioner, runtime=("language",),
                 checks=[("prefix", caption_starts_with_prefix)], kit_runtime=lambda: {"language": "en"})


class EchoCaptioner(Configured):
    """Repeats the words after its prefix."""

    class Config(ComponentConfig):
        prefix: str = "caption:"

    def __init__(self, config=None, *, language: str, **options):
        super().__init__(config, **options)
        self.prefix, self.language = self.config.prefix, language

    def caption(self, words: list[str]) -> str:
        return f"{self.prefix} {' '.join(words)}"


class ShoutingCaptioner(EchoCaptioner):
    """Forgets its prefix: fails the kit's check."""

    def caption(self, words: list[str]) -> str:
        return " ".join(words).upper()


class SilentCaptioner(Configured):
    """Has no `caption`: breaks the contract when built."""

    class Config(ComponentConfig):
        pass

    prefix = ""

    def __init__(self, config=None, *, language: str, **options):
        super().__init__(config, **options)


class CaptionPlugin:
    @hookimpl
    def register_captioners(self, register):
        register("echo", EchoCaptioner)
        register("shouting", ShoutingCaptioner)
        register("silent", SilentCaptioner)


@pytest.fixture
def captioner_kind():
    with declared(CAPTIONER), registered(CaptionPlugin(), "captions"):
        yield


def test_a_kind_declared_in_a_test_gets_a_hook_and_registration(captioner_kind):
    assert [component.name for component in components("captioner")] == ["echo", "shouting", "silent"]
    assert get("captioner", "captions:echo").factory is EchoCaptioner
    spec = get_plugin_manager().hook.register_captioners.spec
    assert "returns a `contracts.Captioner`: `prefix`, `caption(words)`" in spec.function.__doc__


def test_a_kind_declared_in_a_test_gets_its_recipe_section(captioner_kind):
    recipe = recipe_from_dict({"captioner": {"name": "echo", "prefix": ">"}})
    assert recipe.captioner.name == "echo" and recipe.captioner.prefix == ">"
    assert recipe.component_specs()["captioner"][0] == "captioner"
    assert "[captioner]" in recipe.to_toml()
    assert recipe_from_dict({}).captioner is None  # no default: the section is optional
    with pytest.raises(RecipeError, match=r"unknown key captioner\.prefx \(did you mean captioner\.prefix\?\)"):
        recipe_from_dict({"captioner": {"name": "echo", "prefx": ">"}})
    with pytest.raises(RecipeError, match=r"captioner\.name: unknown captioner 'ecco'; did you mean 'echo'"):
        recipe_from_dict({"captioner": "ecco"})


def test_a_kind_declared_in_a_test_is_built_and_checked_as_the_core_builds_any(captioner_kind):
    recipe = recipe_from_dict({"captioner": {"name": "echo", "prefix": ">"}})
    assert build("captioner", recipe.captioner, language="fr").caption(["a", "b"]) == "> a b"
    with pytest.raises(ComponentError, match=r"^captioner 'silent' \(plugin captions, captions\) breaks the "
                                             r"captioner contract: `caption` is missing$"):
        build("captioner", "silent", language="en")
    with pytest.raises(TypeError, match="captioner factories take language, not labels"):
        build("captioner", "echo", labels=["x"])


def test_a_kind_declared_in_a_test_gets_the_kit(captioner_kind):
    check_component("captioner", "echo")
    assert [str(check) for check in component_checks("captioner", "echo")] == ["captioner:echo:build",
                                                                                 "captioner:echo:prefix"]
    with pytest.raises(ContractViolation, match=r"captioner 'shouting' .*: prefix: caption 'GREAT GAME' does not "
                                                r"start with prefix 'caption:'"):
        check_component("captioner", "shouting")


def test_the_kind_is_gone_after_the_block():
    assert "captioner" not in KINDS
    with pytest.raises(RecipeError, match=r"unknown key captioner \(the top level takes: data, "):
        recipe_from_dict({"captioner": "echo"})
    with pytest.raises(ComponentError, match=r"unknown component kind 'captioner'"):
        components("captioner")


def test_every_builtin_kind_is_declared_once_with_its_section_hook_and_protocol():
    assert [kind.section for kind in KINDS.values()] == [
        "text_encoder", "image_encoder", "fusion_head", "alignment_loss", "data.reader", "metric", "data.tag_scheme",
        "data.describer"]
    assert len({kind.hook for kind in KINDS.values()}) == len(KINDS)
    assert KINDS["fusion_head"].factory_call == ("factory(config, text_dim=, image_dim=, num_tags=, allowed_start=, "
                                                 "allowed_transitions=, allowed_end=)")
    with pytest.raises(ValueError, match="declared already"):
        with declared(KINDS["metric"]):
            pass
    generation = kinds.generation()
    with declared(CAPTIONER):
        assert kinds.generation() == generation + 1


# -- configs validated by the base class ---------------------------------------------------------------------------
def test_configured_validates_options_or_takes_a_config():
    assert EchoCaptioner(language="en").config.prefix == "caption:"
    assert EchoCaptioner(EchoCaptioner.Config(prefix="!"), language="en").prefix == "!"
    assert EchoCaptioner(prefix="?", language="en").prefix == "?"
    with pytest.raises(TypeError, match="give a config or options \\(prefix\\), not both"):
        EchoCaptioner(EchoCaptioner.Config(), prefix="?", language="en")
    with pytest.raises(TypeError, match="config is a Config, not its SilentCaptioner.Config"):
        SilentCaptioner(EchoCaptioner.Config(), language="en")


def test_no_builtin_component_validates_its_own_options():
    """`config or self.Config(**options)` lived in a dozen classes; the base class does it now."""
    sources = [path for folder in ("mmlabel", "plugins") for path in (REPO / folder).rglob("*.py")]
    copied = [str(path) for path in sources if "self.Config(**options)" in path.read_text(encoding="utf-8")]
    assert copied == [str(REPO / "mmlabel" / "configs.py")]


# -- a recipe is checked without torch -------------------------------------------------------------------------------
def test_recipe_check_of_the_reference_recipe_imports_no_torch():
    code = ("import sys\nfrom mmlabel.cli import main\ntry:\n    main(['recipe', 'check', 'recipes/dtca.toml'])\n"
            "except SystemExit as exit_:\n    assert not exit_.code, exit_.code\n"
            "print(sorted(m for m in ('torch', 'transformers', 'timm', 'geomloss', 'ot') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"
    assert 'name = "dtca"' in result.stdout and "heads = 8" in result.stdout  # resolved, with every default
