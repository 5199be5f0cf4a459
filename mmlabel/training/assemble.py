"""From a recipe to the parts of a training run, in one place and in the order they depend on each other: the
processes and device, the data, the run directory, the tag scheme, the model, the images, the metric and the numeric
precision. `Trainer(assemble(recipe, out)).fit()` is a whole run (`mmlabel.training.runner.train_once`)."""
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from mmlabel.recipe import Recipe


@dataclass
class RunParts:
    """Everything a `Trainer` needs, built from one recipe."""

    recipe: Recipe  # as the run computes it: effective batch size filled in, `precision = "auto"` resolved
    out: Path
    run: object  # RunDir (rank 0) or FollowerRunDir
    splits: dict  # "train" | "dev" | "test" -> list of Example
    scheme: object
    model: object  # TaggingModel, on `device`
    images: object | None  # where the model reads images, their pixels: the image store (mmlabel.data.image_store)
    features: object | None  # cached states of a frozen image encoder (mmlabel.feature_cache), or None
    text: object  # every sentence tokenised once (mmlabel.data.token_rows.TokenRows)
    metric: object
    device: object  # torch.device
    processes: object  # mmlabel.training.distributed.Distributed
    console: Console
    workers: int  # data-loader worker processes (`train.workers`, "auto" resolved for the device)


def assemble(recipe: Recipe, out: Path, resume: bool = False, console: Console | None = None,
             recipe_folder: Path | None = None) -> RunParts:
    """The parts of a run of `recipe` into `out` (claimed for it: a directory holding another run is an error).
    `recipe_folder`: where the recipe file is, whose git commit run.json records."""
    import torch

    from mmlabel.data.batches import loader_workers
    from mmlabel.data.splits import image_loader, make_run_scheme
    from mmlabel.data.token_rows import TokenRows
    from mmlabel.device import keep_freed_memory, resolve_precision
    from mmlabel.environment import environment
    from mmlabel.registry import build, provenance
    from mmlabel.threads import use_threads
    from mmlabel.training import distributed
    from mmlabel.training.seeds import set_seed, use_deterministic_kernels

    processes = distributed.start(recipe.train.device)
    device = processes.device(recipe.train.device)  # a device the machine lacks stops the run before any work
    keep_freed_memory()  # the training process's own choice (mmlabel.device): never made by the library
    # soft_wrap: a line is a line (in a log file too: rich would cut it at 80 columns there)
    console = console or Console(stderr=True, soft_wrap=True, quiet=not processes.is_main)
    root, splits = _data(recipe, processes)
    run = distributed.run_dir(out, processes)
    recipe = with_effective_batch_size(recipe, processes.world_size)
    recipe, tokenizer_dir = _with_tokenizer(recipe, out)
    processes.main_first(lambda: _start_run(run, recipe, resume, tokenizer_dir, splits["train"]))
    scheme = make_run_scheme(recipe, splits["train"])
    run.save_tags(recipe.data.tag_scheme.name, scheme.labels, scheme.tags, recipe.data.tag_scheme.options)
    set_seed(recipe.train.seed)
    if recipe.train.deterministic:
        use_deterministic_kernels()
    model = _model(recipe, scheme, splits, run)
    images = image_loader(recipe, root, splits) if model.image_encoder is not None else None
    if images is not None and images.missing:  # under "error" the check has already stopped the run
        console.print(f"{len(images.missing)} of {len(images.checked)} images missing: using blank images")
    metric = build("metric", recipe.metric)
    torch.set_float32_matmul_precision("high")
    computing = with_precision(recipe, resolve_precision(recipe.train.precision, device))
    run.set_status("running", precision=computing.train.precision, components=provenance(recipe),
                   environment=environment(str(device), recipe_folder))
    threads = use_threads(recipe.train.threads)  # looked at again every epoch (Trainer)
    _announce(console, out, device, recipe, computing.train.precision, threads, splits, processes)
    model.to(device)
    pixels = _photos(images, model, splits, console)
    features = _feature_cache(computing, model, pixels, device, splits, console)
    text = TokenRows.for_encoder(model.text_encoder, recipe.data.max_tokens)  # each sentence tokenised once
    return RunParts(computing, Path(out), run, splits, scheme, model, pixels, features, text, metric, device,
                    processes, console, loader_workers(recipe.train.workers, device))


def _model(recipe: Recipe, scheme, splits: dict, run):
    """The recipe's model for the run's tags, checked to read the splits' context text where they have some, its
    architecture saved in the run."""
    from mmlabel.data.context import check_reads_context
    from mmlabel.model import TaggingModel

    model = TaggingModel.for_scheme(recipe, scheme)
    check_reads_context(model.text_encoder, [example for split in splits.values() for example in split])
    run.save_architecture(export_architecture(model, run.path))
    return model


