"""`train.compile`: the training loss under torch.compile, with sequence lengths bucketed so that later epochs
compile nothing. The tests trace with the `eager` backend (torch.compile's graph capture and guards, without
generating kernels: seconds, not minutes); the speed of the `inductor` backend is measured in docs/performance.md."""
import json

import pytest
import torch

from conftest import REPO
from mmlabel.recipe import load_recipe
from mmlabel.training.compiling import BucketedCollator


# Tracing takes seconds per graph and grows with the layers, not with the sizes: one layer, no image encoder.
TINY = ["text_encoder.config_overrides={hidden_size = 32, num_hidden_layers = 1, num_attention_heads = 2, "
        "intermediate_size = 64, max_position_embeddings = 128}", "image_encoder.name=none"]


def compiled_run(synthetic, out, bucket: int) -> list[dict]:
    from mmlabel.training.runner import train_once

    torch._dynamo.reset()
    recipe = load_recipe(REPO / "recipes" / "quickstart.toml", [
        f"data.root={synthetic}", "train.epochs=2", "train.max_steps_per_epoch=2", "train.batch_size=4",
        "train.compile=true", *TINY,
        'train.compile_backend="eager"', f"train.compile_bucket={bucket}"])
    train_once(recipe, out)
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.mark.system  # inductor compiles for ~20 s: out of the quick loop
def test_with_buckets_later_epochs_compile_nothing_and_without_them_they_do(synthetic, tmp_path):
    # batches of 4 sentences; one bucket of 64 holds every length of the quickstart (max_tokens 60)
    bucketed = [record["compiled_graphs"] for record in compiled_run(synthetic, tmp_path / "bucketed", 64)]
    assert bucketed[0] >= 1 and bucketed[1] == bucketed[0]
    unbucketed = [record["compiled_graphs"] for record in compiled_run(synthetic, tmp_path / "exact", 1)]
    assert unbucketed[-1] > unbucketed[0]  # every new batch length is a new graph, in every epoch


def test_bucketed_batches_pad_tokens_and_words_to_the_multiple_and_change_no_loss(synthetic, tmp_path):
    from mmlabel.training.assemble import assemble
    from mmlabel.training.trainer import Trainer

    recipe = load_recipe(REPO / "recipes" / "quickstart.toml", [f"data.root={synthetic}", "train.batch_size=4"])
    trainer = Trainer(assemble(recipe, tmp_path / "run"))
    loader = trainer._train_loader(trainer.parts.splits["train"])
    items = [loader.dataset[index] for index in range(4)]
    plain = loader.collate_fn(items)
    padded = BucketedCollator(loader.collate_fn, 16, trainer.model.text_encoder.tokenizer.pad_token_id)(items)
    assert padded["input_ids"].shape[1] % 16 == 0 and padded["word_mask"].shape[1] % 16 == 0
    assert padded["input_ids"].shape[1] > plain["input_ids"].shape[1] or plain["input_ids"].shape[1] % 16 == 0
    tokens, words = plain["input_ids"].shape[1], plain["word_mask"].shape[1]
    assert torch.equal(padded["input_ids"][:, :tokens], plain["input_ids"])
    assert not padded["attention_mask"][:, tokens:].any() and not padded["word_mask"][:, words:].any()
    model = trainer.model.eval()
    with torch.no_grad():
        batch_loss = [model({k: v for k, v in batch.items() if k != "index"}).loss for batch in (plain, padded)]
    torch.testing.assert_close(batch_loss[0], batch_loss[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("key", ["compile_bucket"])
def test_a_bucket_below_one_is_refused_naming_the_key(key):
    from mmlabel.errors import RecipeError

    with pytest.raises(RecipeError, match=f"train.{key}"):
        load_recipe(REPO / "recipes" / "quickstart.toml", [f"train.{key}=0"])
