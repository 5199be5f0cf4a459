"""`mmlabel serve`: a trained tagger over HTTP, with a page to try it (docs/serving.md)."""
from pathlib import Path
from typing import Annotated, Optional

import typer

from mmlabel.commands.options import DeviceOption


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
    max_words: Annotated[int, typer.Option(
        min=1, help="The most words of a post in a request (a longer post than the model's data.max_tokens is "
                    "tagged in overlapping windows).")] = 1000,  # serving.inputs.Limits.max_words
    device: DeviceOption = "auto",
    api_key: Annotated[Optional[str], typer.Option(
        envvar="MMLABEL_API_KEY", show_envvar=True,
        help="Ask every request but GET /health for this key (header 'Authorization: Bearer KEY'). Needed on an "
             "address other machines reach, unless --no-auth.")] = None,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth", help="Serve an address other machines reach without an API key.")] = False,
) -> None:
    """Serve a trained tagger over HTTP: POST /predict, GET / (a page to try it), GET /health, GET /model, GET
    /docs (the OpenAPI schema)."""
    api_key = _checked_key(host, api_key or None, no_auth)  # before the model loads: a refusal is at once
    _check_serve_extra()
    from mmlabel.device import keep_freed_memory, resolve_device
    from mmlabel.export import resolve_source
    from mmlabel.serving import listen
    from mmlabel.serving.app import create_app
    from mmlabel.serving.inputs import Limits
    from mmlabel.serving.responses import describe
    from mmlabel.tagger import Tagger
    from mmlabel.threads import use_threads

    resolve_device(device)  # a device this machine lacks, and
    listener = listen.open_port(host, port)  # a port in use: one line each, before the model loads
    try:
        keep_freed_memory()
        run_dir = resolve_source(run_dir)  # hf://OWNER/NAME: an export on the Hugging Face Hub
        tagger = Tagger.load(run_dir, device=device)
        description = describe(run_dir, tagger)
        use_threads()
        limits = Limits(max_upload_bytes=int(max_upload_mb * 1024 * 1024), max_words=max_words,
                        **({"max_pixels": max_pixels} if max_pixels else {}))
        app = create_app(tagger, description, limits, max_batch, batch_window_ms, api_key)
        listen.serve(app, listener, log_level="warning", timeout_graceful_shutdown=5)
    finally:
        listener.close()


def _check_serve_extra() -> None:
    """One line naming the extra to install where the serve extra's packages are missing."""
    from mmlabel.errors import MMLabelError

    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise MMLabelError(f"mmlabel serve needs the serve extra ({error.name} is missing): "
                           "pip install 'mmlabel[serve]'") from None


def _checked_key(host: str, api_key: str | None, no_auth: bool) -> str | None:
    """The key to ask for: a server other machines can reach needs one, or --no-auth said so on purpose."""
    from mmlabel.errors import MMLabelError

    if api_key is not None and no_auth:
        raise MMLabelError("--api-key and --no-auth contradict each other: give one of them")
    if api_key is None and not no_auth and not is_loopback(host):
        raise MMLabelError(f"--host {host} is reachable from other machines: give --api-key KEY (or set "
                           f"MMLABEL_API_KEY), or --no-auth to serve it without a key")
    return api_key


def is_loopback(host: str) -> bool:
    """Whether `host` is an address of this machine alone: localhost, 127.0.0.0/8, ::1."""
    import ipaddress

    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False
