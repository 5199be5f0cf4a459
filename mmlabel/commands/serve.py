"""`mmlabel serve`: a trained tagger over HTTP, with a page to try it (docs/serving.md)."""
from pathlib import Path
from typing import Annotated, Optional

import typer


def serve(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    host: Annotated[str, typer.Option(help="The address to listen on (localhost unless told otherwise).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="The port to listen on.")] = 8000,
    max_batch: Annotated[int, typer.Option(min=1, help="The most posts tagged in one model call (1: no batching).")] = 32,
    batch_window_ms: Annotated[float, typer.Option(
        min=0, help="How long the first waiting request waits for others to join its batch.")] = 5.0,
    max_upload_mb: Annotated[float, typer.Option(min=0, help="The largest request body, in MB.")] = 10.0,
    max_pixels: Annotated[Optional[int], typer.Option(
        min=1, help="The most pixels of an image (default: PIL's decompression-bomb limit).")] = None,
    max_words: Annotated[Optional[int], typer.Option(
        min=1, help="The most words of a post (default: the run's data.max_tokens).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
) -> None:
    """Serve a trained tagger over HTTP: POST /predict, GET / (a page to try it), GET /health, GET /model."""
    from mmlabel.errors import MMLabelError

    try:
        import uvicorn

        from mmlabel.serving.app import create_app
        from mmlabel.serving.inputs import Limits
    except ImportError as error:
        raise MMLabelError(f"mmlabel serve needs the serve extra ({error.name} is missing): "
                           "pip install 'mmlabel[serve]'") from None
    from mmlabel.device import keep_freed_memory
    from mmlabel.serving.responses import describe
    from mmlabel.tagger import Tagger
    from mmlabel.threads import use_threads

    from mmlabel.export import resolve_source

    keep_freed_memory()
    run_dir = resolve_source(run_dir)  # hf://OWNER/NAME: an export on the Hugging Face Hub
    tagger = Tagger.load(run_dir, device=device)
    description = describe(run_dir, tagger)
    use_threads()
    limits = Limits(max_upload_bytes=int(max_upload_mb * 1024 * 1024), max_words=max_words or tagger.max_tokens,
                    **({"max_pixels": max_pixels} if max_pixels else {}))
    app = create_app(tagger, description, limits, max_batch, batch_window_ms)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
