"""Images: tweet image names resolved against an image directory and opened only when an example needs them.

`missing_image = "error"` (the default) stops on a missing or unreadable image, naming the file and how many are
missing; `"blank"` substitutes a blank RGB image and counts it (`ImageLoader.counts()`, for the run's log).
Truncated files of a dataset load as far as they go (tweet photos are often cut short by the crawl; training and
evaluation see what is there); an image given to predict on (`Tagger.predict`, `mmlabel predict`, the server) must be
whole (`truncated="refuse"`): one cut short is unreadable, under the policy. Every mode becomes RGB; images over
`max_pixels` are decoded at a reduced scale where the format allows it (JPEG) and refused otherwise, before any pixel
is read.
"""
import re
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from mmlabel.errors import DataError

POLICIES = ("error", "blank")
# What PIL raises for a file that is not an image it can decode (or one refused as too large).
UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError)
MAX_PIXELS = 50_000_000
BLANK_SIZE = (224, 224)
# What an error under missing_image = "error" suggests: the recipe's key, where the images are a dataset's.
RECIPE_REMEDY = 'set data.missing_image = "blank" to use blank images instead'


class ImageLoader:
    """Loads an example's image by file name from `image_dir`, applying the missing-image policy and counting."""

    def __init__(self, image_dir: str | Path, policy: str = "error", max_pixels: int = MAX_PIXELS,
                 blank_size: tuple[int, int] = BLANK_SIZE, truncated: str = "load", remedy: str = RECIPE_REMEDY):
        if policy not in POLICIES:
            raise ValueError(f"missing_image must be one of {POLICIES}, not {policy!r}")
        if truncated not in ("load", "refuse"):
            raise ValueError(f"truncated must be 'load' or 'refuse', not {truncated!r}")
        self.image_dir = Path(image_dir)
        self.policy = policy
        self.truncated = truncated  # "load": as far as the file goes (a dataset's); "refuse": unreadable
        self.remedy = remedy  # what an error under "error" suggests: an option the caller has
        self.max_pixels = max_pixels
        self.blank_size = blank_size
        self.missing: set[str] = set()
        self.checked: set[str] = set()  # the names `check` looked for
        self.loaded = 0
        self.blank = 0
        self.unreadable = 0
        self.downscaled = 0

    def check(self, names: list[str | None]) -> int:
        """Count the named images that are not on disk, up front; under "error" any missing one stops the run."""
        wanted = sorted({name for name in names if name})
        missing = [name for name in wanted if not self.path(name).is_file()]
        self.missing.update(missing)
        self.checked.update(wanted)
        if missing and self.policy == "error":
            examples = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
            raise DataError(f"{len(missing)} of {len(wanted)} images are missing ({examples}); {self.remedy}",
                            self.image_dir)
        return len(missing)

    def path(self, name: str) -> Path:
        return self.image_dir / name

    def load(self, name: str | None) -> Image.Image:
        """The image `name` as RGB; a blank one (counted) for no name, or a missing or unreadable file under "blank"."""
        if not name:
            return self._blank()
        path = self.path(name)
        if not path.is_file():
            self.missing.add(name)
            return self.refuse(name, f"image not found ({len(self.missing)} missing so far)")
        try:
            image = self.decode(path)
        except UNREADABLE as error:
            self.unreadable += 1
            return self.refuse(name, unreadable_reason(error))
        self.loaded += 1
        return image

    def counts(self) -> dict[str, int]:
        """What the loader did so far, for the run's log: the images checked up front and missing (of those and of
        any loaded later), and what this process loaded, blanked, found unreadable and downscaled."""
        return {"checked": len(self.checked), "loaded": self.loaded, "blank": self.blank, "missing": len(self.missing),
                "unreadable": self.unreadable, "downscaled": self.downscaled}

    def decode(self, source: Path | BinaryIO) -> Image.Image:
        """A file (path or open binary file) decoded as RGB under the loader's rules (EXIF orientation, truncated
        files, `max_pixels`), with no policy and no counting but `downscaled`: raises one of `UNREADABLE`. Safe
        to call from several threads at once (`ImageStore.prepare` does)."""
        with _decoding_rules() if self.truncated == "load" else _size_warning_quiet():
            try:
                image = Image.open(source)
            except Image.DecompressionBombError as error:
                raise ValueError(f"too large: {error}") from None
            self._limit_size(image)
            image.load()
        return to_rgb(ImageOps.exif_transpose(image))

    def _limit_size(self, image: Image.Image) -> None:
        """Reduce the decoding scale of a huge JPEG (header only read so far), or refuse a huge image of another format."""
        width, height = image.size
        if width * height <= self.max_pixels:
            return
        if image.format == "JPEG":
            # draft() decodes at 1/2, 1/4 or 1/8 scale, the smallest reduction that stays at least the size asked
            # for; asking for half the allowed side keeps the result within the limit.
            scale = (self.max_pixels / (width * height)) ** 0.5 / 2
            image.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
            if image.size[0] * image.size[1] <= self.max_pixels:
                self.downscaled += 1
                return
        raise ValueError(f"too large: {width}x{height} pixels is over the limit of {self.max_pixels:,}")

    def refuse(self, name: str, reason: str) -> Image.Image:
        """Under "error" a `DataError` naming the file and `reason`; under "blank" a blank image (counted)."""
        if self.policy == "error":
            raise DataError(f"{reason}; {self.remedy}", self.path(name))
        return self._blank()

    def _blank(self) -> Image.Image:
        self.blank += 1
        return Image.new("RGB", self.blank_size)


