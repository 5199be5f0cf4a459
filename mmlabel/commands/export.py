"""`mmlabel export`: a finished run as a folder to hand on, with a model card; `--push` uploads it to the Hub."""
from pathlib import Path
from typing import Annotated, Optional

import typer


def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    out: Annotated[Path, typer.Argument(help="The folder to write (new or empty).")],
    push: Annotated[Optional[str], typer.Option(
        "--push", help="Then upload it to the Hugging Face Hub as the model repository OWNER/NAME.")] = None,
    private: Annotated[bool, typer.Option(help="With --push: create the repository private.")] = False,
) -> None:
    """Write a trained tagger to hand on: weights, resolved recipe, tags, environment and a README.md model card;
    `Tagger.load`, `mmlabel predict`, `evaluate` and `serve` take the folder (or hf://OWNER/NAME once pushed)."""
    from mmlabel.errors import MMLabelError
    from mmlabel.export import export_run

    folder = export_run(run_dir, out)
    typer.echo(f"exported {run_dir} to {folder} (model card: {folder / 'README.md'})", err=True)
    if push:
        try:
            import huggingface_hub  # noqa: F401
        except ImportError:
            raise MMLabelError("--push needs huggingface_hub: pip install huggingface_hub") from None
        from mmlabel.export import push as upload

        typer.echo(f"pushed: {upload(folder, push, private)}", err=True)
