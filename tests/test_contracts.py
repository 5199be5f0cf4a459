"""Component contracts in code: every built-in passes the conformance kit; a component that breaks its contract is
one line naming it, its plugin and distribution, before any training step."""
import shutil
import textwrap

import pytest

from conftest import SHORT, registered, run_cli
from mmlabel import kinds, probe
from mmlabel.kinds import KINDS
from mmlabel.alignment.none import NoAlignment
from mmlabel.errors import ComponentError
from mmlabel.fusion.dtca import DTCAHead
from mmlabel.hookspecs import hookimpl
from mmlabel.metrics.span_f1 import SpanF1Metric
from mmlabel.plugins import DEFAULT_PLUGINS
from mmlabel.readers.jsonl import JsonlReader
from mmlabel.registry import ComponentConfig, build, components
from mmlabel.testing import ContractViolation, check_component, check_factory, component_checks

BUILTINS = [(component.kind, component.name) for component in components() if component.plugin in DEFAULT_PLUGINS]


def test_every_declared_kind_has_builtins_a_protocol_and_checks():
    assert {kind for kind, _ in BUILTINS} == {"text_encoder", "image_encoder", "fusion_head", "alignment_loss",
                                              "dataset_reader", "metric", "tag_scheme", "describer"} == set(KINDS)
    for kind in KINDS.values():
        assert getattr(kind.protocol, "_is_protocol", False) and kinds.load(kind.checks), kind.name


@pytest.mark.parametrize(("kind", "name"), BUILTINS, ids=[f"{kind}:{name}" for kind, name in BUILTINS])
def test_every_builtin_passes_the_conformance_kit(kind, name):
    if (kind, name) == ("describer", "ocr") and shutil.which("tesseract") is None:
        pytest.skip("tesseract is not installed (.ci/run installs Debian's tesseract-ocr)")
    check_component(kind, name)


def make_scheme(name: str, labels: list[str]):
    return build("tag_scheme", name, labels=labels)


class SchemeConfig(ComponentConfig):
    scheme: str = "bio"


def test_a_scheme_whose_encoding_its_own_masks_forbid_fails_the_kit():
    def strict(config, labels):
        scheme = make_scheme("bioes", labels)
        scheme.allowed_end = lambda: [tag == "O" for tag in scheme.tags]  # a span may never end a sentence
        return scheme

    strict.Config = SchemeConfig
    with pytest.raises(ContractViolation, match=r"tag_scheme 'strict' \(not registered\): masks: the encoding of "):
        check_factory("tag_scheme", strict, scheme="bioes")


# -- the kit catches what it claims to catch ------------------------------------------------------------------
class PaddingLossHead(DTCAHead):
    """Adds the emissions of padding words to the loss."""

    def loss(self, emissions, tags, word_mask):
        return super().loss(emissions, tags, word_mask) + emissions.sum((1, 2)) * 1e-3


class MaskBlindAlignment(NoAlignment):
    """The mean state difference over every token and patch, padding included."""

    def forward(self, text_states, text_mask, image_states, image_mask):
        return (text_states.mean(1) - image_states.mean(1)).pow(2).mean(-1)


class FractionMetric(SpanF1Metric):
    """Reports fractions, not percent."""

    def score(self, gold, predicted):
        return {key: value / 100 if key in ("precision", "recall", "f1") else value
                for key, value in super().score(gold, predicted).items()}


class ImagelessReader(JsonlReader):
    """Loses the image names on writing."""

    def write(self, examples, path):
        from mmlabel.data.example import Example

        super().write([Example(e.id, e.tokens, None, e.spans) for e in examples], path)


@pytest.mark.parametrize(("kind", "factory", "check", "message"), [
    ("fusion_head", PaddingLossHead, "loss_padding", "padding words (word_mask False) change the loss"),
    ("alignment_loss", MaskBlindAlignment, "forward", "an example without a real patch gets"),
    ("metric", FractionMetric, "perfect", "perfect prediction: precision is 1.0, not 100.00"),
    ("dataset_reader", ImagelessReader, "round_trip", "write then read gave"),
])
def test_the_kit_names_the_check_a_broken_component_fails(kind, factory, check, message):
    options = {"heads": 2} if kind == "fusion_head" else {}
    with pytest.raises(ContractViolation) as error:
        check_factory(kind, factory, **options)
    assert str(error.value).startswith(f"{kind} '{factory.__name__}' (not registered): {check}: {message}")


def test_a_lambda_transform_fails_the_picklable_check():
    from mmlabel.image_encoders.timm_encoder import TimmImageEncoder
    from mmlabel.testing import tiny_options

    class LambdaTransform(TimmImageEncoder):
        def __init__(self, config):
            super().__init__(config)
            transform = self.transform
            self.transform = lambda image: transform(image)

    with pytest.raises(ContractViolation, match=r": transform: PicklingError|: transform: AttributeError"):
        check_factory("image_encoder", LambdaTransform, **tiny_options()[("image_encoder", "timm")])


