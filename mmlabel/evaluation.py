"""Scoring a finished run on a split: its own data by default (reproducing its stored figures), or other data."""
from pathlib import Path

from mmlabel.errors import DataError


def evaluate_run(run_dir: str | Path, split: str = "test", data: str | Path | None = None,
                 format: str | None = None, images: str | Path | None = None) -> dict:
    """The run's metric on `split` of its recipe's data, or of `data` (a folder or one file) read with `format`
    (default: guessed from the files, else the run's reader). Images come from `images` where given, else from the
    recipe's image folder for its own data and from `images/` beside `data`."""
    from mmlabel.registry import get
    from mmlabel.tagger import Tagger
    from mmlabel.data.splits import data_root, image_loader, read_splits
    from mmlabel.run_dir import RunDir

    run = RunDir(run_dir)
    data, images = (Path(data) if data is not None else None), (Path(images) if images is not None else None)
    tagger = Tagger.load(run_dir)
    recipe = run.recipe()
    metric = get("metric", recipe.metric.name).build(recipe.metric.options)
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
    loader = image_loader(recipe, root, {split: examples}, [split], images) if tagger.multimodal else None
    predictions = tagger.predict_examples(examples, images=loader)
    return metric.score([example.spans for example in examples], predictions)


def _read_other(recipe, data: Path, format: str | None, split: str) -> list:
    from mmlabel.data.convert import sniff_format
    from mmlabel.registry import get

    name = format or sniff_format(data, fallback=recipe.data.reader.name)
    reader = get("dataset_reader", name).create(**(recipe.data.reader.options if name == recipe.data.reader.name else {}))
    if data.is_file():
        return reader.read(data, on_bad_example=recipe.data.on_bad_example)
    paths = reader.find_splits(data)
    if split not in paths:
        raise DataError(f"{data}: no {split} split found for reader {name!r}")
    return reader.read(paths[split], on_bad_example=recipe.data.on_bad_example)
