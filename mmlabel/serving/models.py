"""The JSON of `mmlabel serve` as pydantic models: what a client sends to `POST /predict` and what each route answers.
FastAPI validates requests against them and publishes them in the OpenAPI schema (`/openapi.json`, shown at
`/docs`); a request that does not fit is answered 4xx with `{"error": one line}` (`one_line_error`)."""
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

POST_KEYS = ("text", "tokens", "image", "context", "attention")


class PostIn(BaseModel):
    """One post to tag: its raw `text` or its `tokens` (one of them), its `image`, its `context` and whether to
    return the fusion head's attention over the image."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: str | None = Field(None, description="Raw text, split into words by the run's tokenizer.",
                             examples=["Alice was okay today"])
    tokens: list[str] | None = Field(None, description="The post's words, already split.")
    image: str | None = Field(None, description="The image's bytes in base64, or as a data: URL (never a path); "
                                                "may be left out for a text-only model.")
    context: str | None = Field(None, description="Text about the post (a caption, OCR text, knowledge): the "
                                                  "model's context channel, read after the words, never tagged.")
    attention: bool = Field(False, description="Add each span's attention over the image's patch grid (a model "
                                               "whose fusion head exposes it, and a post with an image).")

    @model_validator(mode="after")
    def _has_words(self) -> "PostIn":
        if (self.text is None) == (self.tokens is None):
            raise ValueError("give either 'text' (raw text) or 'tokens' (a list of words)")
        if self.text is not None and not self.text.strip():
            raise ValueError("'text' is empty")
        if self.tokens is not None and not self.tokens:
            raise ValueError("'tokens' is empty")
        if self.tokens is not None and not all(token and not token.isspace() for token in self.tokens):
            raise ValueError("'tokens' must be a list of non-empty strings")
        return self


def _one_or_many(value) -> str:
    return "posts" if isinstance(value, list) else "post"


# A post, or a list of them: tagged by shape, so that a refusal names the post ("post 3: ...") and only its own
# errors, not those of the other shape too.
PostsIn = Annotated[Union[Annotated[PostIn, Tag("post")], Annotated[list[PostIn], Tag("posts")]],
                    Discriminator(_one_or_many)]


class SpanOut(BaseModel):
    """A span: word indices `start`/`end` (end exclusive), its `label` and `words`; for raw text, `start_char` and
    `end_char` (end exclusive) and the `text` they cover; where asked for, its `attention`."""

    words: str
    start: int
    end: int
    label: str
    start_char: int | None = None
    end_char: int | None = None
    text: str | None = None
    attention: str | None = Field(None, description="Its words' attention over `attention_grid`, one hexadecimal "
                                                    "digit (0-f, scaled to the strongest cell) per cell, row by row.")


class AttentionGrid(BaseModel):
    """Where the image encoder's tokens lie on the photo: `prefix` tokens off it (a ViT's class token), then a grid
    of `rows` x `columns`."""

    prefix: int
    rows: int
    columns: int


class PostOut(BaseModel):
    """A tagged post: its `tokens` (words), its `text` where it came as raw text, its `context` where it had one, its
    `spans` and, where asked for, the `attention_grid` the spans' attention is drawn on."""

    text: str | None = None
    context: str | None = None
    tokens: list[str]
    spans: list[SpanOut]
    attention_grid: AttentionGrid | None = None


class Batching(BaseModel):
    max_batch: int
    batch_window_ms: float
    batches: int = Field(description="Model calls so far.")
    posts: int = Field(description="Posts those calls tagged.")


class ModelOut(BaseModel):
    """The model behind the server (`responses.describe`), the server's limits and its batching so far."""

    run: str
    components: dict[str, str]
    multimodal: bool
    tag_scheme: str
    labels: list[str]
    tags: list[str]
    tokenizer: str
    metric: str
    best_epoch: int | None
    dev: dict[str, float]
    test: dict[str, float]
    limits: dict[str, int]
    batching: Batching


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ErrorOut(BaseModel):
    """Every refusal (4xx) and failure (500): one line saying why."""

    error: str


REFUSALS = {status: {"model": ErrorOut, "description": description} for status, description in (
    (400, "Malformed JSON, invalid base64, a damaged image"), (401, "No API key, or a wrong one (`--api-key`)"),
    (413, "Over a limit: the body's bytes, an image's pixels, the posts of a request"),
    (415, "Not an image; a body of the wrong content type"),
    (422, "A post that does not fit: see the one-line reason"), (500, "An unexpected failure (logged)"))}


def one_line_error(errors: list[dict]) -> tuple[int, str]:
    """(status, one line) of a request's validation errors (pydantic's, located in the body): the first one, and
    how many more there are."""
    first = errors[0]
    if first["type"] == "json_invalid":
        return 400, f"malformed JSON: {first.get('ctx', {}).get('error', first['msg'])}"
    where, field = _location(first["loc"])
    if first["type"] == "extra_forbidden":
        message = f"unknown key {field!r} (expected {', '.join(POST_KEYS)})"
    elif first["type"] in ("model_attributes_type", "model_type", "dict_type"):
        message = f"expected a JSON object with 'text' or 'tokens', found {type(first.get('input')).__name__}"
    else:
        message = first["msg"].removeprefix("Value error, ")
        message = f"'{field}': {message}" if field else message
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return 422, f"{where}: {message}{more}"


def _location(loc: tuple) -> tuple[str, str]:
    """("post" or "post N", the field's path) of an error located at ("body", "post" | "posts", [N], field...)."""
    rest = list(loc[1:]) if loc and loc[0] == "body" else list(loc)
    if rest[:1] == ["posts"] and len(rest) > 1:
        where, rest = f"post {rest[1]}", rest[2:]
    else:
        where, rest = "post", rest[1:] if rest[:1] in (["post"], ["posts"]) else rest
    return where, ".".join(str(part) for part in rest)
