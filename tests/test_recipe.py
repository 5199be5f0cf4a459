"""Recipes: TOML into pydantic, key paths in errors, `--set` overrides, component resolution, round trip."""
import tomllib
from pathlib import Path

import pytest

from conftest import registered
from mmlabel.errors import RecipeError
from mmlabel.hookspecs import hookimpl
from mmlabel.recipe import load_recipe, recipe_from_dict
from mmlabel.registry import ComponentConfig

REPO = Path(__file__).resolve().parents[1]


class FakeTextConfig(ComponentConfig):
    checkpoint: str = "tiny"
    hidden_size: int = 32


class AnyKind:
    """A fake with every method of every kind's contract (recipe checks look at a factory's methods, not at what
    they do)."""

    def forward(self, *inputs): ...
    def tokenize(self, words, max_tokens): ...
    def export(self, directory): ...
    def loss(self, emissions, tags, word_mask): ...
    def decode(self, emissions, word_mask): ...
    def find_splits(self, root): ...
    def read(self, path, on_bad_example="error"): ...
    def write(self, examples, path): ...
    def score(self, gold, predicted): ...


class FakeText(AnyKind):
    """A fake text encoder."""

    Config = FakeTextConfig


class NoOptions(AnyKind):
    """A fake component without options."""

    Config = type("Config", (ComponentConfig,), {})


class EveryKindPlugin:
    @hookimpl
    def register_text_encoders(self, register):
        register("fake_text", FakeText)

    @hookimpl
    def register_image_encoders(self, register):
        register("fake_image", NoOptions)

    @hookimpl
    def register_fusion_heads(self, register):
        register("fake_head", NoOptions)

    @hookimpl
    def register_alignment_losses(self, register):
        register("fake_loss", NoOptions)

    @hookimpl
    def register_dataset_readers(self, register):
        register("fake_reader", NoOptions)

    @hookimpl
    def register_metrics(self, register):
        register("fake_metric", NoOptions)


RECIPE = """\
[data]
reader = "fake_reader"
root = "somewhere"

[text_encoder]
name = "fake_text"
hidden_size = 64

[image_encoder]
name = "fake_image"

[fusion_head]
name = "fake_head"

[alignment_loss]
name = "fake_loss"

[metric]
name = "fake_metric"

[loss]
alpha = 0.3
beta = 0.9

[train]
lr = 3e-5
"""


@pytest.fixture
def every_kind():
    with registered(EveryKindPlugin(), "every-kind"):
        yield


