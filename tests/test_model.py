"""The joint model: every text family x every image family trains end to end, padding changes nothing, the recipe
and the Python API build the same thing, and registering the components imports no torch."""
import subprocess
import sys

import pytest
import torch

from mmlabel.alignment.emd import EMDAlignment
from mmlabel.fusion.dtca import DTCAHead
from mmlabel.image_encoders.timm_encoder import TimmImageEncoder
from mmlabel.model import ModelOutput, TaggingModel
from mmlabel.recipe import recipe_from_dict
from mmlabel.registry import build, components
from mmlabel.text_encoders.hf import HFTextEncoder
from model_helpers import (TEXT_FAMILIES, TINY_IMAGES, make_batch, tiny_image_options, tiny_text_options,  # noqa: F401
                           tokenizer_dirs)

SENTENCES = [["Messi", "scores", "at", "Barcelona"], ["Obama", "visits", "New", "York", "with", "Michelle", "tonight"]]
# BIO with one type: O = 0, B = 1, I = 2.
ALLOWED_START = [True, True, False]
ALLOWED_TRANSITIONS = [[True, True, False], [True, True, True], [True, True, True]]


def build_model(text_family, image_family, tokenizer_dirs, alignment="emd", alpha=0.6, beta=0.6):
    text = build("text_encoder", {"name": "hf", **tiny_text_options(text_family, tokenizer_dirs[text_family])})
    image = build("image_encoder", {"name": "timm", **tiny_image_options(image_family)}) if image_family else None
    head = build("fusion_head", "dtca", text_dim=text.hidden_size, image_dim=image.hidden_size if image else None, num_tags=3, allowed_start=ALLOWED_START, allowed_transitions=ALLOWED_TRANSITIONS)
    align = build("alignment_loss", alignment)
    return TaggingModel(text, head, image_encoder=image, alignment_loss=align, alpha=alpha, beta=beta)


def test_registering_components_imports_no_torch():
    code = "import sys, mmlabel; mmlabel.components(); print('torch' in sys.modules, 'transformers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["False", "False"], result.stderr


@pytest.mark.parametrize("text_family", TEXT_FAMILIES)
@pytest.mark.parametrize("image_family", list(TINY_IMAGES))
def test_every_text_and_image_family_trains(text_family, image_family, tokenizer_dirs):
    torch.manual_seed(0)
    model = build_model(text_family, image_family, tokenizer_dirs)
    batch = make_batch(model.text_encoder, SENTENCES, image_encoder=model.image_encoder)
    output = model(batch)
    assert isinstance(output, ModelOutput) and output.loss.dim() == 0 and torch.isfinite(output.loss)
    assert set(output.losses) == {"crf", "text", "align"} and output.losses["align"] > 0
    assert not any(part.requires_grad for part in output.losses.values())
    output.loss.backward()
    reached = {
        "text encoder": model.text_encoder.model.embeddings.word_embeddings.weight,
        "image encoder": next(model.image_encoder.model.patch_embed.parameters()),
        "cross-attention": model.fusion_head.cross_attention.in_proj_weight
        if model.fusion_head.cross_attention._qkv_same_embed_dim else model.fusion_head.cross_attention.k_proj_weight,
        "emissions": model.fusion_head.emissions.weight,
        "crf": model.fusion_head.crf.crf.transitions,
        "text head": model.text_head.weight,
    }
    for name, parameter in reached.items():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, f"no gradient reaches the {name}"


def test_loss_is_the_weighted_sum_and_ablations_are_configuration(tokenizer_dirs):
    torch.manual_seed(0)
    model = build_model("bert", "vit", tokenizer_dirs, alpha=0.3, beta=0.9).eval()
    batch = make_batch(model.text_encoder, SENTENCES, image_encoder=model.image_encoder)
    output = model(batch)
    parts = output.losses
    assert output.loss.item() == pytest.approx((parts["crf"] + 0.3 * parts["text"] + 0.9 * parts["align"]).item(), rel=1e-5)
    model.alpha, model.beta = 0.0, 0.0
    assert model(batch).loss.item() == pytest.approx(parts["crf"].item(), rel=1e-5)


def test_padding_changes_neither_emissions_nor_alignment(tokenizer_dirs):
    torch.manual_seed(0)
    model = build_model("roberta", "vit", tokenizer_dirs).eval()
    alone = make_batch(model.text_encoder, SENTENCES[:1], image_encoder=model.image_encoder)
    longer = SENTENCES[1] + ["the", "cat", "sat", "on", "the", "mat"]
    padded = make_batch(model.text_encoder, SENTENCES[:1] + [longer], image_encoder=model.image_encoder)
    padded["pixel_values"][0] = alone["pixel_values"][0]
    assert padded["input_ids"].shape[1] > alone["input_ids"].shape[1]  # the first sentence is padded in the batch
    words = len(SENTENCES[0])
    with torch.no_grad():
        single, batched = model(alone), model(padded)
        assert torch.allclose(batched.emissions[0, :words], single.emissions[0, :words], atol=1e-5)
        distances = []
        for batch in (alone, padded):
            text_states = model.text_encoder(batch["input_ids"], batch["attention_mask"])
            image_states, image_mask = model.image_encoder(batch["pixel_values"])
            distances.append(model.alignment_loss(text_states, batch["attention_mask"].bool(),
                                                  model.image_projection(image_states), image_mask)[0])
    assert distances[1].item() == pytest.approx(distances[0].item(), rel=1e-4)


