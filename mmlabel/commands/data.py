"""`mmlabel data ...`: statistics of a dataset, conversion between formats, the synthetic demo dataset, and the
photos of a recipe: stored ahead of training (`prepare`), described as text once (`describe`) and checked against a
manifest (`verify`)."""
from pathlib import Path
from typing import Annotated, Optional

import typer

from mmlabel.commands.options import (FORMAT_HELP, FormatOption, JsonOption, SetOption, echo_json, images_option,
                                     reader_name)

data_app = typer.Typer(help="Inspect, convert and generate datasets.", no_args_is_help=True)


@data_app.command("stats")
def stats(
    path: Annotated[Path, typer.Argument(help="A data directory (train/dev/test files) or one file.")],
    format_name: FormatOption = None,
    as_json: JsonOption = False,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip bad records (and count them) instead of stopping.")] = False,
) -> None:
    """Per split: sentences, aspects and sentiments (NER: entities and entity types), sentences with several and
    lengths in words
    (--json: {split: {figure: value}}; the merge and skip counts go to stderr as notes)."""
    from mmlabel.data.convert import read_dataset
    from mmlabel.data.stats import dataset_stats, same_text_other_image

    format_name = reader_name(path, format_name)
    _, splits, reports = read_dataset(path, format_name, "skip" if skip_bad else "error")
    figures = dataset_stats(splits)
    merges = {split: {"duplicate_records": reports[split]["duplicates"],
                      "same_text_other_image": same_text_other_image(examples),
                      "skipped": len(reports[split]["skipped"])}
              for split, examples in splits.items()}
    if as_json:
        echo_json(figures)
        for split, counts in merges.items():
            typer.echo(f"note: {split}: " + ", ".join(f"{key} {value}" for key, value in counts.items()), err=True)
        return
    _print_stats(path, format_name, figures, merges)


