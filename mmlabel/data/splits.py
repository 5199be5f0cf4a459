"""The data a recipe names: where it lies (or the synthetic set, generated on first use), its train/dev/test
examples read by the recipe's reader, the tag scheme over the training labels and the image folder."""
import shutil
from pathlib import Path

from mmlabel.errors import DataError
from mmlabel.log import logger
from mmlabel.recipe import Recipe

SPLITS = ("train", "dev", "test")


def data_root(recipe: Recipe) -> Path:
    """The data directory; the synthetic dataset is generated into the cache on first use where the recipe asks."""
    problem = recipe.data.root_problem()
    if problem:
        raise DataError(problem)
    return cached_synthetic() if recipe.data.root is None else recipe.data.root_path()


def cached_synthetic() -> Path:
    """The default synthetic dataset, written once into `$MMLABEL_CACHE` (default `~/.cache/mmlabel`)."""
    import os

    from mmlabel.data.synth import write_synthetic

    cache = Path(os.environ.get("MMLABEL_CACHE", Path.home() / ".cache" / "mmlabel"))
    root = cache / "synthetic-v1"  # 1200/200/200 sentences: enough to learn the image's signal in a few minutes
    if not (root / "test.txt").exists():
        logger.info("writing the synthetic dataset to %s", root)
        partial = cache / f".synthetic-v1.{os.getpid()}"
        write_synthetic(partial, train=1200, dev=200, test=200)  # written aside, then renamed: a killed first run leaves no half dataset
        _move_into_place(partial, root)
    return root


def _move_into_place(partial: Path, root: Path) -> None:
    """Rename the dataset written in `partial` to `root`. Where another process got there first (two runs started
    at once on a fresh machine), its dataset stays, since that process is reading it, and this copy goes."""
    if root.exists() and not (root / "test.txt").exists():
        shutil.rmtree(root, ignore_errors=True)  # not a dataset this function renamed into place
    try:
        partial.rename(root)
    except OSError:  # root is there now, whole: renamed in one step by the other process
        if not (root / "test.txt").exists():
            raise
        shutil.rmtree(partial, ignore_errors=True)


def read_splits(recipe: Recipe, root: Path) -> dict[str, list]:
    """The train, dev and test examples of the recipe's reader, each with its context where the recipe names a side
    file (`data.context`)."""
    from mmlabel.registry import build

    reader = build("dataset_reader", recipe.data.reader)
    paths = reader.find_splits(root)
    missing = [split for split in SPLITS if split not in paths]
    if missing:
        raise DataError(f"{root}: no {', '.join(missing)} split found for reader {recipe.data.reader.name!r}")
    splits = {split: reader.read(paths[split], on_bad_example=recipe.data.on_bad_example) for split in SPLITS}
    if recipe.data.context is None:
        return splits
    from mmlabel.data.context import attach_context

    return attach_context(splits, recipe.data.context, root)


def make_run_scheme(recipe: Recipe, train: list):
    from mmlabel.registry import build

    labels = sorted({span.label for example in train for span in example.spans})
    return build("tag_scheme", recipe.data.tag_scheme, labels=labels)


def image_loader(recipe: Recipe, root: Path, splits: dict, names=SPLITS, folder: Path | None = None):
    """The recipe's image folder (or `folder`) with its missing-image policy, checked up front for the splits
    `names`."""
    from mmlabel.data.images import ImageLoader

    images = folder or (recipe.data.images_path() if recipe.data.root is not None else root / "images")
    loader = ImageLoader(images, recipe.data.missing_image)
    loader.check([example.image for split in names for example in splits[split]])
    return loader