@pytest.fixture
def recipe_file(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text(RECIPE)
    return path


def test_recipe_loads_and_fills_component_defaults(every_kind, recipe_file):
    recipe = load_recipe(recipe_file)
    assert recipe.loss.alpha == 0.3 and recipe.train.lr == 3e-5
    assert recipe.text_encoder.options == {"hidden_size": 64, "checkpoint": "tiny"}
    assert recipe.train.batch_size == 4 and recipe.train.patience == 3


def test_wrong_type_names_file_and_key_path(every_kind, recipe_file):
    recipe_file.write_text(RECIPE.replace("lr = 3e-5", 'lr = "fast"'))
    with pytest.raises(RecipeError, match=rf"^{recipe_file}: train\.lr: Input should be a valid number"):
        load_recipe(recipe_file)


def test_unknown_section_key_names_its_path_and_the_close_key(every_kind, recipe_file):
    recipe_file.write_text(RECIPE.replace("lr = 3e-5", "lrr = 3e-5"))
    with pytest.raises(RecipeError, match=rf"^{recipe_file}: unknown key train\.lrr \(did you mean train\.lr\?\)$"):
        load_recipe(recipe_file)


def test_unknown_key_without_a_close_one_lists_the_section_s_keys(every_kind, recipe_file):
    recipe_file.write_text(RECIPE.replace("lr = 3e-5", "zzz = 3e-5"))
    with pytest.raises(RecipeError) as error:
        load_recipe(recipe_file)
    assert str(error.value).startswith(f"{recipe_file}: unknown key train.zzz (train takes: epochs, patience, ")
    assert "did you mean" not in str(error.value) and "\n" not in str(error.value)


def test_misspelt_component_option_names_its_path_and_the_close_option(every_kind, recipe_file):
    recipe_file.write_text(RECIPE.replace("hidden_size = 64", "hiden_size = 64"))
    with pytest.raises(RecipeError, match=r"unknown key text_encoder\.hiden_size \(did you mean "
                                          r"text_encoder\.hidden_size\?\)$"):
        load_recipe(recipe_file)


@pytest.mark.parametrize("override, message", [
    ("train.lrr=1", "unknown key train.lrr (did you mean train.lr?)"),
    ("data.rooot=x", "unknown key data.rooot (did you mean data.root?)"),
    ("fusion_head.headz=2", "unknown key fusion_head.headz (did you mean fusion_head.heads?)"),
    ("loss.alpah=1", "unknown key loss.alpah (did you mean loss.alpha?)"),
])
def test_a_misspelt_override_gets_the_close_key(capsys, override, message):
    code, out, err = recipe_check(capsys, "quickstart", "--set", override)
    assert code == 2 and out == ""
    assert err == f"error: quickstart (with --set {override}): {message}\n"


def test_unknown_component_lists_available_names_with_providers(every_kind, recipe_file):
    recipe_file.write_text(RECIPE.replace('name = "fake_head"', 'name = "fake_hed"'))
    with pytest.raises(RecipeError) as error:
        load_recipe(recipe_file)
    message = str(error.value)
    assert "fusion_head.name: unknown fusion_head 'fake_hed'" in message
    assert "did you mean 'fake_head'" in message
    assert "fake_head (every-kind)" in message


def test_toml_syntax_error_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[train]\nlr = = 1\n")
    with pytest.raises(RecipeError, match=r"broken\.toml: .*line 2"):
        load_recipe(path, resolve=False)


def test_missing_recipe_file_is_a_recipe_error(tmp_path):
    with pytest.raises(RecipeError, match="no such recipe file"):
        load_recipe(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("override", "check"),
    [
        ("train.lr=1e-4", lambda r: r.train.lr == 1e-4),
        ("train.epochs=7", lambda r: r.train.epochs == 7),
        ("train.precision=bf16", lambda r: r.train.precision == "bf16"),
        ("loss.beta=0", lambda r: r.loss.beta == 0.0),
        ("text_encoder.hidden_size=128", lambda r: r.text_encoder.options["hidden_size"] == 128),
        ("data.root=/elsewhere", lambda r: r.data.root == "/elsewhere"),
        ("image_encoder=none", lambda r: r.image_encoder is None),
        ("image_encoder.name=none", lambda r: r.image_encoder is None),
        ("loss.crf_reduction=sum", lambda r: r.loss.crf_reduction == "sum"),
        ("loss.crf_weight=0.1", lambda r: r.loss.crf_weight == 0.1),
        ("train.head_lr=1e-3", lambda r: r.train.head_lr == 1e-3 and r.train.lr == 3e-5),
        ("train.schedule_epochs=30", lambda r: r.train.schedule_epochs == 30),
    ],
)
def test_set_overrides_are_typed_by_the_schema(every_kind, recipe_file, override, check):
    assert check(load_recipe(recipe_file, [override]))


@pytest.mark.parametrize(("override", "message"), [
    ("train.schedule_epochs=5", r"train: .*schedule_epochs \(5\) is below epochs \(20\)"),
    ("loss.crf_reduction=max", r"loss\.crf_reduction: Input should be 'mean' or 'sum'"),
    ("train.head_lr=0", r"train\.head_lr: Input should be greater than 0"),
])
def test_bad_balance_and_schedule_options_name_their_key(every_kind, recipe_file, override, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(recipe_file, [override])


def test_the_reference_recipes_state_the_authors_balance_and_eq15_is_three_sets_away():
    """The loss options of the reference recipes (docs/model.md, "Loss balance"), and the literal Eq. 15 variant."""
    for name in ("dtca.toml", "dtca-twitter2017.toml", "mner-twitter2015.toml", "mner-twitter2017.toml"):
        recipe = load_recipe(REPO / "recipes" / name)
        assert (recipe.loss.crf_reduction, recipe.loss.crf_weight) == ("sum", 0.1), name
        assert recipe.alignment_loss.cost == "cosine" and recipe.image_encoder.resize == "squash", name
        assert (recipe.train.epochs, recipe.train.schedule_epochs, recipe.train.warmup_ratio) == (20, 20, 0.1), name
    literal = load_recipe(REPO / "recipes" / "dtca.toml", ["alignment_loss.cost=mse", "loss.crf_reduction=mean",
                                                           "loss.crf_weight=1"])
    assert (literal.alignment_loss.cost, literal.loss.crf_reduction, literal.loss.crf_weight) == ("mse", "mean", 1.0)


def test_set_override_of_a_reader_given_as_a_string(every_kind, recipe_file):
    recipe = load_recipe(recipe_file, ["data.reader.name=fake_reader"])
    assert recipe.data.reader.name == "fake_reader"


def test_set_override_with_a_wrong_type_names_the_override(every_kind, recipe_file):
    with pytest.raises(RecipeError, match=r"with --set train\.epochs=many\): train\.epochs: Input should be a valid integer"):
        load_recipe(recipe_file, ["train.epochs=many"])


def test_set_override_without_equals_is_an_error(every_kind, recipe_file):
    with pytest.raises(RecipeError, match="expected key.path=value"):
        load_recipe(recipe_file, ["train.epochs"])


def test_resolved_recipe_round_trips_through_toml(every_kind, recipe_file):
    recipe = load_recipe(recipe_file, ["train.seed=5"])
    again = recipe_from_dict(tomllib.loads(recipe.to_toml()))
    assert again == recipe
    assert again.train.seed == 5


def test_data_paths_resolve_against_mmlabel_data(monkeypatch, every_kind, recipe_file, tmp_path):
    recipe = load_recipe(recipe_file)
    monkeypatch.setenv("MMLABEL_DATA", str(tmp_path))
    assert recipe.data.root_path() == tmp_path / "somewhere"
    assert recipe.data.images_path() == tmp_path / "somewhere" / "images"
    monkeypatch.delenv("MMLABEL_DATA")
    assert str(recipe.data.root_path()) == "somewhere"


class GatedHead(AnyKind):
    """A fake fusion head whose options are not the built-in's: no `heads`."""

    class Config(ComponentConfig):
        dropout: float = 0.1
        depth: int = 1


class GatedHeadPlugin:
    @hookimpl
    def register_fusion_heads(self, register):
        register("fake", GatedHead)


@pytest.fixture
def gated_head():
    with registered(GatedHeadPlugin(), "gated-head"):
        yield


def recipe_check(capsys, *args: str) -> tuple[int, str, str]:
    """`mmlabel recipe check ARGS` in this process (so that the fixture's plugin is seen): exit code, stdout, stderr."""
    from mmlabel.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["recipe", "check", *args])
    out, err = capsys.readouterr()
    return exited.value.code, out, err


def test_swapping_a_component_by_name_drops_the_file_options_it_does_not_define(gated_head, capsys):
    code, out, err = recipe_check(capsys, str(REPO / "recipes" / "quickstart.toml"), "--set", "fusion_head.name=fake")
    assert code == 0, err
    assert tomllib.loads(out)["fusion_head"] == {"name": "fake", "dropout": 0.1, "depth": 1}
    assert err.strip().splitlines() == [
        f"note: {REPO / 'recipes' / 'quickstart.toml'}: --set fusion_head.name=fake drops fusion_head.heads from the "
        "file (fusion_head 'fake' does not define it)"]


def test_a_swap_keeps_the_file_options_the_new_component_defines(gated_head, tmp_path, capsys):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[data.reader]\nname = "conll"\ntag_column = 2\n\n'
                      '[fusion_head]\nname = "dtca"\nheads = 2\ndropout = 0.3\nmlp_ratio = 2.0\n')
    code, out, err = recipe_check(capsys, str(recipe), "--set", "fusion_head.name=fake", "--set", "data.reader.name=jml")
    assert code == 0, err
    resolved = tomllib.loads(out)
    assert resolved["fusion_head"] == {"name": "fake", "dropout": 0.3, "depth": 1}
    assert resolved["data"]["reader"] == {"name": "jml"}
    notes = [line for line in err.strip().splitlines() if line.startswith("note: ")]
    assert err.strip().splitlines()[-1].endswith("data.root is not set: give it in the recipe or with --set "
                                                 "data.root=DIR; training needs it where it runs")
    assert len(notes) == 2
    assert "drops data.reader.tag_column from the file (dataset_reader 'jml' does not define it)" in notes[0]
    assert "drops fusion_head.heads, fusion_head.mlp_ratio from the file (fusion_head 'fake' does not define them)" in notes[1]