def unreadable_reason(error: Exception, name: str | None = None) -> str:
    """The message of a file that is not a readable image, with what PIL said (about `name`, where PIL read it from
    memory and names the buffer)."""
    said = str(error)
    if name is not None:
        said = re.sub(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>", name, said)
    return f"not a readable image ({type(error).__name__}: {said})"


_RULES_LOCK = threading.Lock()
_rules_users = 0  # decodings in progress under `_decoding_rules`, over all threads
_rules_saved: list = []  # what the first of them found: PIL's switch and the warnings context to leave


@contextmanager
def _decoding_rules():
    """Tweet photos are often cut short by the crawl; decoding what is there beats losing the example. PIL has only
    a module-wide switch for it (and the size warning only a module-wide filter), so both are set while decodings
    are in progress and restored after the last one: a program that imports mmlabel keeps its own settings. Counted
    over threads, so that one thread's end does not switch them back under another's decoding."""
    global _rules_users
    with _RULES_LOCK:
        if _rules_users == 0:
            quiet = warnings.catch_warnings()
            quiet.__enter__()
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            _rules_saved[:] = [ImageFile.LOAD_TRUNCATED_IMAGES, quiet]
            ImageFile.LOAD_TRUNCATED_IMAGES = True
        _rules_users += 1
    try:
        yield
    finally:
        with _RULES_LOCK:
            _rules_users -= 1
            if _rules_users == 0:
                ImageFile.LOAD_TRUNCATED_IMAGES, quiet = _rules_saved
                quiet.__exit__(None, None, None)
                _rules_saved.clear()


@contextmanager
def _size_warning_quiet():
    """Decoding a whole file only: PIL's size warning is quiet (`max_pixels` decides), truncated files still fail."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def from_array(array) -> Image.Image:
    """A numpy image as RGB: (H, W) greyscale, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA (over white); uint8 in
    0..255, or float in [0, 1] (scaled to 0..255). Channels are in RGB order (OpenCV's BGR arrays need
    `cv2.cvtColor(array, cv2.COLOR_BGR2RGB)` first). A ValueError for any other shape, type or range."""
    import numpy as np

    shape, dtype = tuple(array.shape), array.dtype
    if not (len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3, 4))) or 0 in shape:
        raise ValueError(f"an image array must be (height, width) or (height, width, 1, 3 or 4 channels), found "
                         f"shape {shape}")
    if np.issubdtype(dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ValueError("a float image array must hold values in [0, 1] (uint8 ones in 0..255), found "
                             f"{float(np.nanmin(array)):g}..{float(np.nanmax(array)):g}")
        array = (array * 255).round().astype(np.uint8)
    elif dtype != np.uint8:
        raise ValueError(f"an image array must be uint8 (0..255) or float (0..1), found {dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return to_rgb(Image.fromarray(np.ascontiguousarray(array)))  # uint8 (H, W): L, (H, W, 3): RGB, (H, W, 4): RGBA


def to_rgb(image: Image.Image) -> Image.Image:
    """The image in RGB: transparency over white, 16-bit, 32-bit and float greyscale scaled to 8 bits, the rest converted."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _high_depth_to_rgb(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    """Greyscale of more than 8 bits scaled to 8 (16-bit by its full range, 32-bit and float by their own),
    since PIL's convert would clip it to white."""
    import numpy as np

    pixels = np.asarray(image, dtype=np.float64)
    low, high = (0.0, 65535.0) if image.mode.startswith("I;16") else (float(pixels.min()), float(pixels.max()))
    scaled = (pixels - low) * (255.0 / (high - low)) if high > low else np.zeros_like(pixels)
    return Image.fromarray(scaled.round().astype(np.uint8), mode="L").convert("RGB")
