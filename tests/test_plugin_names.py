"""Plugins survive the core's growth (issue 27): a real distribution (`*.dist-info` with an entry point in the group
`mmlabel`) written when neither `gated` nor `mmd` was built in registers a fusion head `gated` and an alignment loss
`mmd`; the core has both names now. The plugin keeps them, its recipes and its own tests; the built-ins stay
reachable as `mmlabel:NAME`; a run records whose components it used and says what to install when one is missing."""
import json
import textwrap

import pytest

from conftest import SHORT, TINY, run_cli
from test_plugin_faults import install

HOOKS = '''
"""mmlabel-gatedfusion: a fusion head `gated` and an alignment loss `mmd`, written before the core had either."""
from mmlabel import hookimpl, lazy


@hookimpl
def register_fusion_heads(register):
    register("gated", lazy("gatedfusion_parts:BiasedGateHead", "a DTCA head whose emissions get a learnt bias"))


@hookimpl
def register_alignment_losses(register):
    register("mmd", lazy("gatedfusion_parts:ScaledMeanDistance", "scaled distance of the mean states"))
'''
PARTS = '''
import torch
from pydantic import Field
from torch import nn

from mmlabel import ComponentConfig, Configured
from mmlabel.fusion.dtca import DTCAHead


class BiasedGateHead(DTCAHead):
    """DTCA with a learnt bias on the emissions; its own option `gate_bias` (no built-in head has it)."""

    class Config(DTCAHead.Config):
        gate_bias: float = Field(0.5, description="initial bias of every emission")

    def __init__(self, config=None, **arguments):
        super().__init__(config, **arguments)
        self.bias = nn.Parameter(torch.full((self.num_tags,), self.config.gate_bias))

    def forward(self, text_states, first_subword_index, image_states=None, image_mask=None):
        return super().forward(text_states, first_subword_index, image_states, image_mask) + self.bias


class ScaledMeanDistance(Configured, nn.Module):
    """`scale` x the squared distance of the mean real token and patch states (the built-in mmd has no `scale`)."""

    class Config(ComponentConfig):
        scale: float = Field(1.0, gt=0)

    def forward(self, text_states, text_mask, image_states, image_mask):
        text = (text_states * text_mask[..., None]).sum(1) / text_mask.sum(1, keepdim=True).clamp(min=1)
        image = (image_states * image_mask[..., None]).sum(1) / image_mask.sum(1, keepdim=True).clamp(min=1)
        distance = self.config.scale * (text - image).pow(2).mean(-1)
        return distance.masked_fill(~text_mask.any(1) | ~image_mask.any(1), 0.0)
'''
RECIPE = '''
[fusion_head]
name = "gated"
heads = 4
gate_bias = 0.25

[alignment_loss]
name = "mmd"
scale = 3.0
'''
NOTES = [
    "note: fusion_head 'gated' is mmlabel-gatedfusion 0.1.0's (gatedfusion:gated), which shadows the built-in: "
    "name it mmlabel:gated for mmlabel's own",
    "note: alignment_loss 'mmd' is mmlabel-gatedfusion 0.1.0's (gatedfusion:mmd), which shadows the built-in: "
    "name it mmlabel:mmd for mmlabel's own",
]


@pytest.fixture(scope="module")
def gatedfusion(tmp_path_factory):
    """The plugin installed as `pip install --target` leaves it: its modules and its dist-info; the environment."""
    site = tmp_path_factory.mktemp("site")
    install(site, "mmlabel-gatedfusion", "0.1.0", {"gatedfusion": "gatedfusion_hooks"},
            {"gatedfusion_hooks": HOOKS, "gatedfusion_parts": PARTS})
    return {"PYTHONPATH": str(site), "COLUMNS": "250"}


@pytest.fixture(scope="module")
def plugin_recipe(tmp_path_factory):
    """The plugin's recipe: the quickstart with its head and loss and their own options."""
    from conftest import REPO

    path = tmp_path_factory.mktemp("recipe") / "gatedfusion.toml"
    head, _, rest = (REPO / "recipes" / "quickstart.toml").read_text().partition("[fusion_head]")
    _, _, tail = rest.partition("[metric]")  # the quickstart without its fusion head and alignment loss
    path.write_text(head + "[metric]" + tail + textwrap.dedent(RECIPE))
    return path


def test_the_plugins_recipe_keeps_its_components_although_the_core_has_the_names(gatedfusion, plugin_recipe):
    result = run_cli("recipe", "check", str(plugin_recipe), env=gatedfusion)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # the shadowing is said by `list` and `plugins`, not by every command
    assert "gate_bias = 0.25" in result.stdout and "scale = 3.0" in result.stdout


def test_the_builtins_stay_reachable_by_their_qualified_names(gatedfusion, plugin_recipe):
    result = run_cli("recipe", "check", str(plugin_recipe), "--set", "fusion_head.name=mmlabel:gated",
                     "--set", "alignment_loss.name=mmlabel:mmd", env=gatedfusion)
    assert result.returncode == 0, result.stderr
    assert "gate_bias" not in result.stdout and "scale" not in result.stdout  # dropped: the built-ins lack them
    assert 'name = "mmlabel:gated"' in result.stdout and 'kernel = "gaussian"' in result.stdout


def test_list_and_plugins_say_it_in_one_line_each(gatedfusion):
    listing = run_cli("list", env=gatedfusion)
    assert listing.returncode == 0 and listing.stderr.splitlines() == NOTES
    rows = listing.stdout.splitlines()
    assert any("mmlabel:gated" in row and "(shadowed by gatedfusion:gated)" in row for row in rows)
    plugins = run_cli("plugins", env=gatedfusion)
    assert plugins.returncode == 0 and plugins.stderr.splitlines() == NOTES
    row = next(row for row in json.loads(plugins.stdout) if row["name"] == "gatedfusion")
    assert row["components"] == {"fusion_head": ["gated"], "alignment_loss": ["mmd"]}


def test_the_plugins_own_conformance_tests_pass(gatedfusion):
    result = run_cli("plugins", "check", "mmlabel-gatedfusion", env=gatedfusion)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split()[:3] for line in result.stdout.splitlines()] == [
        ["ok", "fusion_head", "gated"], ["ok", "alignment_loss", "mmd"]]


def test_a_run_records_its_providers_and_names_the_one_to_install(gatedfusion, plugin_recipe, synthetic, tmp_path):
    out = tmp_path / "run"
    trained = run_cli("train", str(plugin_recipe), "--out", str(out), "--set", f"data.root={synthetic}",
                      "--set", "data.synthetic=false", *TINY, *SHORT, env=gatedfusion)
    assert trained.returncode == 0, trained.stderr
    recorded = json.loads((out / "run.json").read_text())["components"]
    assert recorded["fusion_head"] == {"name": "gatedfusion:gated", "distribution": "mmlabel-gatedfusion",
                                       "version": "0.1.0"}
    assert recorded["alignment_loss"]["name"] == "gatedfusion:mmd"
    assert recorded["text_encoder"] == {"name": "mmlabel:hf", "distribution": "mmlabel", "version": "0.1.0"}
    assert run_cli("evaluate", str(out), "--json", env=gatedfusion).returncode == 0

    missing = run_cli("evaluate", str(out), env={"MMLABEL_PLUGINS": ""})
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"error: {out}: fusion_head 'gatedfusion:gated' came from mmlabel-gatedfusion 0.1.0, which is not installed "
        "here: pip install mmlabel-gatedfusion"]
