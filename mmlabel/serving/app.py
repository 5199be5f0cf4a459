"""The HTTP application of `mmlabel serve`: a trained tagger behind FastAPI.

    POST /predict   JSON {"text" | "tokens", "image": base64} or a list of them; or a form: text (or tokens, a JSON
                    list) and an image file -> the tagged post(s), see `responses.post_result`
    GET  /          a page to type a post, drop a photo and see the spans (`page.PAGE`, no external resource)
    GET  /health    {"status": "ok"}
    GET  /model     the model (`responses.describe`), the server's limits and batching, the batches run so far

Every refusal is a 4xx with `{"error": one line}`; an unexpected failure is a 500 with one line, and the server goes
on.
"""
import json
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from mmlabel.serving.batcher import Batcher
from mmlabel.serving.inputs import BadInput, Limits, image_from_base64, parse_json, post_from_fields
from mmlabel.serving.page import PAGE
from mmlabel.serving.responses import post_result, with_attention


def create_app(tagger, description: dict, limits: Limits = Limits(), max_batch: int = 32,
               window_ms: float = 5.0) -> FastAPI:
    """The application serving `tagger`, described by `description` (`responses.describe`)."""
    tagger.batch_size = max(max_batch, 1)  # a collected batch is one forward pass

    batcher = Batcher(partial(tag, tagger), max_batch, window_ms)

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="mmlabel", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(BadInput)
    async def refused(request: Request, error: BadInput):
        return JSONResponse({"error": error.reason}, status_code=error.status)

    @app.exception_handler(Exception)
    async def failed(request: Request, error: Exception):
        return JSONResponse({"error": f"internal error: {type(error).__name__}: {error}".splitlines()[0]}, 500)

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return PAGE

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/model")
    async def model():
        serving = {"max_batch": batcher.max_batch, "batch_window_ms": window_ms, "batches": batcher.batches,
                   "posts": batcher.posts}
        return {**description, "limits": limits.__dict__, "batching": serving}

    @app.post("/predict")
    async def predict(request: Request):
        posts, many = await read_posts(request, limits, tagger)
        results = await batcher.submit(posts)
        return JSONResponse(results if many else results[0])  # plain JSON already: no jsonable_encoder pass

    return app


def tag(tagger, posts: list) -> list[dict]:
    """The results of a batch of checked posts (on the model thread), with attention where a post asked for it."""
    from mmlabel.tagger import Post

    # one encoding pass gives the spans and the attention
    found = tagger.predict([Post(post.content, post.image) for post in posts],
                           attention=any(post.attention for post in posts))
    results = [post_result(post, prediction.words, prediction.spans) for post, prediction in zip(posts, found)]
    for post, result, prediction in zip(posts, results, found):
        if post.attention and prediction.attention is not None:
            with_attention(result, prediction.attention, prediction.spans, tagger.model.image_encoder)
    return results


async def read_posts(request: Request, limits: Limits, tagger) -> tuple[list, bool]:
    """The checked posts of a request, and whether it sent a list of them."""
    body = await read_body(request, limits.max_upload_bytes)
    content_type = request.headers.get("content-type", "")
    needs_image, tokenizer = tagger.multimodal, tagger.tokenizer
    if content_type.startswith("multipart/form-data"):
        fields, image_bytes = await read_form(request)
        _check_attention([fields], tagger)
        return [await run_in_threadpool(post_from_fields, fields, image_bytes, limits, needs_image, tokenizer)], False
    if content_type and not content_type.startswith("application/json"):
        raise BadInput(415, f"send JSON (application/json) or a form (multipart/form-data), not {content_type}")
    objects, many = parse_json(body)
    _check_attention(objects, tagger)

    def checked() -> list:  # on a worker thread: a large image takes a while to decode
        return [post_from_fields(fields, image_from_base64(fields.get("image"), where), limits, needs_image,
                                 tokenizer, where)
                for where, fields in zip((f"post {i}" if many else "post" for i in range(len(objects))), objects)]

    return await run_in_threadpool(checked), many


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, refused past `limit` bytes, whatever its Content-Length says. The rest of an oversized
    body is read and dropped (up to 4 times the limit), so that the client, still sending, gets the answer."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > 4 * limit:
        raise BadInput(413, f"the request is {int(declared):,} bytes, over the limit of {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > 4 * limit:
            break
    if size > limit:
        raise BadInput(413, f"the request is over the limit of {limit:,} bytes")
    body = b"".join(chunks)
    request._body = body  # what request.form() parses, read once here
    return body


async def read_form(request: Request) -> tuple[dict, bytes | None]:
    """A form's `text` or `tokens` (a JSON list) and the bytes of its `image` file."""
    try:
        form = await request.form(max_files=1, max_fields=8, max_part_size=len(request._body) + 1)
    except Exception as error:  # starlette reports a malformed form as an HTTPException or a MultiPartException
        reason = getattr(error, "detail", None) or getattr(error, "message", None) or type(error).__name__
        raise BadInput(400, f"malformed form: {reason}") from None
    fields = {key: value for key, value in form.items()
              if key in ("text", "tokens", "attention") and isinstance(value, str)}
    unknown = sorted(set(form.keys()) - {"text", "tokens", "image", "attention"})
    if unknown:
        raise BadInput(422, f"unknown form field {unknown[0]!r} (expected text or tokens, image, attention)")
    if "tokens" in fields:
        try:
            fields["tokens"] = json.loads(fields["tokens"])
        except ValueError:
            raise BadInput(422, "form field 'tokens' must be a JSON list of words") from None
    image = form.get("image")
    if isinstance(image, str):
        raise BadInput(422, "form field 'image' must be a file upload (the server never reads a path)")
    return fields, (await image.read() if image is not None else None)


def _check_attention(objects: list[dict], tagger) -> None:
    if not tagger.has_attention and any(post.get("attention") not in (None, False, "false") for post in objects):
        raise BadInput(422, "this model has no word-to-patch attention (text only, or a fusion head without "
                            "`attention`): leave out 'attention'")

