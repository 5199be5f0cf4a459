"""Where `mmlabel serve` listens: the port taken before the model loads (a port in use is one line at once, not
uvicorn's message after a minute of loading), the app served on that very socket (no other process can take the
port in between), and the line saying where it listens, logged once it does."""
import errno
import socket

from mmlabel.errors import MMLabelError
from mmlabel.log import logger


def open_port(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host`:`port` (port 0: one the system chooses), as uvicorn would bind it; an
    `MMLabelError` naming the port or the host where it cannot be had."""
    try:
        found = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise MMLabelError(f"--host {host}: not an address this machine can listen on ({error.strerror})") from None
    # a name with an IPv4 and an IPv6 address (localhost): the IPv4 one, which clients of "localhost" try first
    family, kind, protocol, _, address = min(found, key=lambda entry: entry[0] != socket.AF_INET)
    listener = socket.socket(family, kind, protocol)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a port in TIME_WAIT is free
    try:
        listener.bind(address)
    except OSError as error:
        listener.close()
        raise MMLabelError(_refusal(host, port, error)) from None
    return listener


def _refusal(host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return f"port {port} of {host} is in use (another server?): stop it, or choose another with --port"
    if error.errno == errno.EACCES:
        return f"port {port} of {host} needs privileges this user lacks: choose one above 1023 with --port"
    if error.errno == errno.EADDRNOTAVAIL:
        return f"--host {host} is not an address of this machine"
    return f"cannot listen on {host} port {port}: {error.strerror}"


def url_of(listener: socket.socket) -> str:
    """The base URL of a bound socket: http://HOST:PORT, an IPv6 address in brackets."""
    host, port = listener.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(app, listener: socket.socket, **settings) -> None:
    """Serve `app` with uvicorn on `listener` (from `open_port`) until Ctrl-C or SIGTERM; `settings` go to
    `uvicorn.Config`. Logs "listening on URL" once the socket accepts connections."""
    import uvicorn

    class Announcing(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if not self.should_exit:  # the app started (its lifespan did not fail) and the socket listens
                logger.info("listening on %s (Ctrl-C stops it)", url_of(listener))

    Announcing(uvicorn.Config(app, **settings)).run(sockets=[listener])