def test_component_checks_are_one_callable_per_check_for_parametrize():
    checks = component_checks("fusion_head", "dtca", heads=2)
    assert [str(check) for check in checks] == [
        f"fusion_head:dtca:{name}" for name in
        ("build", "forward", "image_padding", "loss", "loss_padding", "decode", "reload", "determinism", "attention")]


# -- checked when built ----------------------------------------------------------------------------------------
class WrongParts:
    __name__ = "wrong-parts"

    class NoConfig:
        """A reader without a Config."""

    class ReadPathOnly(JsonlReader):
        """A reader written to the old hookspec: `read(path)`."""

        def read(self, path):
            return super().read(path)

    class NoMainKey:
        """A metric without main_key."""

        class Config(ComponentConfig):
            pass

        def __init__(self, config):
            self.config = config

        def score(self, gold, predicted):
            return {"precision": 0.0, "recall": 0.0, "f1": 0.0}

    class NoF1(NoMainKey):
        """A metric without f1."""

        main_key = "accuracy"

        def score(self, gold, predicted):
            return {"accuracy": 0.0, "precision": 0.0, "recall": 0.0}

    @hookimpl
    def register_dataset_readers(self, register):
        register("no_config", WrongParts.NoConfig)
        register("read_path_only", WrongParts.ReadPathOnly)

    @hookimpl
    def register_metrics(self, register):
        register("no_main_key", WrongParts.NoMainKey)
        register("no_f1", WrongParts.NoF1)


@pytest.fixture
def wrong_parts():
    with registered(WrongParts(), "wrong-parts"):
        yield


@pytest.mark.parametrize(("kind", "name", "message"), [
    ("dataset_reader", "no_config", "dataset_reader 'no_config' (plugin wrong-parts, wrong-parts): its factory "
     "WrongParts.NoConfig has no nested `Config` subclass of mmlabel.ComponentConfig"),
    ("dataset_reader", "read_path_only", "dataset_reader 'read_path_only' (plugin wrong-parts, wrong-parts) breaks "
     "the dataset_reader contract: `read(path)` cannot be called as `read(path, on_bad_example=...)`"),
    ("metric", "no_main_key", "metric 'no_main_key' (plugin wrong-parts, wrong-parts) breaks the metric contract: "
     "`main_key` is missing"),
    ("metric", "no_f1", "metric 'no_f1' (plugin wrong-parts, wrong-parts) breaks the metric contract: `score`'s "
     "result has no 'f1' (keys: accuracy, precision, recall)"),
])
def test_a_component_breaking_its_contract_fails_when_built(wrong_parts, kind, name, message):
    with pytest.raises(ComponentError) as error:
        build(kind, name)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_the_probe_names_a_fusion_head_whose_emissions_have_the_wrong_shape(tmp_path):
    from mmlabel.data.example import Example, Span
    from mmlabel.model import TaggingModel
    from mmlabel.data.batches import Collator, TaggingDataset
    from mmlabel.testing.kit import tiny_hf

    class WordlessHead(DTCAHead):
        def forward(self, *inputs):
            return super().forward(*inputs)[:, 0]  # (batch, tags): the word dimension is lost

    text = build("text_encoder", {"name": "hf", **tiny_hf(tmp_path)})
    scheme = make_scheme("bio", ["POS"])
    head = WordlessHead(text_dim=text.hidden_size, num_tags=len(scheme.tags), heads=2)
    model = TaggingModel(text, head)
    examples = [Example("1", ["great", "game"], None, [Span(0, 1, "POS")]), Example("2", ["Obama"], None, [])]
    dataset = TaggingDataset(examples, scheme)
    batch = Collator(text.tokenize, 40)([dataset[0], dataset[1]])
    with pytest.raises(ComponentError, match=r"^fusion_head WordlessHead: emissions on the first batch are \(2, 3\) "
                                             r"float32; the contract is a floating-point tensor \(batch, words, "
                                             r"num_tags\) = \(2, 2, 3\)$"):
        probe.check_model_outputs(model, batch)
    model.fusion_head = DTCAHead(text_dim=text.hidden_size, num_tags=len(scheme.tags), heads=2)
    probe.check_model_outputs(model, batch)  # the right head passes
    assert model.training  # and the model is left in the mode it was in