def test_an_inline_table_replaces_the_whole_section(gated_head, capsys):
    code, out, err = recipe_check(capsys, str(REPO / "recipes" / "quickstart.toml"),
                                  "--set", 'fusion_head={name = "fake", depth = 3}')
    assert code == 0 and err == ""
    assert tomllib.loads(out)["fusion_head"] == {"name": "fake", "dropout": 0.1, "depth": 3}


@pytest.mark.parametrize("overrides, key", [
    (["fusion_head.name=fake", "fusion_head.hedas=2"], "fusion_head.hedas"),  # a misspelt option given with --set
    (["fusion_head.heads=2", "fusion_head.name=fake"], "fusion_head.heads"),  # an option the new head lacks, set by hand
    (['fusion_head={name = "fake", heads = 2}'], "fusion_head.heads"),
])
def test_options_given_with_set_stay_strict(gated_head, capsys, overrides, key):
    code, out, err = recipe_check(capsys, str(REPO / "recipes" / "quickstart.toml"),
                                  *[arg for override in overrides for arg in ("--set", override)])
    assert code == 2 and out == ""
    errors = [line for line in err.splitlines() if not line.startswith("note: ")]  # a swap's note may come first
    assert len(errors) == 1 and f"unknown key {key}" in errors[0]


def test_setting_the_same_name_drops_nothing(capsys):
    code, out, err = recipe_check(capsys, str(REPO / "recipes" / "quickstart.toml"), "--set", "fusion_head.name=dtca")
    assert code == 0 and err == "" and tomllib.loads(out)["fusion_head"]["heads"] == 4


def test_recipe_check_warns_of_a_data_root_that_is_not_here(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("MMLABEL_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    code, out, err = recipe_check(capsys, "quickstart", "--set", "data.root=nowhere")
    assert code == 0 and tomllib.loads(out)["data"]["root"] == "nowhere"  # the data may live where it is trained
    assert err == ("warning: quickstart: data.root: no such directory: nowhere (a relative data.root is read from "
                   "$MMLABEL_DATA where set, else from the current directory; or give --set data.root=DIR); training "
                   "needs it where it runs\n")
    (tmp_path / "nowhere").mkdir()
    code, out, err = recipe_check(capsys, "quickstart", "--set", "data.root=nowhere")
    assert code == 0 and err == ""
