"""The `mmlabel` command line. Errors in the user's input print one line and exit with code 2 (`--debug`: traceback)."""
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mmlabel import __version__
from mmlabel.commands import sweep, train
from mmlabel.commands.data import data_app
from mmlabel.commands.score import score
from mmlabel.errors import MMLabelError

app = typer.Typer(
    name="mmlabel",
    help="Multimodal sequence labeling: train, evaluate and apply taggers built from swappable components.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
recipe_app = typer.Typer(help="Validate and inspect recipes.", no_args_is_help=True)
app.add_typer(recipe_app, name="recipe")
app.add_typer(data_app, name="data")
app.command("score")(score)
app.command("train")(train.train)
app.command("evaluate")(train.evaluate)
app.command("predict")(train.predict)
app.command("sweep")(sweep.sweep)
app.command("reproduce")(sweep.reproduce)

SetOption = Annotated[
    Optional[list[str]], typer.Option("--set", help="Override a recipe key: --set train.lr=1e-4 (repeatable).")
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mmlabel {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error.")] = False,
) -> None:
    if debug:
        os.environ["MMLABEL_DEBUG"] = "1"


@app.command("list")
def list_components(
    kind: Annotated[Optional[str], typer.Argument(help="Only this kind: text_encoder, image_encoder, ...")] = None,
) -> None:
    """List the registered components: name, kind, provider and what each is for."""
    from rich.console import Console
    from rich.table import Table

    from mmlabel.registry import components

    table = Table("name", "kind", "provider", "description")
    for component in components(kind):
        table.add_row(component.name, component.kind, component.provider, component.description)
    Console().print(table)


@app.command("plugins")
def list_plugins() -> None:
    """Print every plugin as JSON: its distribution, version and the components it registered."""
    from mmlabel.plugins import plugins

    rows = [
        {
            "name": info.name,
            "distribution": info.distribution,
            "version": info.version,
            "builtin": info.builtin,
            "components": info.components,
            **({"error": info.error} if info.error else {}),
        }
        for info in plugins()
    ]
    typer.echo(json.dumps(rows, indent=2))


@recipe_app.command("check")
def recipe_check(
    recipe: Annotated[Path, typer.Argument(help="The recipe TOML file.")],
    set_: SetOption = None,
) -> None:
    """Validate a recipe, resolve every component name and print the resolved recipe."""
    from mmlabel.recipe import load_recipe

    resolved = load_recipe(recipe, set_ or [])
    typer.echo(resolved.to_toml(), nl=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app, turning the toolkit's own errors into one line and exit code 2."""
    args = sys.argv[1:] if argv is None else argv
    try:
        app(args=args, prog_name="mmlabel")
    except MMLabelError as error:
        if "--debug" in args or os.environ.get("MMLABEL_DEBUG"):
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
