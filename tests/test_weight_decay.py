"""Weight decay by parameter kind, as timm and transformers decide it: not on biases, norm scales and other vectors,
nor on what a module's own `no_weight_decay()` names (a ViT's position embedding and class token, a Swin's relative
position bias tables); matrices (weights, embedding tables, CRF transitions) decay. Checked on every encoder family the
docs name and every registered fusion head."""
import pytest

from mmlabel.training.optim import parameter_groups

TEXT_SIZES = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}


def decayed_names(module) -> dict[str, bool]:
    """Parameter name -> whether `parameter_groups` puts it in a group with weight decay."""
    names = {id(parameter): name for name, parameter in module.named_parameters()}
    groups = parameter_groups(module, 0.01, 1e-3)
    return {names[id(p)]: group["weight_decay"] > 0 for group in groups for p in group["params"]}


def image_encoder(model: str, **model_args):
    from mmlabel.image_encoders.timm_encoder import TimmImageEncoder

    return TimmImageEncoder(model=model, pretrained=False, model_args=model_args)


def text_encoder(model_type: str, tmp_path):
    from mmlabel.text_encoders.hf import HFTextEncoder
    from mmlabel.text_encoders.tokenizer import train_word_tokenizer

    words = [["a", "tiny", "tweet"], ["about", "a", "game"]]
    train_word_tokenizer([" ".join(sentence) for sentence in words], tmp_path / "tok", model_type, vocab_size=60)
    overrides = {**TEXT_SIZES, **({"embedding_size": 16} if model_type == "albert" else {})}
    return HFTextEncoder(init="random", model_type=model_type, tokenizer=str(tmp_path / "tok"),
                         config_overrides=overrides)


@pytest.mark.parametrize("model, model_args, exempt", [
    ("vit_base_patch16_224", {"img_size": 32, "patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2},
     {"model.pos_embed", "model.cls_token"}),
    ("deit_base_distilled_patch16_224", {"img_size": 32, "patch_size": 8, "depth": 1, "embed_dim": 32,
                                         "num_heads": 2}, {"model.pos_embed", "model.cls_token", "model.dist_token"}),
    ("swin_tiny_patch4_window7_224", {"img_size": 32, "patch_size": 4, "window_size": 4, "embed_dim": 16,
                                      "depths": (1, 1), "num_heads": (1, 2)},
     {"model.layers.0.blocks.0.attn.relative_position_bias_table",
      "model.layers.1.blocks.0.attn.relative_position_bias_table"}),
], ids=["vit", "deit", "swin"])
def test_image_encoders_exempt_vectors_and_their_own_no_weight_decay_list(model, model_args, exempt):
    decayed = decayed_names(image_encoder(model, **model_args))
    assert exempt <= set(decayed) and not any(decayed[name] for name in exempt)
    norms = [name for name in decayed if ".norm" in name and name.endswith(".weight")]  # timm's norm1, norm2, norm
    assert norms and not any(decayed[name] for name in norms)
    assert not any(decayed[name] for name in decayed if name.endswith(".bias"))
    matrices = [name for name in decayed if name.endswith(("qkv.weight", "fc1.weight", "proj.weight"))]
    assert matrices and all(decayed[name] for name in matrices)


@pytest.mark.parametrize("family", ["roberta", "albert", "bert", "electra"])
def test_text_encoders_decay_matrices_and_embeddings_but_not_layer_norms_or_biases(family, tmp_path):
    encoder = text_encoder(family, tmp_path)
    decayed = decayed_names(encoder)
    shapes = dict((name, parameter.ndim) for name, parameter in encoder.named_parameters())
    assert all(decayed[name] == (shapes[name] > 1) for name in decayed)  # transformers' rule, by rank
    assert any("LayerNorm.weight" in name or "layer_norm.weight" in name.lower() for name in decayed)
    assert decayed["model.embeddings.word_embeddings.weight"]


def fusion_heads() -> list[str]:
    from mmlabel.registry import build, components

    return sorted(component.name for component in components("fusion_head") if component.plugin.startswith("mmlabel"))


@pytest.mark.parametrize("name", fusion_heads())
def test_every_fusion_head_decays_exactly_its_matrices(name, tmp_path):
    from mmlabel.testing import tiny_options
    from mmlabel.testing.kit import FUSION_IMAGE_DIM, FUSION_TEXT_DIM
    from mmlabel.registry import build

    options = tiny_options().get(("fusion_head", name), {})
    head = build("fusion_head", {"name": name, **dict(options)}, text_dim=FUSION_TEXT_DIM, image_dim=FUSION_IMAGE_DIM, num_tags=5)
    decayed = decayed_names(head)
    assert decayed, name
    for parameter_name, parameter in head.named_parameters():
        assert decayed[parameter_name] == (parameter.ndim > 1), parameter_name
    assert any(not value for value in decayed.values()) and any(decayed.values())
