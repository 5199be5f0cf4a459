"""`mmlabel serve RUN` started in a subprocess on a free local port, returned once it answers /health: what the
serving tests and `benchmarks/serve_load.py` call (and a script that wants a server beside it)."""
import socket
import subprocess
import sys
import time


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(run, *options: str, env: dict | None = None, capture: bool = False,
                 timeout: float = 60) -> tuple[subprocess.Popen, str]:
    """(the server process, its base URL) of `mmlabel serve RUN --port PORT OPTIONS`; `capture` collects its output
    (the process's stdout, stderr merged in) instead of printing it. A RuntimeError, with that output where captured,
    when the server exits or does not answer /health within `timeout` seconds (it is then killed)."""
    import httpx

    port = free_port()
    output = subprocess.PIPE if capture else None
    process = subprocess.Popen([sys.executable, "-m", "mmlabel", "serve", str(run), "--port", str(port), *options],
                               env=env, stdout=output, stderr=subprocess.STDOUT if capture else None, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}"
                               + (f": {process.stdout.read()}" if capture else ""))
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the server did not answer /health within {timeout:g} s")
