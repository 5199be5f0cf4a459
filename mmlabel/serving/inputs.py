"""What a client sends to `POST /predict`, checked before it reaches the model: each refusal is a `BadInput` with an
HTTP status and a one-line reason. Images come as bytes (base64 in JSON, a file in a form) and are decoded here
under a pixel limit; nothing a client sends is ever opened as a path."""
import base64
import binascii
import io
import json
import warnings
from dataclasses import dataclass, field

from PIL import Image, ImageOps, UnidentifiedImageError

from mmlabel.data.images import to_rgb

POST_KEYS = ("text", "tokens", "image", "attention")
MAX_POSTS_PER_REQUEST = 256


class BadInput(Exception):
    """A request the server refuses: `status` (4xx) and a one-line `reason`."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    """What one request may hold: its body in bytes, an image's pixels, a post's words and characters."""

    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = Image.MAX_IMAGE_PIXELS or 89_478_485
    max_words: int = 60
    max_chars: int = 10_000


@dataclass
class Post:
    """One post to tag: raw `text` or `tokens` (one of them), and its decoded RGB image or None."""

    text: str | None = None
    tokens: list[str] | None = None
    image: Image.Image | None = field(default=None, repr=False)
    attention: bool = False  # the fusion head's word-to-patch attention, asked for with "attention": true

    @property
    def content(self) -> str | list[str]:
        return self.text if self.text is not None else self.tokens


def parse_json(body: bytes) -> tuple[list[dict], bool]:
    """The post objects of a JSON body (one object, or a list of them) and whether it was a list."""
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        reason = error.msg if isinstance(error, json.JSONDecodeError) else type(error).__name__
        raise BadInput(400, f"malformed JSON: {reason}") from None
    many = isinstance(value, list)
    posts = value if many else [value]
    if not posts:
        raise BadInput(422, "an empty list of posts")
    if len(posts) > MAX_POSTS_PER_REQUEST:
        raise BadInput(413, f"{len(posts)} posts in one request, over the limit of {MAX_POSTS_PER_REQUEST}")
    for index, post in enumerate(posts):
        if not isinstance(post, dict):
            raise BadInput(422, f"post {index}: expected a JSON object with 'text' or 'tokens', found "
                                f"{type(post).__name__}")
        unknown = sorted(set(post) - set(POST_KEYS))
        if unknown:
            raise BadInput(422, f"post {index}: unknown key {unknown[0]!r} (expected {', '.join(POST_KEYS)})")
    return posts, many


def post_from_fields(fields: dict, image_bytes: bytes | None, limits: Limits, needs_image: bool,
                     tokenizer: str, where: str = "post") -> Post:
    """A checked `Post` from the fields of a JSON object or form (`image_bytes`: the image's bytes, already
    decoded from base64 or read from the uploaded file; `tokenizer`: the run's, which counts the words)."""
    text, tokens = fields.get("text"), fields.get("tokens")
    if (text is None) == (tokens is None):
        raise BadInput(422, f"{where}: give either 'text' (raw text) or 'tokens' (a list of words)")
    if text is not None:
        text = _checked_text(text, limits, tokenizer, where)
    else:
        tokens = _checked_tokens(tokens, limits, where)
    if image_bytes is None and needs_image:
        raise BadInput(422, f"{where}: this model reads images: give 'image'")
    image = decode_image(image_bytes, limits, where) if image_bytes is not None else None
    return Post(text, tokens, image, _attention(fields.get("attention", False), image, where))


def _attention(value, image, where: str) -> bool:
    """Whether the post asks for attention (JSON true/false; a form's "true"/"false"); it needs an image."""
    if isinstance(value, str) and value in ("true", "false"):
        value = value == "true"
    if not isinstance(value, bool):
        raise BadInput(422, f"{where}: 'attention' must be true or false")
    if value and image is None:
        raise BadInput(422, f"{where}: 'attention' needs an image: the attention is over the photo's patches")
    return value


def image_from_base64(value, where: str = "post") -> bytes | None:
    """The bytes of a JSON `image`: base64, optionally as a `data:` URL; None for null or absent."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadInput(422, f"{where}: 'image' must be a base64 string, found {type(value).__name__}")
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput(400, f"{where}: 'image' is not valid base64 (send the image's bytes, not a file name)") from None


def decode_image(data: bytes, limits: Limits, where: str = "post") -> Image.Image:
    """The image in `data` as RGB (EXIF orientation applied); refused when it is no image, is cut short or damaged,
    or has more pixels than allowed (checked from its header, before decoding)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:  # PIL's own limit, at twice its MAX_IMAGE_PIXELS
            raise BadInput(413, f"{where}: the image has more pixels than twice the limit of {limits.max_pixels:,}") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            raise BadInput(415, f"{where}: 'image' is not an image PIL can read (PNG, JPEG, GIF, WebP, ...)") from None
        width, height = image.size
        if width * height > limits.max_pixels:
            raise BadInput(413, f"{where}: the image is {width}x{height} pixels, over the limit of "
                                f"{limits.max_pixels:,}")
        try:
            image.load()
            return to_rgb(ImageOps.exif_transpose(image))
        except Exception as error:  # a truncated or damaged file fails in the decoder, with many exception types
            raise BadInput(400, f"{where}: the image is truncated or damaged ({type(error).__name__})") from None


def _checked_text(text, limits: Limits, tokenizer: str, where: str) -> str:
    from mmlabel.data.tokenize import tokenize

    if not isinstance(text, str):
        raise BadInput(422, f"{where}: 'text' must be a string, found {type(text).__name__}")
    if len(text) > limits.max_chars:
        raise BadInput(422, f"{where}: 'text' has {len(text):,} characters, over the limit of {limits.max_chars:,}")
    if not text.strip():
        raise BadInput(422, f"{where}: 'text' is empty")
    count = len(tokenize(text, tokenizer))
    if count > limits.max_words:
        raise BadInput(422, f"{where}: 'text' has {count} words, over the limit of {limits.max_words}")
    return text


def _checked_tokens(tokens, limits: Limits, where: str) -> list[str]:
    if not isinstance(tokens, list) or not all(isinstance(t, str) and t and not t.isspace() for t in tokens):
        raise BadInput(422, f"{where}: 'tokens' must be a list of non-empty strings")
    if not tokens:
        raise BadInput(422, f"{where}: 'tokens' is empty")
    if len(tokens) > limits.max_words:
        raise BadInput(422, f"{where}: {len(tokens)} tokens, over the limit of {limits.max_words} words")
    return tokens
