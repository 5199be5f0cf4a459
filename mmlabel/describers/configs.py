"""The options of the built-in describers, importable without torch, transformers or pytesseract: a recipe's
`data.describer` section is checked against them without loading the describer."""
from typing import Literal

from pydantic import Field

from mmlabel.configs import ComponentConfig


class FileConfig(ComponentConfig):
    path: str  # the side file: JSON lines {"image": "<photo file name>", "context": "<text>"}
    missing: Literal["error", "empty"] = "error"  # a photo the file has no line for: stop, or describe it as ""


class OcrConfig(ComponentConfig):
    lang: str = "eng"  # Tesseract's language pack(s): "eng", "eng+deu" (`tesseract --list-langs`)
    psm: int = Field(3, ge=0, le=13)  # page segmentation mode: 3 automatic, 6 one block, 7 one line, 11 sparse text
    min_size: int = Field(384, ge=0)  # a photo whose shorter side is smaller is enlarged to it first (0: never):
    # Tesseract misses letters under about 20 pixels high, and tweets' small photos and thumbnails have them
    config: str = ""  # more Tesseract flags, passed as they are: "--oem 1 -c tessedit_char_whitelist=ABC"
    threads: int = Field(4, ge=1)  # Tesseract processes run at once on a batch


class HfConfig(ComponentConfig):
    checkpoint: str  # a hub name ("Salesforce/blip-image-captioning-base") or a local folder with its processor
    prompt: str = ""  # the text the caption starts from, for models that take one ("a photography of")
    max_new_tokens: int = Field(30, ge=1)
    batch_size: int = Field(8, ge=1)
    device: str = "auto"  # "auto": the first GPU where there is one, else the CPU
