"""Images: tweet image names resolved against an image directory and opened only when an example needs them.

`missing_image = "error"` (the default) stops on a missing or unreadable image, naming the file and how many are
missing; `"blank"` substitutes a blank RGB image and counts it (`ImageLoader.counts()`, for the run's log).
Truncated JPEGs load as far as they go; every mode becomes RGB; images over `max_pixels` are decoded at a reduced
scale where the format allows it (JPEG) and refused otherwise, before any pixel is read.
"""
import warnings
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from mmlabel.errors import DataError

POLICIES = ("error", "blank")
MAX_PIXELS = 50_000_000
BLANK_SIZE = (224, 224)


class ImageLoader:
    """Loads an example's image by file name from `image_dir`, applying the missing-image policy and counting."""

    def __init__(self, image_dir: str | Path, policy: str = "error", max_pixels: int = MAX_PIXELS,
                 blank_size: tuple[int, int] = BLANK_SIZE):
        if policy not in POLICIES:
            raise ValueError(f"missing_image must be one of {POLICIES}, not {policy!r}")
        self.image_dir = Path(image_dir)
        self.policy = policy
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
            raise DataError(f"{len(missing)} of {len(wanted)} images are missing ({examples}); "
                            f"set data.missing_image = \"blank\" to use blank images instead", self.image_dir)
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
            return self._refuse(name, f"image not found ({len(self.missing)} missing so far)")
        try:
            image = self._open(path)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            self.unreadable += 1
            return self._refuse(name, f"not a readable image ({type(error).__name__}: {error})")
        self.loaded += 1
        return image

    def counts(self) -> dict[str, int]:
        """What the loader did so far, for the run's log: the images checked up front and missing (of those and of
        any loaded later), and what this process loaded, blanked, found unreadable and downscaled."""
        return {"checked": len(self.checked), "loaded": self.loaded, "blank": self.blank, "missing": len(self.missing),
                "unreadable": self.unreadable, "downscaled": self.downscaled}

    def _open(self, path: Path) -> Image.Image:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                image = Image.open(path)
            except Image.DecompressionBombError as error:
                raise ValueError(f"too large: {error}") from None
            self._limit_size(image)
            with _truncated_images_allowed():
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

    def _refuse(self, name: str, reason: str) -> Image.Image:
        if self.policy == "error":
            raise DataError(f"{reason}; set data.missing_image = \"blank\" to use blank images instead", self.path(name))
        return self._blank()

    def _blank(self) -> Image.Image:
        self.blank += 1
        return Image.new("RGB", self.blank_size)


@contextmanager
def _truncated_images_allowed():
    """Tweet photos are often cut short by the crawl; decoding what is there beats losing the example. PIL has only
    a module-wide switch for it, so it is turned on for this decoding alone and restored: a program that imports
    mmlabel keeps its own setting."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


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
