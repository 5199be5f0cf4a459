"""Tiny random model parts for the model tests: tokenizers trained on a few sentences, and options that build every
text and image family in milliseconds with no download."""
import pytest
import torch

SENTENCES = [
    "RT @user : Great game by Messi at Barcelona tonight !",
    "Obama visits New York with Michelle",
    "the cat sat on the mat and looked at the camera",
    "Apple unveils the new iPhone in California",
    "I love this photo of London Bridge at night",
]

TEXT_FAMILIES = ("bert", "roberta", "albert", "electra")
TINY_TEXT_SIZES = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
# ALBERT and ELECTRA factor the embeddings: their 128-wide default is shrunk too.
TINY_EMBEDDING = {"albert": {"embedding_size": 16}, "electra": {"embedding_size": 16}}

TINY_IMAGES = {
    "vit": {"model": "vit_base_patch16_224",
            "model_args": {"img_size": 32, "patch_size": 8, "depth": 1, "embed_dim": 64, "num_heads": 2}},
    "deit": {"model": "deit_tiny_distilled_patch16_224",
             "model_args": {"img_size": 32, "patch_size": 8, "depth": 1, "embed_dim": 48, "num_heads": 2}},
    "swin": {"model": "swin_tiny_patch4_window7_224",
             "model_args": {"img_size": 32, "patch_size": 4, "window_size": 4, "embed_dim": 16, "depths": [1, 1],
                            "num_heads": [2, 2]}},
}


@pytest.fixture(scope="session")
def tokenizer_dirs(tmp_path_factory) -> dict[str, str]:
    """Family -> directory of a tiny tokenizer of that family, trained once per session."""
    from mmlabel.text_encoders.tokenizer import train_word_tokenizer

    root = tmp_path_factory.mktemp("tokenizers")
    directories = {}
    for family in TEXT_FAMILIES:
        train_word_tokenizer(SENTENCES, root / family, family)
        directories[family] = str(root / family)
    return directories


def tiny_text_options(family: str, tokenizer_dir: str) -> dict:
    """Options of the `hf` text encoder: a random `family` model of hidden size 32 with a tiny tokenizer."""
    overrides = {**TINY_TEXT_SIZES, **TINY_EMBEDDING.get(family, {})}
    return {"init": "random", "model_type": family, "tokenizer": tokenizer_dir, "config_overrides": overrides}


def tiny_image_options(family: str) -> dict:
    """Options of the `timm` image encoder: a random 32-pixel `family` model."""
    return {"pretrained": False, **TINY_IMAGES[family]}


def make_batch(text_encoder, sentences: list[list[str]], tags: list[list[int]] | None = None, image_encoder=None,
               max_tokens: int = 40, seed: int = 0) -> dict[str, torch.Tensor]:
    """A model batch for pre-split sentences: tokens, word positions, padded tags and random pixels."""
    batch = text_encoder.tokenize(sentences, max_tokens=max_tokens)
    words = batch["word_mask"].shape[1]
    if tags is None:
        tags = [[(i + len(s)) % 3 for i in range(len(s))] for s in sentences]
    batch["tags"] = torch.tensor([t[:words] + [0] * (words - len(t[:words])) for t in tags], dtype=torch.long)
    if image_encoder is not None:
        generator = torch.Generator().manual_seed(seed)
        batch["pixel_values"] = torch.randn(len(sentences), *image_encoder.input_size, generator=generator)
    return batch
