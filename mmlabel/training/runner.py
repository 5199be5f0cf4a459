"""One training run from a recipe, start to finish: data, tag scheme, model, trainer, run directory; and several
seeds of it with the mean and standard deviation of every figure."""
import statistics
from datetime import datetime
from pathlib import Path

from rich.console import Console

from mmlabel.data.splits import data_root, image_loader, make_run_scheme, read_splits
from mmlabel.recipe import Recipe


def default_out(recipe_path: str | Path, base: str = "runs") -> Path:
    """`runs/<recipe name>-<date-time>`."""
    return Path(base) / f"{Path(recipe_path).stem}-{datetime.now():%Y%m%d-%H%M%S}"


def train_once(recipe: Recipe, out: Path, resume: bool = False, console: Console | None = None) -> dict:
    """Train the recipe with its seed into `out`; returns the run's metrics. SIGINT and SIGTERM stop it with a
    resumable checkpoint (`RunInterrupted`)."""
    from mmlabel.training.interrupts import stop_requests

    with stop_requests():
        return _train_once(recipe, out, resume, console)


def _train_once(recipe: Recipe, out: Path, resume: bool, console: Console | None) -> dict:
    import torch

    from mmlabel.device import keep_freed_memory, resolve_precision
    from mmlabel.model import TaggingModel
    from mmlabel.registry import get
    from mmlabel.threads import use_threads
    from mmlabel.training import distributed
    from mmlabel.training.seeds import set_seed, use_deterministic_kernels
    from mmlabel.training.trainer import Trainer

    processes = distributed.start(recipe.train.device)
    keep_freed_memory()  # the training process's own choice (mmlabel.device): never made by the library
    console = console or Console(stderr=True, quiet=not processes.is_main)
    roots = []
    processes.main_first(lambda: roots.append(data_root(recipe, console)), local=True)  # one writes the synthetic set
    root = roots[0] if roots else data_root(recipe, console)
    splits = _every_process_reads(recipe, root)
    run = distributed.run_dir(out, processes)
    recipe = with_effective_batch_size(recipe, processes.world_size)
    recipe, tokenizer_dir = _with_tokenizer(recipe, out)
    processes.main_first(lambda: _start_run(run, recipe, resume, tokenizer_dir, splits["train"]))
    scheme = make_run_scheme(recipe, splits["train"])
    run.save_tags(recipe.data.tag_scheme.name, scheme.labels, scheme.tags, recipe.data.tag_scheme.options)
    set_seed(recipe.train.seed)
    if recipe.train.deterministic:
        use_deterministic_kernels()
    model = TaggingModel.for_scheme(recipe, scheme)
    run.save_architecture(export_architecture(model, run.path))
    images = image_loader(recipe, root, splits) if model.image_encoder is not None else None
    if images is not None and images.missing:  # under "error" the check has already stopped the run
        console.print(f"{len(images.missing)} of {len(images.checked)} images missing: using blank images")
    metric = get("metric", recipe.metric.name).build(recipe.metric.options)
    device = processes.device(recipe.train.device)
    torch.set_float32_matmul_precision("high")
    computing = with_precision(recipe, resolve_precision(recipe.train.precision, device))
    run.set_status("running", precision=computing.train.precision)
    threads = use_threads(recipe.train.threads)  # looked at again every epoch (Trainer)
    _announce(console, out, device, recipe, computing.train.precision, threads, splits, processes)
    trainer = Trainer(model, computing, scheme, metric, run, device, images, console)
    return trainer.fit(splits["train"], splits["dev"], splits["test"], resume=resume)


def _every_process_reads(recipe: Recipe, root: Path) -> dict:
    """The splits, read by every process; bad data fails the same way in all of them, so the error is marked as
    raised everywhere and printed once, by rank 0."""
    from mmlabel.errors import MMLabelError
    from mmlabel.training import distributed

    try:
        return read_splits(recipe, root)
    except MMLabelError as error:
        raise distributed.everywhere(error) from None


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


def _announce(console, out, device, recipe: Recipe, precision: str, threads: int, splits: dict, processes) -> None:
    """Where and how the run trains: device, precision (and whether `auto` chose it), threads, data, batch size."""
    chosen = f"{precision}, chosen by precision = auto" if recipe.train.precision == "auto" else precision
    console.print(f"training {out} on {device} ({chosen}, {threads} compute thread{'s' if threads > 1 else ''}); "
                  f"{len(splits['train'])}/{len(splits['dev'])}/{len(splits['test'])} train/dev/test sentences")
    console.print(f"effective batch size {recipe.train.effective_batch_size} = {recipe.train.batch_size} per process "
                  f"x {processes.world_size} process{'es' if processes.enabled else ''} "
                  f"x {recipe.train.grad_accum} accumulated")


def with_effective_batch_size(recipe: Recipe, processes: int) -> Recipe:
    """The recipe with `train.effective_batch_size` = batch size x processes x gradient accumulation: the examples
    behind each optimiser step, recorded with the run (any value given in the recipe is replaced)."""
    recipe = recipe.model_copy(deep=True)
    recipe.train.effective_batch_size = recipe.train.batch_size * processes * recipe.train.grad_accum
    return recipe


def _start_run(run, recipe: Recipe, resume: bool, tokenizer_dir: Path | None, train: list) -> None:
    """Claim the run directory and, for `tokenizer = "train"`, learn the tokenizer into it (rank 0 alone)."""
    run.start(recipe.to_toml(), resume)
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


def train_seeds(recipe: Recipe, out: Path, seeds: list[int], resume: bool = False,
                console: Console | None = None) -> dict:
    """Run each seed into `out/seed-N` and summarise every numeric figure as mean and standard deviation."""
    from mmlabel import atomic
    from mmlabel.training import distributed

    runs = {}
    for seed in seeds:
        seeded = recipe.model_copy(deep=True)
        seeded.train.seed = seed
        runs[seed] = train_once(seeded, Path(out) / f"seed-{seed}", resume, console)
    summary = {"seeds": seeds, "dev": summarise([m["dev"] for m in runs.values()]),
               "test": summarise([m["test"] for m in runs.values()])}
    if distributed.current().is_main:
        atomic.write_json(Path(out) / "summary.json", summary)
    return summary


def summarise(figures: list[dict]) -> dict:
    """{key: {"mean": m, "std": s}} over the scalar figures present in every run."""
    keys = [key for key, value in figures[0].items() if isinstance(value, (int, float))]
    return {key: {"mean": statistics.fmean(f[key] for f in figures),
                  "std": statistics.stdev(f[key] for f in figures) if len(figures) > 1 else 0.0} for key in keys}