def test_decode_gives_one_allowed_tag_per_real_word(tokenizer_dirs):
    torch.manual_seed(0)
    model = build_model("electra", "swin", tokenizer_dirs).eval()
    with torch.no_grad():
        model.fusion_head.crf.crf.transitions[0, 2] = 50.0  # O -> I made attractive: only the constraint forbids it
        model.fusion_head.crf.crf.start_transitions[2] = 50.0
    batch = make_batch(model.text_encoder, SENTENCES, image_encoder=model.image_encoder)
    predictions = model.decode(batch)
    assert [len(tags) for tags in predictions] == [len(s) for s in SENTENCES]
    for tags in predictions:
        assert tags[0] != 2 and (0, 2) not in zip(tags, tags[1:])
    cut = make_batch(model.text_encoder, SENTENCES, image_encoder=model.image_encoder, max_tokens=5)
    assert [len(tags) for tags in model.decode(cut)] == cut["word_mask"].sum(1).tolist()


def test_text_only_baseline_from_a_recipe(tokenizer_dirs):
    recipe = recipe_from_dict({
        "text_encoder": {"name": "hf", **tiny_text_options("bert", tokenizer_dirs["bert"])},
        "image_encoder": "none",
        "loss": {"alpha": 0.5, "beta": 0.9},
    }, resolve=False)  # readers and metrics live in other modules; from_recipe validates its own components
    model = TaggingModel.from_recipe(recipe, num_tags=3, allowed_end=[True, False, True])
    assert model.fusion_head.crf.allowed_end.tolist() == [True, False, True]  # the tag scheme's end mask reaches the CRF
    assert model.image_encoder is None and model.alignment_loss is None and model.fusion_head.cross_attention is None
    batch = make_batch(model.text_encoder, SENTENCES)
    output = model(batch)
    assert output.losses["align"] == 0
    output.loss.backward()
    assert model.text_encoder.model.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert [len(tags) for tags in model.eval().decode(batch)] == [4, 7]


def test_recipe_and_python_api_build_the_same_model(tokenizer_dirs):
    text_options = tiny_text_options("albert", tokenizer_dirs["albert"])
    recipe = recipe_from_dict({
        "text_encoder": {"name": "hf", **text_options},
        "image_encoder": {"name": "timm", **tiny_image_options("deit")},
        "fusion_head": {"name": "dtca", "heads": 4},
        "alignment_loss": {"name": "sinkhorn", "blur": 0.1},
        "loss": {"alpha": 0.3, "beta": 0.9},
    }, resolve=False)
    from_recipe = TaggingModel.from_recipe(recipe, num_tags=5, allowed_start=[True] * 5,
                                           allowed_transitions=[[True] * 5] * 5)
    text = HFTextEncoder(**text_options)
    image = TimmImageEncoder(**tiny_image_options("deit"))
    head = DTCAHead(text_dim=text.hidden_size, image_dim=image.hidden_size, num_tags=5, heads=4)
    by_hand = TaggingModel(text, head, image_encoder=image, alignment_loss=EMDAlignment(), alpha=0.3, beta=0.9)
    assert from_recipe.fusion_head.cross_attention.num_heads == 4
    assert from_recipe.alignment_loss.config.blur == 0.1 and (from_recipe.alpha, from_recipe.beta) == (0.3, 0.9)
    shapes = {name: tuple(p.shape) for name, p in from_recipe.state_dict().items()}
    assert shapes == {name: tuple(p.shape) for name, p in by_hand.state_dict().items()}
    by_hand.load_state_dict(from_recipe.state_dict())  # a run's weights load into the hand-built model


CONTRACT_OPTIONS = {
    ("image_encoder", "timm"): tiny_image_options("vit"),
    ("fusion_head", "dtca"): {},
    ("fusion_head", "text"): {},
    ("fusion_head", "concat"): {},
    ("fusion_head", "gated"): {},
    ("fusion_head", "prefix"): {},
    ("alignment_loss", "emd"): {},
    ("alignment_loss", "sinkhorn"): {},
    ("alignment_loss", "none"): {},
    ("alignment_loss", "ipot"): {},
    ("alignment_loss", "mmd"): {},
    ("alignment_loss", "contrastive"): {},
}


