"""`mmlabel data ...`: statistics of a dataset, conversion between formats and the synthetic demo dataset."""
from pathlib import Path
from typing import Annotated, Optional

import typer

from mmlabel.commands.options import FORMAT_HELP, FormatOption, JsonOption, echo_json, reader_name

data_app = typer.Typer(help="Inspect, convert and generate datasets.", no_args_is_help=True)


@data_app.command("stats")
def stats(
    path: Annotated[Path, typer.Argument(help="A data directory (train/dev/test files) or one file.")],
    format_name: FormatOption = None,
    as_json: JsonOption = False,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip bad records (and count them) instead of stopping.")] = False,
) -> None:
    """Per split: sentences, aspects, sentiments (or entity types), multi-aspect sentences and lengths in words
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
    to_format: Annotated[str, typer.Option("--to", help="Target format: jml, tsv, conll or jsonl.")] = "jsonl",
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
) -> None:
    """Write the synthetic MABSA dataset (jml + 64x64 PNGs) in which the image decides about half the sentiments."""
    from mmlabel.data.synth import write_synthetic

    summary = write_synthetic(out, train=train, dev=dev, test=test, seed=seed)
    for split, figures in summary.items():
        typer.echo(f"{split}: {figures['sentences']} sentences, {figures['aspects']} aspects, "
                   f"{figures['image_aspects']} decided by the image; text-only F1 ceiling "
                   f"{figures['text_only_f1_ceiling']:.1f}")
    typer.echo(f"wrote {out}")
