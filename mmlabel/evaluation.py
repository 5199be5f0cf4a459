"""Scoring a finished run on a split: its own data by default (reproducing its stored figures), or other data."""
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmlabel.errors import DataError


def evaluate_run(run_dir: str | Path, split: str = "test", data: str | Path | None = None,
                 format: str | None = None, images: str | Path | None = None, device: str = "auto") -> dict:
    """The run's metric on `split` of its recipe's data, or of `data` (a folder or one file) read with `format`
    (default: guessed from the files, else the run's reader). Images come from `images` where given, else from the
    recipe's image folder for its own data and from `images/` beside `data`. The model computes on `device`
    (`mmlabel.device.resolve_device`)."""
    return predict_split(run_dir, split, data, format, images, device=device).figures


@dataclass
class SplitPredictions:
    """A run's predictions on a split and their figures, as `evaluate_run` computes them (`mmlabel report` shows
    them): the loaded tagger, the gold examples, the image loader (None for a text-only model), the folder the
    images are read from (also for a text-only model), the predicted spans of each example, the run's metric's
    figures and, where asked for and the model has it, each example's word-to-patch attention from the same pass
    (`Prediction.attention`'s form)."""

    tagger: Any
    examples: list
    images: Any
    image_dir: Path
    predictions: list
    figures: dict
    attention: list | None = None


def predict_split(run_dir: str | Path, split: str = "test", data: str | Path | None = None,
                  format: str | None = None, images: str | Path | None = None,
                  attention: bool = False, device: str = "auto") -> SplitPredictions:
    """`evaluate_run`'s work, with what it predicted: the arguments mean the same. With `attention`, a model that has
    word-to-patch attention also returns it, from the same encoding pass as the predictions."""
    from mmlabel.registry import build
    from mmlabel.tagger import Tagger
    from mmlabel.data.splits import SPLITS, data_root, image_loader, read_splits
    from mmlabel.export import resolve_source
    from mmlabel.run_dir import RunDir

    if data is None and split not in SPLITS:  # before the model is loaded
        raise DataError(f"no split {split!r}: choose train, dev or test")
    run_dir = resolve_source(run_dir)  # hf://OWNER/NAME: an export on the Hugging Face Hub
    run = RunDir(run_dir)
    data, images = (Path(data) if data is not None else None), (Path(images) if images is not None else None)
    tagger = Tagger.load(run_dir, device=device)
    recipe = run.recipe()
    metric = build("metric", recipe.metric)
    if data is None:
        root = data_root(recipe)
        splits = read_splits(recipe, root)
        if split not in splits:
            raise DataError(f"no split {split!r}: choose train, dev or test")
        examples = splits[split]
    else:
        root = data if data.is_dir() else data.parent
        examples = _read_other(recipe, data, format, split)
        images = images or root / "images"
    image_dir = images or (recipe.data.images_path() if recipe.data.root is not None else root / "images")
    loader = image_loader(recipe, root, {split: examples}, [split], images) if tagger.multimodal else None
    attention = attention and tagger.has_attention
    found = tagger.predict_split(examples, images=loader, attention=attention)
    predictions = [prediction.spans for prediction in found]
    figures = metric.score([example.spans for example in examples], predictions)
    weights = [prediction.attention for prediction in found] if attention else None
    return SplitPredictions(tagger, examples, loader, image_dir, predictions, figures, weights)


def _read_other(recipe, data: Path, format: str | None, split: str) -> list:
    from mmlabel.data.convert import sniff_format
    from mmlabel.registry import build

    name = format or sniff_format(data, fallback=recipe.data.reader.name)
    reader = build("dataset_reader", recipe.data.reader if name == recipe.data.reader.name else name)
    if data.is_file():
        return reader.read(data, on_bad_example=recipe.data.on_bad_example)
    paths = reader.find_splits(data)
    if split not in paths:
        raise DataError(f"{data}: no {split} split found for reader {name!r}")
    return reader.read(paths[split], on_bad_example=recipe.data.on_bad_example)
