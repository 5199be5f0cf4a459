"""A training step of the reference recipe's model reads nothing back from the device: on a GPU each read makes the
host wait, and the step is meant to run ahead of the device. Checked on the CPU with `no_host_reads`, which flags
every read a GPU would wait for; `benchmarks/gpu_probe.py` checks the same step on CUDA with
`torch.cuda.set_sync_debug_mode("error")`."""
import pytest

from conftest import REPO
from mmlabel.recipe import load_recipe
from mmlabel.testing.host_reads import no_host_reads

# recipes/dtca.toml's components, loss balance and options (exact EMD with the cosine cost, the CRF term summed
# over the batch / 10, bf16 where the CPU has it), at tiny sizes with random weights
TINY = [
    'text_encoder.init="random"', 'text_encoder.model_type="roberta"', 'text_encoder.tokenizer="train"',
    "text_encoder.config_overrides={hidden_size = 32, num_hidden_layers = 1, num_attention_heads = 2, "
    "intermediate_size = 64, max_position_embeddings = 80}",
    'image_encoder.model="vit_base_patch16_224"', "image_encoder.pretrained=false",
    "image_encoder.model_args={img_size = 32, patch_size = 8, depth = 1, embed_dim = 32, num_heads = 2}",
    "fusion_head.heads=2", "train.max_steps_per_epoch=4",
]


def trainer_of(recipe, out):
    from mmlabel.training.assemble import assemble
    from mmlabel.training.trainer import Trainer

    trainer = Trainer(assemble(recipe, out))
    loader = trainer.prepare(trainer.parts.splits["train"], resume=False)
    return trainer, iter(loader)


@pytest.mark.parametrize("overrides", [[], ["train.grad_accum=2"], ['train.on_nonfinite="skip"'],
                                       ["alignment_loss.name=sinkhorn"]],
                         ids=["reference", "accumulating", "skip-nonfinite", "sinkhorn"])
def test_a_training_step_of_the_reference_model_reads_nothing_back(synthetic, tmp_path, overrides):
    recipe = load_recipe(REPO / "recipes" / "dtca.toml", [f"data.root={synthetic}", 'data.images="images"', *TINY,
                                                          *overrides])
    trainer, batches = trainer_of(recipe, tmp_path / "run")
    trainer.network.train()
    trainer.step(next(batches), update=True)  # the first step creates the optimiser's state
    steps = [next(batches) for _ in range(2)]
    with no_host_reads() as calls:
        for batch in steps:
            trainer.step(batch, update=trainer.settings.grad_accum == 1 or batch is steps[-1])
    assert sum(calls.values()) == 0
    trainer.read_losses()  # the figures arrive at the read, all of them
    assert trainer.state.epoch_batches == 3 and trainer.state.step == (3 if trainer.settings.grad_accum == 1 else 2)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("family", ["bert", "roberta", "albert", "electra"])
def test_the_prepared_attention_mask_gives_the_states_of_transformers_own(family, attention, tmp_path):
    """The text encoder hands transformers a prepared 4D mask (no read of whether the batch has padding); the
    states of real tokens equal those transformers computes from the 2D mask."""
    import torch

    from mmlabel.text_encoders.hf import HFTextEncoder
    from mmlabel.text_encoders.tokenizer import train_word_tokenizer

    words = [["a", "tiny", "tweet", "about", "a", "game"], ["great", "game"]]
    train_word_tokenizer([" ".join(sentence) for sentence in words], tmp_path / "tok", family, vocab_size=60)
    overrides = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
                 **({"embedding_size": 16} if family == "albert" else {})}
    torch.manual_seed(0)
    encoder = HFTextEncoder(init="random", model_type=family, tokenizer=str(tmp_path / "tok"),
                            config_overrides=overrides, attn_implementation=attention).eval()
    batch = encoder.tokenize(words, 60)
    assert not batch["attention_mask"].all()  # the second sentence is padded
    with torch.no_grad():
        ours = encoder(batch["input_ids"], batch["attention_mask"])
        theirs = encoder.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    real = batch["attention_mask"].bool()
    assert encoder._prepared_mask(batch["attention_mask"]).dim() == 4
    torch.testing.assert_close(ours[real], theirs[real], rtol=1e-5, atol=1e-5)
