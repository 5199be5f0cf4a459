"""The options several commands share, defined once so that each means the same thing everywhere (the table in
docs/training.md, "The command line's vocabulary")."""
from pathlib import Path
from typing import Annotated, Optional

import typer

SetOption = Annotated[
    Optional[list[str]], typer.Option("--set", help="Override a recipe key: --set train.lr=1e-4 (repeatable).")
]
FORMAT_HELP = ("The dataset reader: jml, tsv, conll, jsonl or a plugin's (guessed from the files if omitted: .jsonl, "
               ".tsv, and .txt by its first line).")
FormatOption = Annotated[Optional[str], typer.Option("--format", "-f", help=FORMAT_HELP)]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON on stdout (notes and progress go to stderr).")
]
DeviceOption = Annotated[str, typer.Option(
    help="Where the model computes: auto (CUDA where present, else the CPU), cpu, cuda, cuda:N, mps.")]
SplitOption = Annotated[str, typer.Option(help="The split to read from a data directory: train, dev or test.")]


def images_option(default: str):
    """`--images`: the folder in which the data's image names are found; each command says its default."""
    return Annotated[Optional[Path], typer.Option(
        "--images", help=f"The folder in which the data's image names are found (default: {default}).")]


def reader_name(path: Path, given: str | None, fallback: str | None = None) -> str:
    """The `--format` given, or the one guessed from the files at `path`; `fallback` where they do not tell."""
    from mmlabel.data.convert import sniff_format

    return given or sniff_format(path, fallback)


def echo_json(value) -> None:
    """`value` as indented JSON on stdout, the only thing a `--json` command prints there."""
    import json

    typer.echo(json.dumps(value, indent=2))
