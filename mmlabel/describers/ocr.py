"""The `ocr` describer: the words a photo shows, read by Tesseract through `pytesseract` (ITA, NAACL 2022, feeds
OCR text beside the sentence as one of its views). Needs the `describe` extra (`pip install 'mmlabel[describe]'`)
and Tesseract itself (Debian/Ubuntu: `apt-get install tesseract-ocr`)."""
from concurrent.futures import ThreadPoolExecutor

from mmlabel.configs import Configured
from mmlabel.describers.configs import OcrConfig
from mmlabel.errors import ComponentError


class OcrDescriber(Configured):
    """Tesseract's text of each photo, on one line. Small photos are enlarged first (`min_size`); batches run as
    `threads` Tesseract processes at once."""

    Config = OcrConfig

    def __init__(self, config: OcrConfig | None = None, **options):
        super().__init__(config, **options)
        self.pytesseract = _pytesseract()
        version = _tesseract_version(self.pytesseract)
        self.signature = (f"ocr:tesseract={version}:lang={self.config.lang}:psm={self.config.psm}:"
                          f"min_size={self.config.min_size}:config={self.config.config}")

    def describe(self, images: list, names: list[str]) -> list[str]:
        if len(images) <= 1 or self.config.threads == 1:
            return [self._read(image) for image in images]
        # Each call starts a Tesseract process; threads only wait on them.
        with ThreadPoolExecutor(min(self.config.threads, len(images))) as pool:
            return list(pool.map(self._read, images))

    def _read(self, image) -> str:
        image = _enlarged(image.convert("RGB"), self.config.min_size)
        flags = f"--psm {self.config.psm} {self.config.config}".strip()
        try:
            text = self.pytesseract.image_to_string(image, lang=self.config.lang, config=flags)
        except self.pytesseract.TesseractError as error:
            raise ComponentError(f"describer 'ocr': Tesseract failed: {' '.join(str(error.message).split())}") from None
        return " ".join(text.split())


def _enlarged(image, min_size: int):
    """`image` scaled up so that its shorter side is `min_size` (Lanczos), or as it is when it is that large."""
    from PIL import Image

    shorter = min(image.size)
    if not min_size or shorter >= min_size:
        return image
    scale = min_size / shorter
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)


def _pytesseract():
    try:
        import pytesseract
    except ImportError:
        raise ComponentError("describer 'ocr' needs pytesseract: pip install 'mmlabel[describe]' (and Tesseract: "
                             "apt-get install tesseract-ocr)") from None
    return pytesseract


def _tesseract_version(pytesseract) -> str:
    try:
        return str(pytesseract.get_tesseract_version())
    except pytesseract.TesseractNotFoundError:
        raise ComponentError("describer 'ocr' needs the tesseract program, which is not on PATH: apt-get install "
                             "tesseract-ocr (Debian/Ubuntu), brew install tesseract (macOS)") from None
