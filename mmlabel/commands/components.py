"""`mmlabel list`, `mmlabel plugins`, `mmlabel recipe check`: what is installed, and what a recipe resolves to."""
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from mmlabel.commands.options import JsonOption, SetOption, echo_json

recipe_app = typer.Typer(help="Validate and inspect recipes.", no_args_is_help=True)
plugins_app = typer.Typer(help="The installed plugins: listed as JSON, or checked against the component contracts.",
                          invoke_without_command=True)


def list_components(
    kind: Annotated[Optional[str], typer.Argument(help="Only this kind: text_encoder, image_encoder, ...")] = None,
    as_json: JsonOption = False,
) -> None:
    """List the registered components: name, kind, provider and what each is for, or why it cannot be used; a
    built-in that a plugin shadows is listed by its qualified name (--json: a list of {name, qualified_name, kind,
    provider, description, problem, shadowed_by})."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from mmlabel.registry import components, shadowing_notes

    if as_json:
        echo_json([{"name": component.name, "qualified_name": component.qualified_name, "kind": component.kind,
                    "provider": component.provider, "description": component.description,
                    "problem": component.problem or component.conflict or None,
                    "shadowed_by": component.shadowed_by or None} for component in components(kind)])
        return
    table = Table("name", "kind", "provider", "description")
    for component in components(kind):
        if component.problem:  # its plugin's hook raised
            table.add_row(f"{component.name} (unusable)", component.kind, component.provider,
                          Text(component.problem, style="red"))
        elif component.conflict:  # two plugins register the name: only the qualified names can be used
            table.add_row(component.qualified_name, component.kind, component.provider,
                          Text(component.conflict, style="red"))
        elif component.shadowed_by:
            table.add_row(component.qualified_name, component.kind, component.provider,
                          Text(f"(shadowed by {component.shadowed_by}) {component.description}"))
        else:
            table.add_row(component.name, component.kind, component.provider, Text(component.description))
    Console().print(table)
    _print_notes(shadowing_notes(), kind)


def _print_notes(notes: list[str], kind: str | None = None) -> None:
    """The shadowing notes, one line each on stderr: said where components are listed, not on every command."""
    for note in notes:
        if kind is None or note.startswith(f"{kind} "):
            typer.echo(f"note: {note}", err=True)


@plugins_app.callback()
def plugins_command(context: typer.Context) -> None:
    """Print every plugin as JSON (its distribution, version and components); `check` runs the conformance kit."""
    if context.invoked_subcommand is None:
        list_plugins()


def list_plugins() -> None:
    """Print every plugin as JSON: its distribution, version, the components it registered and any error."""
    from mmlabel.plugins import plugins
    from mmlabel.registry import components, shadowing_notes

    registered: dict[str, dict[str, list[str]]] = {}
    for component in components():
        registered.setdefault(component.plugin, {}).setdefault(component.kind, []).append(component.name)
    rows = [
        {
            "name": info.name,
            "distribution": info.distribution,
            "version": info.version,
            "builtin": info.builtin,
            "components": {} if info.error else registered.get(info.name, {}),
            **({"error": info.problem} if info.problem else {}),
        }
        for info in plugins()
    ]
    typer.echo(json.dumps(rows, indent=2))
    _print_notes(shadowing_notes())


@plugins_app.command("check")
def check_plugins(
    name: Annotated[Optional[str], typer.Argument(
        help="A plugin, distribution or component name; default: every registered component.")] = None,
) -> None:
    """Build each component small and run the conformance kit on it (`mmlabel.testing`): one line per component,
    exit code 1 if any fails."""
    from mmlabel.testing import check_installed

    results = check_installed(name)
    for component, failure in results:
        status = "ok  " if failure is None else "FAIL"
        line = f"{status} {component.kind} {component.name} ({component.origin})"
        typer.echo(line if failure is None else f"{line}: {failure}")
    if any(failure is not None for _, failure in results):
        raise typer.Exit(1)


@recipe_app.command("check")
def recipe_check(
    recipe: Annotated[Path, typer.Argument(help="The recipe TOML file.")],
    set_: SetOption = None,
) -> None:
    """Validate a recipe, resolve every component name and print the resolved recipe. A data.root that names no
    folder here is a warning, not an error: the data may be where the recipe is trained."""
    from mmlabel.log import warn
    from mmlabel.recipe import load_recipe

    resolved = load_recipe(recipe, set_ or [])
    problem = resolved.data.root_problem()
    if problem:
        warn(f"{recipe}: {problem}; training needs it where it runs")
    typer.echo(resolved.to_toml(), nl=False)
