"""The `mmlabel` command line. Errors in the user's input print one line and exit with code 2 (`--debug`: traceback)."""
import os
import sys
from typing import Annotated

import typer
import typer.main

from mmlabel import __version__
from mmlabel.commands import components, sweep, train
from mmlabel.commands.bench import bench
from mmlabel.commands.data import data_app
from mmlabel.commands.env import env
from mmlabel.commands.export import export
from mmlabel.commands.options import humanise_help
from mmlabel.commands.report import report
from mmlabel.commands.score import score
from mmlabel.commands.serve import serve
from mmlabel.commands.tune import tune
from mmlabel.errors import MMLabelError
from mmlabel.log import command_line_output

app = typer.Typer(
    name="mmlabel",
    help="Multimodal sequence labeling: train, evaluate and apply taggers built from swappable components.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("list")(components.list_components)
app.add_typer(components.plugins_app, name="plugins")
app.add_typer(components.recipe_app, name="recipe")
app.add_typer(data_app, name="data")
app.command("score")(score)
app.command("train")(train.train)
app.command("evaluate")(train.evaluate)
app.command("predict")(train.predict)
app.command("sweep")(sweep.sweep)
app.command("reproduce")(sweep.reproduce)
app.command("sweep-status")(sweep.sweep_status)
app.command("tune")(tune)
app.command("export")(export)
app.command("bench")(bench)
app.command("serve")(serve)
app.command("report")(report)
app.command("env")(env)


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


def _finish_processes() -> None:
    """Under torchrun: wait for the other processes before exiting (see `distributed.finish`)."""
    if "torch" in sys.modules:
        from mmlabel.training import distributed

        distributed.finish()


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app, turning the toolkit's own errors into one line and exit code 2."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or bool(os.environ.get("MMLABEL_DEBUG"))
    try:
        with command_line_output(debug):  # the library's log and warnings on stderr, a line each
            command = typer.main.get_command(app)
            humanise_help(command)
            command(args=args, prog_name="mmlabel")
    except MMLabelError as error:
        if debug:
            raise
        everywhere, rank = getattr(error, "everywhere", False), os.environ.get("RANK", "0")
        if rank == "0" or not everywhere:  # under torchrun, an error of every process is printed once
            print(f"error: {'' if rank == '0' else f'rank {rank}: '}{error}", file=sys.stderr)
        if everywhere:
            _finish_processes()
        sys.exit(error.exit_code)
    except KeyboardInterrupt:  # a second Ctrl-C during training, or one outside it
        if debug:
            raise
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
