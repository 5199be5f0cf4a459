"""The loss balance: the CRF term's reduction and weight, the weighted parts summing to the loss, and the reference
recipe's balance at the paper's hidden size (768) against Eq. 15 as printed (docs/model.md, "Loss balance")."""
import pytest
import torch

from mmlabel.data.batches import Collator, TaggingDataset
from mmlabel.data.image_store import pixel_source
from mmlabel.data.splits import image_loader, make_run_scheme, read_splits
from mmlabel.model import TaggingModel
from mmlabel.recipe import load_recipe
from model_helpers import make_batch, tokenizer_dirs  # noqa: F401
from test_model import SENTENCES, build_model

# The literal Eq. 15: one --set per option (docs/model.md).
EQ15 = ["alignment_loss.cost=mse", "loss.crf_reduction=mean", "loss.crf_weight=1"]


def test_the_weighted_parts_sum_to_the_loss_under_each_crf_reduction(tokenizer_dirs):
    torch.manual_seed(0)
    model = build_model("bert", "vit", tokenizer_dirs, alpha=0.3, beta=0.9).eval()
    batch = make_batch(model.text_encoder, SENTENCES, image_encoder=model.image_encoder)
    mean = model(batch)
    model.crf_reduction, model.crf_weight = "sum", 0.1
    summed = model(batch)
    raw = {key: value.item() for key, value in summed.losses.items()}
    assert raw == pytest.approx({key: value.item() for key, value in mean.losses.items()})  # balance-independent
    raw = summed.losses
    assert summed.weighted_losses["crf"].item() == pytest.approx(0.1 * 2 * raw["crf"].item(), rel=1e-5)  # 2 sentences
    assert summed.weighted_losses["text"].item() == pytest.approx(0.3 * raw["text"].item(), rel=1e-5)
    assert summed.weighted_losses["align"].item() == pytest.approx(0.9 * raw["align"].item(), rel=1e-5)
    assert summed.loss.item() == pytest.approx(sum(summed.weighted_losses.values()).item(), rel=1e-6)
    assert mean.loss.item() == pytest.approx((raw["crf"] + 0.3 * raw["text"] + 0.9 * raw["align"]).item(), rel=1e-5)
    with pytest.raises(ValueError, match="crf_reduction"):
        TaggingModel(model.text_encoder, model.fusion_head, crf_reduction="max")


@pytest.fixture(scope="module")
def paper_size(synthetic, tmp_path_factory):
    """recipes/dtca.toml with random one-layer encoders of the paper's hidden size (768) on the synthetic data."""
    from mmlabel.text_encoders.tokenizer import train_word_tokenizer

    tokenizer = tmp_path_factory.mktemp("tokenizer")
    recipe = load_recipe("recipes/dtca.toml", [f"data.root={synthetic}"])
    splits = read_splits(recipe, synthetic)
    train_word_tokenizer([example.tokens for example in splits["train"]], tokenizer, "bert")
    return [
        f"data.root={synthetic}", "text_encoder.init=random", "text_encoder.model_type=bert",
        f"text_encoder.tokenizer={tokenizer}",
        "text_encoder.config_overrides={hidden_size=768, num_hidden_layers=1, num_attention_heads=12, "
        "intermediate_size=64}",
        "image_encoder.model=vit_base_patch16_224", "image_encoder.pretrained=false",
        "image_encoder.model_args={img_size=32, patch_size=8, depth=1, embed_dim=768, num_heads=12, mlp_ratio=0.1}",
    ], splits


def first_batch_losses(overrides: list[str], splits: dict, weights: dict | None = None):
    """The model of recipes/dtca.toml with `overrides`, and its output on the first four training sentences."""
    recipe = load_recipe("recipes/dtca.toml", overrides)
    scheme = make_run_scheme(recipe, splits["train"])
    torch.manual_seed(0)
    model = TaggingModel.for_scheme(recipe, scheme).eval()
    if weights is not None:
        model.load_state_dict(weights)
    images = image_loader(recipe, recipe.data.root_path(), splits, names=("train",))
    pixels = pixel_source(images, model.image_encoder)
    dataset = TaggingDataset(splits["train"][:recipe.train.batch_size], scheme, pixels)
    batch = Collator(model.text_encoder.tokenize, recipe.data.max_tokens)([dataset[i] for i in range(len(dataset))])
    batch.pop("index")
    with torch.no_grad():
        return model, model(batch)


def test_the_reference_balance_gives_the_alignment_a_visible_share_and_eq15_does_not(paper_size):
    overrides, splits = paper_size
    model, reference = first_batch_losses(overrides, splits)
    assert model.text_encoder.hidden_size == model.image_encoder.hidden_size == 768
    _, literal = first_batch_losses(overrides + EQ15, splits, weights=model.state_dict())
    share = {name: output.weighted_losses["align"].item() / output.loss.item()
             for name, output in (("reference", reference), ("eq15", literal))}
    assert share["reference"] > 0.02  # the authors' balance: beta = 0.6 matters from the first batch
    assert share["eq15"] < 0.002  # Eq. 15 as printed: about 0.1% or less, inert
    # the same states: the alignment differs by d / 2 = 384, the CRF term by batch / 10 = 0.4
    assert reference.losses["align"].item() / literal.losses["align"].item() == pytest.approx(384, rel=1e-3)
    assert (reference.weighted_losses["crf"] / literal.weighted_losses["crf"]).item() == pytest.approx(0.4, rel=1e-5)
    assert reference.weighted_losses["text"].item() == pytest.approx(literal.weighted_losses["text"].item(), rel=1e-6)
