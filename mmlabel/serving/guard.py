"""What surrounds every route of `mmlabel serve`, as pure ASGI middleware.

`Guard`, before the route: the API key, checked as a bearer token (`Authorization: Bearer KEY`) on every path but
`OPEN_PATHS`; the content type each prediction route reads; and the body's size, refused past its limit whatever
its Content-Length says (the route then reads the body through Starlette's public API, from memory).
`Failures`, around the route: an unexpected failure is answered 500 with one line and logged, with its traceback,
to the `mmlabel` logger (a failed batch's traceback is logged once, by the batcher). Every answer they give is
`{"error": one line}`. `RequestLog`, around everything: each request's method, path, status and time, logged.
"""
import hmac
import time

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from mmlabel.log import logger
from mmlabel.serving.batcher import BatchFailed

OPEN_PATHS = ("/health",)  # answered without the API key: a load balancer's probe has none
CONTENT_TYPES = {"/predict": ("application/json",),
                 "/predict/form": ("multipart/form-data", "application/x-www-form-urlencoded")}
KINDS = {"/predict": "JSON (application/json)", "/predict/form": "a form (multipart/form-data)"}


class Guard:
    """Refuses a request without the API key (401), with a body of the wrong content type (415) or over
    `max_body` bytes (413); hands the others on with their body read."""

    def __init__(self, app, max_body: int, api_key: str | None = None):
        self.app = app
        self.max_body = max_body
        self.api_key = api_key

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._unauthorized(scope["path"], headers) or _wrong_type(scope, headers)
        body = b""
        if refusal is None:
            body, refusal = await self._body(headers, receive)
        if refusal is not None:
            status, reason, extra = refusal
            await JSONResponse({"error": reason}, status, headers=extra)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    def _unauthorized(self, path: str, headers: Headers) -> tuple | None:
        if self.api_key is None or path in OPEN_PATHS:
            return None
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return 401, "this server needs its API key: send the header 'Authorization: Bearer KEY'", \
                {"WWW-Authenticate": "Bearer"}
        if not hmac.compare_digest(token.strip().encode(), self.api_key.encode()):  # in constant time
            return 401, "wrong API key", {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        return None

    async def _body(self, headers: Headers, receive) -> tuple[bytes, tuple | None]:
        """The whole body, or a 413 past `max_body` bytes (declared or sent). The rest of an oversized body is read
        and dropped (up to 4 times the limit), so that the client, still sending, gets the answer."""
        limit = self.max_body
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > 4 * limit:
            return b"", (413, f"the request is {int(declared):,} bytes, over the limit of {limit:,}", None)
        chunks, size, more = [], 0, True
        while more and size <= 4 * limit:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                break
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
            if size <= limit:
                chunks.append(message.get("body", b""))
        if size > limit:
            return b"", (413, f"the request is over the limit of {limit:,} bytes", None)
        return b"".join(chunks), None


def _wrong_type(scope, headers: Headers) -> tuple | None:
    """A 415 where a prediction route is sent a body of another content type, naming the route that reads it."""
    path, given = scope["path"], headers.get("content-type", "").partition(";")[0].strip().lower()
    if scope["method"] != "POST" or path not in CONTENT_TYPES or given in CONTENT_TYPES[path]:
        return None
    other = next((f"; {KINDS[route]} goes to POST {route}" for route, kinds in CONTENT_TYPES.items() if given in kinds),
                 "")
    return 415, f"POST {path} reads {KINDS[path]}, not {given or 'a body without a content type'}{other}", None


def _replay(body: bytes, receive):
    """A `receive` that gives the body already read, then waits on the client (for its disconnection)."""
    given = False

    async def replayed() -> dict:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


class _HttpMiddleware:
    """An ASGI middleware that acts on HTTP requests (`handle`) and hands anything else (lifespan) on as it is."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send) -> None:
        raise NotImplementedError


class Failures(_HttpMiddleware):
    """Answers an exception a route let through with a 500 `{"error": "internal error: Type: message"}` and logs it
    with its traceback; the server goes on."""

    async def handle(self, scope, receive, send) -> None:
        started = False

        async def watched(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as error:
            batch = isinstance(error, BatchFailed)
            cause = error.error if batch else error
            line = f"internal error: {type(cause).__name__}: {cause}".splitlines()[0]
            logger.error("%s %s answered 500, %s%s", scope["method"], scope["path"], line,
                         " (the traceback is logged with its batch)" if batch else "", exc_info=None if batch else error)
            if started:  # too late for an answer: the server closes the connection
                raise
            await JSONResponse({"error": line}, 500)(scope, receive, send)


class RequestLog(_HttpMiddleware):
    """Logs each request, once it is answered, to the `mmlabel` logger at INFO (`mmlabel serve` shows it on stderr):
    `POST /predict 200 12.3 ms`, the time from its arrival to the last byte of the answer; a request whose answer
    failed half-way as status 500."""

    async def handle(self, scope, receive, send) -> None:
        started, status = time.perf_counter(), 500

        async def watched(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            logger.info("%s %s %d %.1f ms", scope["method"], scope["path"], status,
                        (time.perf_counter() - started) * 1000)