@pytest.mark.parametrize("component", components("text_encoder") + components("image_encoder")
                         + components("fusion_head") + components("alignment_loss"), ids=lambda c: f"{c.kind}-{c.name}")
def test_component_contract(component, tokenizer_dirs):
    """Every registered model component honours its kind's contract (timm-style: tiny random configs)."""
    if component.kind == "text_encoder" and component.name == "hf":
        options = tiny_text_options("bert", tokenizer_dirs["bert"])
    elif (component.kind, component.name) in CONTRACT_OPTIONS:
        options = CONTRACT_OPTIONS[(component.kind, component.name)]
    else:
        pytest.skip(f"no tiny options known for the third-party {component.kind} {component.name!r}")
    assert component.config_class is not None and component.description
    if component.kind == "text_encoder":
        encoder = build(component.kind, {"name": component.qualified_name, **options})
        batch = encoder.tokenize([["a", "cat"], ["the"]], max_tokens=16)
        assert set(batch) >= {"input_ids", "attention_mask", "first_subword_index", "word_mask"}
        states = encoder(batch["input_ids"], batch["attention_mask"])
        assert states.shape == (*batch["input_ids"].shape, encoder.hidden_size)
    elif component.kind == "image_encoder":
        encoder = build(component.kind, {"name": component.qualified_name, **options})
        states, mask = encoder(torch.randn(2, *encoder.input_size))
        assert states.shape[::2] == (2, encoder.hidden_size) and mask.shape == states.shape[:2] and mask.dtype == torch.bool
        assert callable(encoder.transform)
    elif component.kind == "fusion_head":
        head = build(component.kind, {"name": component.qualified_name, **options}, text_dim=32, image_dim=16, num_tags=4)
        emissions = head(torch.randn(2, 6, 32), torch.tensor([[1, 2, 3], [1, 0, 0]]), torch.randn(2, 5, 16),
                         torch.ones(2, 5, dtype=torch.bool))
        word_mask = torch.tensor([[True] * 3, [True, False, False]])
        assert emissions.shape == (2, 3, 4)
        assert head.loss(emissions, torch.zeros(2, 3, dtype=torch.long), word_mask).shape == (2,)
        assert [len(tags) for tags in head.decode(emissions, word_mask)] == [3, 1]
    else:
        loss = build(component.kind, {"name": component.qualified_name, **options})
        value = loss(torch.randn(2, 3, 8), torch.ones(2, 3, dtype=torch.bool), torch.randn(2, 4, 8),
                     torch.ones(2, 4, dtype=torch.bool))
        assert value.shape == (2,) and torch.isfinite(value).all() and (value >= 0).all()


@pytest.mark.parametrize("text_family", TEXT_FAMILIES)
def test_every_trainable_parameter_gets_a_gradient_so_ddp_needs_no_graph_search(text_family, tokenizer_dirs):
    """The text encoder is built without its pooler (which the tagger never uses): DDP then runs with
    find_unused_parameters=False. A loss weight of 0 leaves the image projection out, and the probe says so."""
    from mmlabel.training.distributed import unused_parameters

    torch.manual_seed(0)
    model = build_model(text_family, "vit", tokenizer_dirs)
    assert getattr(model.text_encoder.model, "pooler", None) is None
    batch = make_batch(model.text_encoder, SENTENCES, image_encoder=model.image_encoder)
    assert unused_parameters(model, batch) == []
    assert all(parameter.grad is None for parameter in model.parameters())  # the probe leaves no gradient behind
    model.beta = 0.0
    assert unused_parameters(model, batch) == ["image_projection.weight", "image_projection.bias"]


def test_weights_saved_with_a_pooler_load_into_todays_model(tokenizer_dirs, tmp_path):
    """Runs saved before the pooler was dropped (their model.safetensors has text_encoder.model.pooler.*) still load."""
    from safetensors.torch import save_file

    from mmlabel.run_dir import RunDir

    model = build_model("bert", None, tokenizer_dirs)
    old = {key: value.clone() for key, value in model.state_dict().items()}
    old["text_encoder.model.pooler.dense.weight"] = torch.zeros(32, 32)
    old["text_encoder.model.pooler.dense.bias"] = torch.zeros(32)
    run = RunDir(tmp_path)
    save_file(old, str(run.model_path))
    fresh = build_model("bert", None, tokenizer_dirs)
    run.load_model_weights(fresh)
    assert all(torch.equal(fresh.state_dict()[key], value) for key, value in model.state_dict().items())
    old["fusion_head.emissions.extra"] = torch.zeros(1)  # anything else unexpected still fails
    save_file(old, str(run.model_path))
    with pytest.raises(RuntimeError, match="extra"):
        run.load_model_weights(fresh)
