"""The options several commands share, defined once so that each means the same thing everywhere (the table in
docs/training.md, "The command line's vocabulary")."""
from pathlib import Path
from typing import Annotated, Optional

import typer

SetOption = Annotated[
    Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE",
                                      help="Override a recipe key: --set train.lr=1e-4 (repeatable).")
]
FORMAT_HELP = ("The dataset reader: jml, tsv, conll, jsonl, json or a plugin's (guessed from the files if omitted: "
               ".jsonl, .tsv, .json, and .txt by its first line).")
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


def humanise_help(command) -> None:
    """Give every parameter of the click `command` tree a metavar a person reads at a glance, as click writes them:
    a flag none, `PATH`, `INTEGER`, `NUMBER`, the choices `a|b`, and for text the option's name (`--seeds SEEDS`),
    instead of the type names typer shows (`<bool>`, `<list[str]>`, `<int range>`); an argument is its name in capitals,
    `[NAME]` where optional, and `NAME...` where it takes several. A metavar the declaration gives is kept."""
    for sub in getattr(command, "commands", {}).values():
        humanise_help(sub)
    made_help_option = command.get_help_option

    def get_help_option(context, made=made_help_option):  # --help is made when asked for, not in command.params
        option = made(context)
        if option is not None and option.metavar is None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option
    for param in command.params:
        if param.metavar is not None:
            continue
        if param.param_type_name == "argument":
            param.metavar = param.name.upper() + ("..." if param.nargs != 1 else "")
            if hasattr(param, "_usage_display_name"):  # typer writes a required one as {name} in the usage line
                name = param.metavar if param.required else f"[{param.metavar}]"
                param._usage_display_name = lambda name=name: name
            if hasattr(param, "display_type_rich"):  # and its type beside its name: the name says enough
                param.display_type_rich = lambda *args, **kwargs: None
        elif getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.metavar = ""
        else:
            param.metavar = _type_metavar(param)


def _type_metavar(param) -> str:
    """PATH, INTEGER, NUMBER, the choices, or the option's name, from typer's description of the type (newer typer)
    or click's type (older)."""
    import typing

    import click

    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None:
        kind = param.type
        choices = kind.choices if isinstance(kind, click.Choice) else None
        path = isinstance(kind, click.Path)
        annotation = {click.INT: int, click.FLOAT: float}.get(kind, getattr(kind, "_number_class", str))
    else:
        choices, path = descriptor.choices, descriptor.is_path
        annotation = descriptor.annotation
        while typing.get_args(annotation):  # list[int], Optional[int]
            annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    if choices:
        return "|".join(str(getattr(choice, "value", choice)) for choice in choices)
    if path:
        return "PATH"
    if isinstance(annotation, type) and issubclass(annotation, bool):
        return ""
    if isinstance(annotation, type) and issubclass(annotation, int):
        return "INTEGER"
    if isinstance(annotation, type) and issubclass(annotation, float):
        return "NUMBER"
    flags = [flag for flag in param.opts if flag.startswith("--")] or [param.name]
    return max(flags, key=len).lstrip("-").replace("-", "_").upper()