def _print_stats(path: Path, format_name: str, figures: dict, merges: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    first = next(iter(figures.values()))
    table = Table("split", *first, title=f"{path} ({format_name})")
    for split, row in figures.items():
        table.add_row(split, *(str(value) for value in row.values()))
    console = Console(width=max(140, Console().width))
    console.print(table)
    for split, counts in merges.items():
        line = (f"{split}: {counts['duplicate_records']} duplicate records merged away, "
                f"{counts['same_text_other_image']} sentences share their words with a post that has another image "
                f"(kept apart)")
        console.print(line + (f", {counts['skipped']} bad records skipped" if counts["skipped"] else ""))


@data_app.command("convert")
def convert_command(
    source: Annotated[Path, typer.Argument(help="A data directory or one file.")],
    target: Annotated[Path, typer.Argument(help="The output directory (for a directory) or file.")],
    from_format: Annotated[Optional[str], typer.Option("--format", "-f", "--from", help=FORMAT_HELP)] = None,
    to_format: Annotated[str, typer.Option("--to", help="Target format: jml, tsv, conll, jsonl or json.")] = "jsonl",
) -> None:
    """Convert a dataset between formats (read with --format, also spelt --from; written with --to); each split
    keeps its name (train, dev, test)."""
    from mmlabel.data.convert import convert

    written = convert(source, target, reader_name(source, from_format), to_format)
    for split, (file, count) in written.items():
        typer.echo(f"{split}: {count} sentences -> {file}")


@data_app.command("synth")
def synth(
    out: Annotated[Path, typer.Argument(help="Directory to write train/dev/test.txt and images/ into.")],
    train: Annotated[int, typer.Option(min=1, help="Training sentences.")] = 400,
    dev: Annotated[int, typer.Option(min=1, help="Development sentences.")] = 100,
    test: Annotated[int, typer.Option(min=1, help="Test sentences.")] = 100,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed writes the same files.")] = 13,
    ocr_cue: Annotated[bool, typer.Option(
        "--ocr-cue", help="Also write the image's cue into the photo as a word (128x128 photos), for the ocr "
                          "describer to read.")] = False,
) -> None:
    """Write the synthetic MABSA dataset (jml + 64x64 PNGs) in which the image decides about half the sentiments."""
    from mmlabel.data.synth import write_synthetic

    summary = write_synthetic(out, train=train, dev=dev, test=test, seed=seed, ocr_cue=ocr_cue)
    for split, figures in summary.items():
        typer.echo(f"{split}: {figures['sentences']} sentences, {figures['aspects']} aspects, "
                   f"{figures['image_aspects']} decided by the image; text-only F1 ceiling "
                   f"{figures['text_only_f1_ceiling']:.1f}")
    typer.echo(f"wrote {out}")


@data_app.command("prepare")
def prepare(
    recipe: Annotated[Path, typer.Argument(help="The recipe TOML file, e.g. recipes/dtca.toml.")],
    images: images_option("the recipe's data.images") = None,
    set_: SetOption = None,
    manifest: Annotated[Optional[Path], typer.Option(
        help="Where to write the manifest of the photos (default: <recipe name>.photos.tsv here).")] = None,
) -> None:
    """Decode and resize every photo of the recipe's train, dev and test splits into the image store before training
    (the image encoder is built with random weights, for its geometry: nothing is downloaded), print one summary of
    the missing and unreadable photos, and write a manifest (file, size, sha256) that `mmlabel data verify` checks."""
    from rich.console import Console

    from mmlabel.contracts import stores_pixels
    from mmlabel.data.image_store import ImageStore, prepare_photos
    from mmlabel.data.images import ImageLoader
    from mmlabel.data.manifest import ManifestEntry, write_manifest
    from mmlabel.data.splits import SPLITS, data_root, read_splits
    from mmlabel.errors import RecipeError
    from mmlabel.recipe import load_recipe

    loaded = load_recipe(recipe, set_ or [])
    if loaded.image_encoder is None:
        raise RecipeError(f"{recipe}: image_encoder: the recipe has no image encoder, so no photos to prepare")
    console = Console(stderr=True)
    root = data_root(loaded)
    splits = read_splits(loaded, root)
    folder = images or (loaded.data.images_path() if loaded.data.root is not None else root / "images")
    encoder = _geometry_of(loaded)
    names = [example.image for split in SPLITS for example in splits[split]]
    loader = ImageLoader(folder, "blank")  # every photo is looked at; the summary names the missing ones
    loader.check(names)
    if not stores_pixels(encoder):
        raise RecipeError(f"{recipe}: image_encoder {loaded.image_encoder.name!r} has no pixel_transform: its "
                          f"photos are decoded as training uses them, and there is nothing to store ahead")
    store = ImageStore(loader, encoder.pixel_transform, encoder.pixel_signature)
    summary = prepare_photos(store, names, console, announce=False)
    target = manifest or Path(f"{Path(recipe).stem}.photos.tsv")
    present = [name for name in sorted({name for name in names if name}) if name not in loader.missing]
    write_manifest(target, [ManifestEntry(name, *store.digest(name)) for name in present])
    typer.echo(f"image store: {store.directory}")
    typer.echo(summary.describe())
    if (summary.missing or summary.unreadable) and loaded.data.missing_image == "error":
        typer.echo("note: under the recipe's data.missing_image = \"error\" training stops on these; "
                   "data.missing_image = \"blank\" gives them blank images")
    typer.echo(f"manifest: {target} ({len(present)} photos); check it with: "
               f"mmlabel data verify {target} --images {folder}")


def _geometry_of(recipe):
    """The recipe's image encoder with random weights: what its pixel transform needs, without a download."""
    from mmlabel.registry import build, get

    component = get("image_encoder", recipe.image_encoder.name)
    fields = component.config_class.model_fields if component.config_class is not None else {}
    options = dict(recipe.image_encoder.options)
    options.update({key: value for key, value in (("pretrained", False), ("checkpoint_path", None)) if key in fields})
    return build("image_encoder", {"name": component.qualified_name, **options})


@data_app.command("describe")
def describe(
    recipe: Annotated[Path, typer.Argument(help="The recipe TOML file whose data's photos to describe.")],
    describer: Annotated[Optional[str], typer.Option(
        "--describer", "-d", help="file, ocr, hf or a plugin's (default: the recipe's data.describer); options "
                                  "with --set data.describer.KEY=VALUE.")] = None,
    set_: SetOption = None,
    out: Annotated[Optional[Path], typer.Option(
        help="The side file to write (default: in the cache, $MMLABEL_CACHE/context/...; printed at the end).")] = None,
    images: images_option("the recipe's data.images") = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Photos per describe call (and per flush to disk).")] = 16,
    restart: Annotated[bool, typer.Option(help="Describe every photo again, replacing the file.")] = False,
) -> None:
    """Run a describer (image -> text) over every photo of the recipe's train, dev and test splits, once, and cache
    the texts as a side file keyed by photo (JSON lines {"image": NAME, "context": TEXT}) that data.context reads.
    An interrupted run continues where it stopped when started again."""
    from rich.console import Console

    from mmlabel.data.images import ImageLoader
    from mmlabel.data.splits import SPLITS, data_root, read_splits
    from mmlabel.describers import run
    from mmlabel.registry import build, get

    loaded = _describe_recipe(recipe, describer, set_ or [])
    root = data_root(loaded)
    splits = read_splits(loaded, root)
    folder = images or (loaded.data.images_path() if loaded.data.root is not None else root / "images")
    built = build("describer", loaded.data.describer)
    name = get("describer", loaded.data.describer.name).qualified_name
    target = out or run.default_path(root, folder, name.rpartition(":")[2], built.signature)
    done = run.start(target, name, built.signature, restart)
    names = [example.image for split in SPLITS for example in splits[split]]
    console = Console(stderr=True)
    summary = _describe_with_bar(built, ImageLoader(folder, "blank"), names, target, done, batch_size, console)
    run.finish(target, name, built.signature, summary)
    typer.echo(summary.describe())
    typer.echo(f"side file: {target}")
    typer.echo(f"use it: --set 'data.context={{path = \"{target}\", key = \"image\"}}'")


def _describe_recipe(recipe: Path, describer: str | None, overrides: list[str]):
    """The recipe with `--describer` as its data.describer (before the --set options, which may tune it)."""
    from mmlabel.errors import RecipeError
    from mmlabel.recipe import load_recipe

    loaded = load_recipe(recipe, ([f"data.describer.name={describer}"] if describer else []) + overrides)
    if loaded.data.describer is None:
        raise RecipeError(f"{recipe}: data.describer: the recipe names no describer; give --describer NAME (file, "
                          f"ocr, hf)")
    return loaded


def _describe_with_bar(built, loader, names: list, target: Path, done: dict, batch_size: int, console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from mmlabel.describers.run import describe_photos

    todo = len({name for name in names if name and name not in done})
    with Progress(TextColumn("[bold]describing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("describing", total=todo)
        return describe_photos(built, loader, names, target, done, batch_size,
                               progress=lambda count: bar.advance(task, count))


@data_app.command("verify")
def verify(
    manifest: Annotated[Path, typer.Argument(help="A manifest written by `mmlabel data prepare`.")],
    images: images_option("the current directory, as for sha256sum -c") = None,
) -> None:
    """Check that every photo of a manifest is present with its size and sha256; one summary line. Exit code 0 when
    all match, 1 when some do not, 2 for a manifest that cannot be read or an image folder that does not exist."""
    from mmlabel.data.manifest import read_manifest, verify as verify_photos

    entries = read_manifest(manifest)
    found = verify_photos(entries, images or Path("."))
    if found.ok:
        typer.echo(f"all {found.checked} photos of {manifest} match")
        return
    parts = [f"{len(found.missing)} missing ({_first(found.missing)})" if found.missing else "",
             f"{len(found.changed)} changed ({_first(found.changed)})" if found.changed else ""]
    typer.echo(f"{len(found.missing) + len(found.changed)} of {found.checked} photos of {manifest} do not match: "
               + ", ".join(part for part in parts if part))
    raise typer.Exit(1)


def _first(names: list[str], shown: int = 3) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")
