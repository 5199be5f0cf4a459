"""`mmlabel list`, `mmlabel plugins`, `mmlabel recipe check`: what is installed, and what a recipe resolves to."""
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from mmlabel.commands.options import JsonOption, SetOption, echo_json

recipe_app = typer.Typer(help="Validate and inspect recipes.", no_args_is_help=True)


def list_components(
    kind: Annotated[Optional[str], typer.Argument(help="Only this kind: text_encoder, image_encoder, ...")] = None,
    as_json: JsonOption = False,
) -> None:
    """List the registered components: name, kind, provider and what each is for (--json: a list of
    {name, kind, provider, description})."""
    from rich.console import Console
    from rich.table import Table

    from mmlabel.registry import components

    if as_json:
        echo_json([{"name": component.name, "kind": component.kind, "provider": component.provider,
                    "description": component.description} for component in components(kind)])
        return
    table = Table("name", "kind", "provider", "description")
    for component in components(kind):
        table.add_row(component.name, component.kind, component.provider, component.description)
    Console().print(table)


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