# -- through the command line: exit 2, one line, before training ----------------------------------------------
PLUGIN = textwrap.dedent('''
    """Components that break their contracts, from an installed distribution."""
    from mmlabel import ComponentConfig, hookimpl, lazy


    @hookimpl
    def register_text_encoders(register):
        register("hollow", lazy("broken_parts_impl:Hollow", "a text encoder with no members"))
        register("stringly", lazy("broken_parts_impl:Stringly", "a text encoder whose hidden_size is a string"))


    @hookimpl
    def register_fusion_heads(register):
        register("wordless", lazy("broken_parts_impl:Wordless", "a fusion head that loses the word dimension"))
''')
IMPLEMENTATION = textwrap.dedent('''
    from torch import nn

    from mmlabel import ComponentConfig
    from mmlabel.fusion.dtca import DTCAHead
    from mmlabel.text_encoders.hf import HFTextEncoder


    class Hollow(nn.Module):
        class Config(ComponentConfig):
            pass

        def __init__(self, config):
            super().__init__()


    class Stringly(HFTextEncoder):
        def __init__(self, config):
            super().__init__(config)
            self.hidden_size = str(self.hidden_size)


    class Wordless(DTCAHead):
        def forward(self, *inputs):
            return super().forward(*inputs)[:, 0]
''')


@pytest.fixture
def broken_parts(tmp_path):
    (tmp_path / "broken_parts.py").write_text(PLUGIN)
    (tmp_path / "broken_parts_impl.py").write_text(IMPLEMENTATION)
    dist = tmp_path / "mmlabel_broken_parts-0.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mmlabel-broken-parts\nVersion: 0.2\n")
    (dist / "entry_points.txt").write_text("[mmlabel]\nbroken_parts = broken_parts\n")
    return {"PYTHONPATH": str(tmp_path), "MMLABEL_PLUGINS": "broken_parts"}


def test_recipe_check_validates_options_only_and_the_build_finds_the_missing_members(broken_parts):
    """One layer of checks at build time: `recipe check` validates the options (here, none) and builds nothing;
    building the encoder names every member it lacks."""
    override = ("--set", 'text_encoder={name = "hollow"}')
    assert run_cli("recipe", "check", "recipes/quickstart.toml", *override, env=broken_parts).returncode == 0
    result = run_cli("plugins", "check", "hollow", env=broken_parts)
    assert result.returncode == 1
    assert result.stdout.strip().splitlines() == [
        "FAIL text_encoder hollow (plugin broken_parts, mmlabel-broken-parts 0.2): build: ComponentError: "
        "text_encoder 'hollow' (plugin broken_parts, mmlabel-broken-parts 0.2) breaks the text_encoder contract: "
        "`forward` is missing; `hidden_size` is missing; `tokenize` is missing; `export` is missing"]


@pytest.mark.parametrize(("override", "message"), [
    ("text_encoder.name=stringly", "error: text_encoder 'stringly' (plugin broken_parts, mmlabel-broken-parts 0.2) "
                                   "breaks the text_encoder contract: `hidden_size` is '64', not an int"),
    ("fusion_head.name=wordless", "error: fusion_head 'wordless' (plugin broken_parts, mmlabel-broken-parts 0.2): "
                                  "emissions on the first batch are "),
])
def test_train_stops_before_the_first_step_naming_the_component(broken_parts, synthetic, tmp_path, override, message):
    out = tmp_path / "run"
    result = run_cli("train", "recipes/quickstart.toml", "--out", str(out), "--set", f"data.root={synthetic}",
                     "--set", override, *SHORT, env=broken_parts)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr
    assert "Traceback" not in result.stderr
    assert not (out / "log.jsonl").exists() and not (out / "checkpoint.pt").exists()


def test_plugins_check_prints_a_line_per_component_and_exits_1_on_a_failure(broken_parts):
    result = run_cli("plugins", "check", "mmlabel-broken-parts", env=broken_parts)
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["FAIL", "text_encoder", "hollow"], ["FAIL", "text_encoder", "stringly"], ["FAIL", "fusion_head", "wordless"]]
    assert lines[2].endswith("forward: emissions are (3, 7) float32, not floating (batch, words, num_tags) = (3, 5, 7)")


def test_plugins_check_of_the_builtin_metrics_passes_and_an_unknown_name_exits_2():
    result = run_cli("plugins", "check", "mmlabel.metrics")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == ["ok   metric mabsa (plugin mmlabel.metrics, mmlabel 0.1.0)",
                                          "ok   metric span_f1 (plugin mmlabel.metrics, mmlabel 0.1.0)"]
    unknown = run_cli("plugins", "check", "mmlabel-nothing")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: no plugin, distribution or component named 'mmlabel-nothing'")


LATE_CHECKS = component_checks("metric", "no_main_key")  # made at collection, before the fixture registers it


def test_checks_made_before_the_plugin_is_registered_run_once_it_is(wrong_parts):
    assert str(LATE_CHECKS[0]) == "metric:no_main_key:build"
    with pytest.raises(ContractViolation, match=r"^metric 'no_main_key' \(plugin wrong-parts, wrong-parts\): "
                                                r"build: ComponentError: .*`main_key` is missing$"):
        LATE_CHECKS[0]()
