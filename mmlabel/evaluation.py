"""Scoring a finished run on a split: its own data by default (reproducing its stored figures), or other data."""
from pathlib import Path

from mmlabel.errors import DataError


def evaluate_run(run_dir: str | Path, split: str = "test", data: Path | None = None, format: str | None = None) -> dict:
    """The run's metric on `split` of its recipe's data, or of `data` read with `format` (a folder or one file)."""
    from mmlabel.registry import get
    from mmlabel.tagger import Tagger
    from mmlabel.data.splits import data_root, image_loader, read_splits
    from mmlabel.run_dir import RunDir

    run = RunDir(run_dir)
    tagger = Tagger.load(run_dir)
    recipe = run.recipe()
    metric = get("metric", recipe.metric.name).build(recipe.metric.options)
    if data is None:
        root = data_root(recipe)
        splits = read_splits(recipe, root)
        if split not in splits:
            raise DataError(f"no split {split!r}: choose train, dev or test")
        examples = splits[split]
        images = image_loader(recipe, root, {split: examples}, [split]) if tagger.multimodal else None
    else:
        examples = _read_other(recipe, data, format, split)
        images = None
        if tagger.multimodal:
            from mmlabel.data.images import ImageLoader

            base = data if data.is_dir() else data.parent
            images = ImageLoader(base / "images", recipe.data.missing_image)
    predictions = tagger.predict_examples(examples, images=images)
    return metric.score([example.spans for example in examples], predictions)


def _read_other(recipe, data: Path, format: str | None, split: str) -> list:
    from mmlabel.registry import get

    name = format or recipe.data.reader.name
    reader = get("dataset_reader", name).create(**(recipe.data.reader.options if name == recipe.data.reader.name else {}))
    if data.is_file():
        return reader.read(data, on_bad_example=recipe.data.on_bad_example)
    paths = reader.find_splits(data)
    if split not in paths:
        raise DataError(f"{data}: no {split} split found for reader {name!r}")
    return reader.read(paths[split], on_bad_example=recipe.data.on_bad_example)
