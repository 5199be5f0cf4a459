"""The `file` describer: the texts someone else made (published captions, OCR text, retrieved passages), read from a
side file keyed by photo and looked up by name. Through it, precomputed texts are used as any describer's are."""
import hashlib
from pathlib import Path

from mmlabel.configs import Configured
from mmlabel.describers.configs import FileConfig
from mmlabel.data.side_file import read_side_file
from mmlabel.errors import DataError


class FileDescriber(Configured):
    """Looks each photo up by its file name in the side file `path`, then by the name's last part (a file that keys
    `1860693.jpg` serves a dataset naming `images/1860693.jpg`)."""

    Config = FileConfig

    def __init__(self, config: FileConfig | None = None, **options):
        super().__init__(config, **options)
        self.path = Path(self.config.path)
        self.texts = read_side_file(self.path, "image")
        by_base: dict[str, str] = {}
        for name, text in self.texts.items():
            by_base.setdefault(Path(name).name, text)
        self._by_base = by_base
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]  # another file's texts: another signature
        self.signature = f"file:{digest}:missing={self.config.missing}"

    def describe(self, images: list, names: list[str]) -> list[str]:
        return [self._text(name) for name in names]

    def _text(self, name: str) -> str:
        for candidate in (name, Path(name).name):
            found = self.texts.get(candidate, self._by_base.get(candidate))
            if found is not None:
                return " ".join(found.split())
        if self.config.missing == "empty":
            return ""
        raise DataError(f"no line for photo {name!r} (data.describer.missing = \"empty\" describes such photos as "
                        f"\"\")", self.path)
