"""Post photos as small JPEG thumbnails embedded in the page (data URIs), shown as the image encoder saw them."""
import base64
import io
from pathlib import Path

from PIL import Image

THUMBNAIL_SIZE = 128  # pixels on the longer side: about 3 KB a photo
JPEG_QUALITY = 65


def encoder_view(image: Image.Image, transform) -> Image.Image:
    """The image after the geometric steps of the encoder's `transform` (resize, centre crop: a torchvision
    `Compose`'s leading steps that map a PIL image to a PIL image), so that a heat map over the encoder's patch grid
    lies where the patches were; the image unchanged for a transform that is not such a `Compose`."""
    view = image
    for step in getattr(transform, "transforms", []):
        try:
            result = step(view)
        except Exception:  # a step that needs a tensor: the geometric steps are over
            break
        if not isinstance(result, Image.Image):
            break
        view = result
    return view


def load_photo(image_dir: Path, name: str | None) -> Image.Image | None:
    """The post's photo as RGB, or None where it has none, the file is missing or it cannot be read."""
    from mmlabel.data.images import ImageLoader
    from mmlabel.errors import DataError

    if not name or not (Path(image_dir) / name).is_file():
        return None
    try:
        return ImageLoader(image_dir, "error").load(name)
    except DataError:
        return None


def thumbnail_uri(image: Image.Image) -> str:
    """A `data:image/jpeg;base64,...` URI of the image shrunk to `THUMBNAIL_SIZE` pixels on its longer side."""
    small = image.convert("RGB")
    small.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
