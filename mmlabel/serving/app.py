"""The HTTP application of `mmlabel serve`: a trained tagger behind FastAPI.

    POST /predict        JSON: a post {"text" | "tokens", "image": base64, "context", "attention"} or a list of them
                         (`models.PostIn`) -> the tagged post(s) (`models.PostOut`)
    POST /predict/form   a form (multipart/form-data): text (or tokens, a JSON list), an image file, context, attention
    GET  /               a page to type a post, drop a photo and see the spans (`page.PAGE`, no external resource)
    GET  /health         {"status": "ok"} (the one route open without the API key)
    GET  /model          the model (`responses.describe`), the server's limits and batching, the batches run so far
    GET  /docs           the OpenAPI schema (`/openapi.json`) in Swagger UI

Every refusal is a 4xx with `{"error": one line}`, FastAPI's own validation errors included; an unexpected failure
is a 500 with one line, logged with its traceback (`guard.Failures`), and the server goes on.
"""
import json
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from mmlabel import __version__
from mmlabel.serving.batcher import Batcher
from mmlabel.serving.guard import Failures, Guard, RequestLog
from mmlabel.serving.inputs import BadInput, Checked, Limits, check_count, check_post, image_from_base64
from mmlabel.serving.models import REFUSALS, Health, ModelOut, PostIn, PostOut, PostsIn, one_line_error
from mmlabel.serving.page import PAGE
from mmlabel.serving.responses import post_result


@dataclass
class Served:
    """What the routes serve: the tagger, its description, the server's limits and its batcher."""

    tagger: Any
    description: dict
    limits: Limits
    batcher: Batcher
    window_ms: float


def create_app(tagger, description: dict, limits: Limits = Limits(), max_batch: int = 32, window_ms: float = 5.0,
               api_key: str | None = None) -> FastAPI:
    """The application serving `tagger`, described by `description` (`responses.describe`); with `api_key`, every
    route but /health asks for it as a bearer token."""
    tagger.batch_size = max(max_batch, 1)  # a collected batch is one forward pass
    batcher = Batcher(partial(tag, tagger), max_batch, window_ms)

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="mmlabel", version=__version__, lifespan=lifespan, redoc_url=None,
                  description="A trained mmlabel tagger: the spans of posts (text and photo); see docs/serving.md.")
    app.state.served = Served(tagger, description, limits, batcher, window_ms)
    app.include_router(router)
    app.add_exception_handler(BadInput, refused)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_middleware(Failures)
    app.add_middleware(Guard, max_body=limits.max_upload_bytes, api_key=api_key)
    app.add_middleware(RequestLog)  # outermost: it logs the Guard's refusals too
    if api_key is not None:
        _declare_bearer(app)
    return app


def tag(tagger, posts: list[Checked]) -> list[PostOut]:
    """The results of a batch of checked posts (on the model thread): one encoding pass gives the spans and, where
    a post asked for it, the attention."""
    from mmlabel.tagger import Post, with_offsets

    found = tagger.predict([Post(post.words, post.image, post.context) for post in posts],
                           attention=any(post.attention for post in posts))
    return [post_result(post, with_offsets(prediction.spans, post.offsets) if post.offsets else prediction.spans,
                        prediction.attention if post.attention else None, tagger.model.image_encoder)
            for post, prediction in zip(posts, found)]


router = APIRouter()


def served(request: Request) -> Served:
    return request.app.state.served


State = Annotated[Served, Depends(served)]


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page():
    return PAGE


@router.get("/health", response_model=Health, openapi_extra={"security": []})
async def health():
    return Health()


@router.get("/model", response_model=ModelOut)
async def model(state: State):
    batching = {"max_batch": state.batcher.max_batch, "batch_window_ms": state.window_ms,
                "batches": state.batcher.batches, "posts": state.batcher.posts}
    return {**state.description, "limits": state.limits.__dict__, "batching": batching}


@router.post("/predict", response_model=PostOut | list[PostOut], response_model_exclude_none=True,
             responses=REFUSALS)
async def predict(posts: PostsIn, state: State):
    """Tag a post, or a list of up to 256 posts (answered in order)."""
    many = isinstance(posts, list)
    posts = posts if many else [posts]
    check_count(posts)

    def checked() -> list[Checked]:  # on a worker thread: a large image takes a while to decode
        return [check_post(post, image_from_base64(post.image, where), state.limits, state.tagger, where)
                for post, where in zip(posts, (f"post {index}" if many else "post" for index in range(len(posts))))]

    results = await state.batcher.submit(await run_in_threadpool(checked))
    return results if many else results[0]


@router.post("/predict/form", response_model=PostOut, response_model_exclude_none=True, responses=REFUSALS)
async def predict_form(
    state: State,
    text: Annotated[str | None, Form(description="Raw text.")] = None,
    tokens: Annotated[str | None, Form(description="The words, as a JSON list (instead of text).")] = None,
    image: Annotated[UploadFile | str | None, File(description="The image file.")] = None,
    attention: Annotated[Literal["true", "false"], Form(description="Add each span's attention.")] = "false",
    context: Annotated[str | None, Form(description="Text about the post (the context channel).")] = None,
):
    """Tag a post sent as a form, its image as a file (the page's way, and `curl -F`)."""
    if isinstance(image, str):
        raise BadInput(422, "form field 'image' must be a file upload (the server never reads a path)")
    post = _form_post(text, tokens, attention == "true", context)
    data = await image.read() if image is not None else None
    checked = await run_in_threadpool(check_post, post, data, state.limits, state.tagger)
    return (await state.batcher.submit([checked]))[0]


def _form_post(text: str | None, tokens: str | None, attention: bool, context: str | None = None) -> PostIn:
    if tokens is not None:
        try:
            tokens = json.loads(tokens)
        except ValueError:
            raise BadInput(422, "form field 'tokens' must be a JSON list of words") from None
    try:
        return PostIn(text=text, tokens=tokens, attention=attention, context=context)
    except ValidationError as error:  # answered as FastAPI's own validation errors are
        raise RequestValidationError([{**e, "loc": ("body", "post", *e["loc"])} for e in error.errors()]) from None


async def refused(request: Request, error: BadInput) -> JSONResponse:
    return JSONResponse({"error": error.reason}, status_code=error.status)


async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
    status, reason = one_line_error(error.errors())
    return JSONResponse({"error": reason}, status_code=status)


async def http_error(request: Request, error: HTTPException) -> JSONResponse:
    """Starlette's own refusals (404, 405) in the one shape, saying what the server has instead."""
    asked = f"{request.method} {request.url.path}"
    if error.status_code == 404:
        reason = f"{asked}: no such route (the API: GET /docs; the page: GET /)"
    elif error.status_code == 405:
        allowed = (error.headers or {}).get("Allow", "")
        reason = f"{asked}: method not allowed (this route takes {allowed})" if allowed \
            else f"{asked}: method not allowed"
    else:
        reason = str(error.detail)
    return JSONResponse({"error": reason}, status_code=error.status_code, headers=error.headers)


def _declare_bearer(app: FastAPI) -> None:
    """The API key in the OpenAPI schema, so that clients made from it (and /docs' "Authorize") send it."""
    from fastapi.openapi.utils import get_openapi

    def schema() -> dict:
        if app.openapi_schema is None:
            described = get_openapi(title=app.title, version=app.version, description=app.description,
                                    routes=app.routes)
            described.setdefault("components", {})["securitySchemes"] = {"apiKey": {"type": "http",
                                                                                    "scheme": "bearer"}}
            app.openapi_schema = {**described, "security": [{"apiKey": []}]}
        return app.openapi_schema

    app.openapi = schema
