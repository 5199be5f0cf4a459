"""What a client sends to `POST /predict`, checked before it reaches the model: each refusal is a `BadInput` with an
HTTP status and a one-line reason. Images come as bytes (base64 in JSON, a file in a form) and are decoded here
under a pixel limit; nothing a client sends is ever opened as a path."""
import base64
import binascii
import io
import warnings
from dataclasses import dataclass, field

from PIL import Image, ImageOps, UnidentifiedImageError

from mmlabel.data.images import to_rgb

MAX_POSTS_PER_REQUEST = 256


class BadInput(Exception):
    """A request the server refuses: `status` (4xx) and a one-line `reason`."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    """What one request may hold: its body in bytes, an image's pixels, a post's words and characters. These bound
    a request's cost, not what the model can tag: a post longer than the model's `max_tokens` is tagged in
    overlapping windows (`Tagger.predict`), each costing about one model pass of `max_tokens`."""

    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = Image.MAX_IMAGE_PIXELS or 89_478_485
    max_words: int = 1000
    max_chars: int = 10_000


@dataclass
class Checked:
    """A post that passed the server's checks: its `words` (split once, here: with their `offsets` in `text` where it
    came as raw text), its decoded RGB image or None, and whether it asks for attention."""

    words: list[str]
    image: Image.Image | None = field(default=None, repr=False)
    attention: bool = False
    text: str | None = None
    offsets: list | None = None  # the words as mmlabel.data.tokenize.Token, for the spans' character offsets
    context: str | None = None  # text about the post, read after its words (the model's context channel)


def check_count(posts: list) -> None:
    if not posts:
        raise BadInput(422, "an empty list of posts")
    if len(posts) > MAX_POSTS_PER_REQUEST:
        raise BadInput(413, f"{len(posts)} posts in one request, over the limit of {MAX_POSTS_PER_REQUEST}")


def check_post(post, image_bytes: bytes | None, limits: Limits, tagger, where: str = "post") -> Checked:
    """A post (`models.PostIn`, valid in shape) checked against the model and the server's limits, its text split
    into words by the run's tokenizer and its image decoded (`image_bytes`: from base64 or the uploaded file)."""
    from mmlabel.model import NO_ATTENTION

    if image_bytes is None and tagger.multimodal:
        raise BadInput(422, f"{where}: this model reads images: give 'image' (base64 in JSON, a file in a form)")
    if post.attention and not tagger.has_attention:
        raise BadInput(422, f"{where}: {NO_ATTENTION}: leave out 'attention'")
    if post.attention and image_bytes is None:
        raise BadInput(422, f"{where}: 'attention' needs an image: the attention is over the photo's patches")
    offsets = _checked_words(post.text, limits, tagger, where) if post.text is not None else None
    words = [token.text for token in offsets] if offsets is not None else post.tokens
    if post.text is None and len(words) > limits.max_words:
        raise BadInput(422, f"{where}: {len(words):,} tokens, over this server's limit of {limits.max_words:,} "
                            f"words (--max-words)")
    image = decode_image(image_bytes, limits, where) if image_bytes is not None else None
    context = _checked_context(post.context, limits, tagger, where)
    return Checked(words, image, post.attention, post.text, offsets, context)


def _checked_context(context: str | None, limits: Limits, tagger, where: str) -> str | None:
    """The post's context, refused past the limit of characters or where the model's text encoder reads none."""
    from mmlabel.contracts import declares

    if not context:
        return None
    if len(context) > limits.max_chars:
        raise BadInput(422, f"{where}: 'context' has {len(context):,} characters, over the limit of "
                            f"{limits.max_chars:,}")
    if not declares(tagger.model.text_encoder, "accepts_context"):
        raise BadInput(422, f"{where}: this model's text encoder reads no context: leave out 'context'")
    return context


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
            raise BadInput(400, f"{where}: 'image' is truncated or damaged ({type(error).__name__}): "
                                f"send the whole file") from None


def _checked_words(text: str, limits: Limits, tagger, where: str) -> list:
    """The words of a raw `text` with their offsets, refused past the limits of characters and words."""
    if len(text) > limits.max_chars:
        raise BadInput(422, f"{where}: 'text' has {len(text):,} characters, over the limit of {limits.max_chars:,}")
    words = tagger.words(text)
    if len(words) > limits.max_words:
        raise BadInput(422, f"{where}: 'text' has {len(words):,} words, over this server's limit of "
                            f"{limits.max_words:,} (--max-words)")
    return words