def _data(recipe: Recipe, processes) -> tuple[Path, dict]:
    """The data root (the synthetic set written by one process per machine) and the splits, read by every process;
    bad data fails the same way in all of them, so the error is marked as raised everywhere and printed once."""
    from mmlabel.data.splits import data_root, read_splits
    from mmlabel.errors import MMLabelError
    from mmlabel.training import distributed

    roots = []
    processes.main_first(lambda: roots.append(data_root(recipe)), local=True)
    root = roots[0] if roots else data_root(recipe)
    try:
        return root, read_splits(recipe, root)
    except MMLabelError as error:
        raise distributed.everywhere(error) from None


def _photos(images, model, splits: dict, console):
    """The pixels of the run's photos: every photo of the three splits decoded once into the image store (those
    not stored yet, with a progress bar), or, for an image encoder without `pixel_transform`, decoded each time."""
    from mmlabel.data.image_store import pixel_source, prepare_photos

    pixels = pixel_source(images, model.image_encoder)
    prepare_photos(pixels, _image_names(splits), console)
    return pixels


def _feature_cache(recipe: Recipe, model, pixels, device, splits: dict, console):
    """Where the image encoder is frozen (and the recipe does not opt out): each image's patch states, computed
    once, before the first epoch."""
    from mmlabel.feature_cache import ImageFeatureCache, is_frozen

    if not (recipe.train.cache_image_features and pixels is not None and is_frozen(model.image_encoder)):
        return None
    console.print("the image encoder is frozen: computing each image's patch states once")
    features = ImageFeatureCache(model.image_encoder, pixels, device, recipe.train.precision)
    features.fill(_image_names(splits))
    return features


def _image_names(splits: dict) -> list:
    return [example.image for split in ("train", "dev", "test") for example in splits[split]]


def export_architecture(model, directory: Path) -> dict:
    """Each encoder exports into the run what rebuilds its architecture offline; returns the options that read it
    back (`Tagger.load` builds the encoders from them, with no download)."""
    architecture = {"text_encoder": model.text_encoder.export(Path(directory) / "text_encoder")}
    if model.image_encoder is not None:
        architecture["image_encoder"] = model.image_encoder.export(Path(directory) / "image_encoder")
    return architecture


def with_precision(recipe: Recipe, precision: str) -> Recipe:
    """The recipe the trainer computes with: `train.precision = "auto"` replaced by the precision it chose. The run's
    recipe.toml keeps "auto" (so that the same command resumes it); run.json records the choice."""
    if recipe.train.precision == precision:
        return recipe
    recipe = recipe.model_copy(deep=True)
    recipe.train.precision = precision
    return recipe


def with_effective_batch_size(recipe: Recipe, processes: int) -> Recipe:
    """The recipe with `train.effective_batch_size` = batch size x processes x gradient accumulation: the examples
    behind each optimiser step, recorded with the run (any value given in the recipe is replaced)."""
    recipe = recipe.model_copy(deep=True)
    recipe.train.effective_batch_size = recipe.train.batch_size * processes * recipe.train.grad_accum
    return recipe


def _announce(console, out, device, recipe: Recipe, precision: str, threads: int, splits: dict, processes) -> None:
    """Where and how the run trains: device, precision (and whether `auto` chose it), threads, data, batch size."""
    chosen = f"{precision}, chosen by precision = auto" if recipe.train.precision == "auto" else precision
    console.print(f"training {out} on {device} ({chosen}, {threads} compute thread{'s' if threads > 1 else ''}); "
                  f"{len(splits['train'])}/{len(splits['dev'])}/{len(splits['test'])} train/dev/test sentences")
    console.print(f"effective batch size {recipe.train.effective_batch_size} = {recipe.train.batch_size} per process "
                  f"x {processes.world_size} process{'es' if processes.enabled else ''} "
                  f"x {recipe.train.grad_accum} accumulated")


def _start_run(run, recipe: Recipe, resume: bool, tokenizer_dir: Path | None, train: list) -> None:
    """Claim the run directory and, for `tokenizer = "train"`, learn the tokenizer into it (rank 0 alone); a resumed
    run notes the versions that differ from those it started with."""
    run.start(recipe.to_toml(), resume)
    if resume:  # once the run is claimed: a refused --resume says why instead
        from mmlabel.environment import note_version_changes

        note_version_changes(run.path, run.info())
    if tokenizer_dir is not None and not (resume and tokenizer_dir.exists()):
        from mmlabel.text_encoders.tokenizer import FAMILIES, train_word_tokenizer

        family = recipe.text_encoder.options.get("model_type")
        train_word_tokenizer([example.tokens for example in train], tokenizer_dir,
                             family if family in FAMILIES else "bert")


def _with_tokenizer(recipe: Recipe, out: Path) -> tuple[Recipe, Path | None]:
    """`tokenizer = "train"`: a WordPiece tokenizer learnt from the training words and saved in the run (no
    download); the recipe saved with the run names that folder."""
    if recipe.text_encoder.options.get("tokenizer") != "train":
        return recipe, None
    directory = (Path(out) / "tokenizer").resolve()
    recipe = recipe.model_copy(deep=True)
    recipe.text_encoder.tokenizer = str(directory)
    return recipe, directory
