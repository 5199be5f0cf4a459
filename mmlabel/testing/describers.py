"""Conformance checks of describers (image -> text), each a function of the `Subject`, on three hand-made photos of
different sizes, one of them showing a word; and the tiny options of the built-ins: a side file for `file`, a
randomly initialised BLIP saved in the scratch directory for `hf` (nothing is downloaded)."""
import json
from pathlib import Path

from mmlabel.contracts import show
from mmlabel.testing.kit import Subject, expect

PHOTO_NAMES = ["1.jpg", "2.jpg", "3.jpg"]
CAPTIONS = ["a red disc on grey", "the word SALE on a white band", "a wide grey picture"]


def kit_photos() -> list:
    """Three RGB photos: a disc on grey (64x64), a word on a white band (128x128), a wide grey one (96x48)."""
    from PIL import Image, ImageDraw, ImageFont

    disc = Image.new("RGB", (64, 64), (120, 120, 120))
    ImageDraw.Draw(disc).ellipse([16, 16, 48, 48], fill=(210, 40, 40))
    word = Image.new("RGB", (128, 128), (255, 255, 255))
    ImageDraw.Draw(word).text((64, 64), "SALE", fill=(0, 0, 0), font=ImageFont.load_default(size=28), anchor="mm")
    return [disc, word, Image.new("RGB", (96, 48), (90, 90, 90))]


def _texts(describer, photos: list, names: list[str]) -> list[str]:
    texts = describer.describe(photos, names)
    expect(isinstance(texts, list) and len(texts) == len(photos) and all(isinstance(text, str) for text in texts),
           f"describe of {len(photos)} photos returned {show(texts)}, not a list of {len(photos)} strings")
    return texts


def describer_texts(subject: Subject) -> None:
    texts = _texts(subject.built, kit_photos(), list(PHOTO_NAMES))
    lines = [text for text in texts if "\n" in text or "\r" in text or text != text.strip()]
    expect(not lines, f"describe returned {lines[:1]}: a text is one line without surrounding spaces")
    expect(_texts(subject.built, [], []) == [], "describe of no photos did not return []")


def describer_batches(subject: Subject) -> None:
    """A side file is written batch by batch, and resumed from any batch: a photo's text cannot depend on the
    others in its batch."""
    photos = kit_photos()
    together = _texts(subject.built, photos, list(PHOTO_NAMES))
    alone = [_texts(subject.built, [photo], [name])[0] for photo, name in zip(photos, PHOTO_NAMES)]
    expect(together == alone, f"described together the photos gave {together}, one at a time {alone}")


def describer_signature(subject: Subject) -> None:
    """The signature is what a side file records: a non-empty string, the same for a describer built again with the
    same options (else an interrupted run could never be continued)."""
    first = subject.built.signature
    expect(isinstance(first, str) and first.strip() != "", f"signature is {first!r}, not a non-empty string")
    again = subject.build().signature
    expect(again == first, f"built twice with the same options, the signatures differ: {first!r} and {again!r}")


def tiny_file(workdir: Path) -> dict:
    """A side file with a caption for each of the kit's photos."""
    path = workdir / "captions.jsonl"
    path.write_text("".join(json.dumps({"image": name, "context": text}) + "\n"
                            for name, text in zip(PHOTO_NAMES, CAPTIONS)), encoding="utf-8")
    return {"path": str(path)}


def tiny_hf(workdir: Path) -> dict:
    """A random BLIP captioner (one layer each side, width 32) with a WordPiece tokenizer learnt from the kit's
    captions, saved with its processor, as transformers' pipeline loads a checkpoint."""
    directory = workdir / "tiny-blip"
    if not (directory / "config.json").exists():
        save_tiny_blip(directory, CAPTIONS)
    return {"checkpoint": str(directory), "max_new_tokens": 6, "device": "cpu"}


def save_tiny_blip(directory: Path, sentences: list[str], seed: int = 0) -> Path:
    """Save a randomly initialised `BlipForConditionalGeneration` and its `BlipProcessor` (images 32x32) into
    `directory`: a local checkpoint for the `hf` describer."""
    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    from mmlabel.text_encoders.tokenizer import train_word_tokenizer

    tokenizer = train_word_tokenizer(sentences, directory, "bert", vocab_size=80)
    layers = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    text = {**layers, "vocab_size": len(tokenizer), "max_position_embeddings": 64, "encoder_hidden_size": 32,
            "bos_token_id": tokenizer.cls_token_id, "pad_token_id": tokenizer.pad_token_id,
            "sep_token_id": tokenizer.sep_token_id, "eos_token_id": tokenizer.sep_token_id}
    config = BlipConfig(text_config=text, vision_config={**layers, "image_size": 32, "patch_size": 8},
                        projection_dim=32)
    torch.manual_seed(seed)
    BlipForConditionalGeneration(config).save_pretrained(directory)
    BlipProcessor(BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer).save_pretrained(directory)
    return directory


DESCRIBER_CHECKS = [("texts", describer_texts), ("batches", describer_batches), ("signature", describer_signature)]
