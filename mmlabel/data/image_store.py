"""The image store: each photo decoded and resized for an image encoder's geometry once, kept on disk as uint8 pixels
and read back memory-mapped by every epoch, evaluation, seed, sweep cell and process that needs it again.

Decoding follows `ImageLoader` (EXIF orientation, RGB, truncated files, `max_pixels`, the missing-image policy); the
geometry is the encoder's `pixel_transform` (`contracts.ImageEncoderPixels`), the normalisation is left to the
encoder, on the device. Under `$MMLABEL_CACHE/images` (default `~/.cache/mmlabel/images`):

    <geometry>/signature.txt         the `pixel_signature` and decoding settings the folder's entries were made with
    <geometry>/<ab>/<sha256>.npy     (3, H, W) uint8 pixels of the photo whose file bytes hash to <sha256> (ab...)
    index/<folder>.json              per image folder: name -> [size, mtime_ns, sha256], so that an unchanged file
                                     is not hashed again; a file whose size or mtime changed is

`<geometry>` is a hash of the signature and the decoding settings, so another size, resize mode, interpolation or
crop gets a folder of its own. Entries are named by content: two files with the same bytes share one, and a changed
file gets a new one. An entry is written to a temporary file and renamed into place: readers (and other processes
preparing the same photos) never see a partial entry; one that cannot be read as (3, H, W) uint8 is decoded again.
"""
import hashlib
import io
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Callable

import numpy as np
import torch

from mmlabel.data.images import UNREADABLE, ImageLoader, unreadable_reason
from mmlabel.errors import DataError
from mmlabel.log import logger

BLANK = "blank"  # the key of a missing or unreadable photo under missing_image = "blank", and of no photo at all
DECODING = "mmlabel-decoding-1"  # bumped when ImageLoader's decoding changes what a photo's pixels are


# np.load parses a .npy header with ast.literal_eval, which CPython 3.11 does not make safe for threads parsing at once
# ("SystemError: AST constructor recursion depth mismatch", CPython gh-106905): `prepare` reads entries from several
# threads, so header parsing takes turns (it is microseconds; the mapping and the decoding stay parallel).
_NPY_HEADER = threading.Lock()

def cache_root() -> Path:
    """`$MMLABEL_CACHE/images`, by default `~/.cache/mmlabel/images`."""
    return Path(os.environ.get("MMLABEL_CACHE", Path.home() / ".cache" / "mmlabel")) / "images"


@dataclass
class PrepareSummary:
    """What `prepare` found among the photos it was given (distinct names)."""

    photos: int = 0
    decoded: int = 0  # entries this call decoded and wrote
    stored: int = 0  # photos whose entry was already there
    missing: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)

    def describe(self, shown: int = 3) -> str:
        """One line: the counts, then the first few missing and unreadable photos."""
        line = f"{self.photos} photos: {self.decoded} decoded, {self.stored} already stored"
        if self.missing:
            line += f"; {len(self.missing)} missing ({_first(self.missing, shown)})"
        if self.unreadable:
            line += f"; {len(self.unreadable)} unreadable ({_first([f'{n}: {r}' for n, r in self.unreadable], shown)})"
        return line


class ImageStore:
    """Uint8 pixels of the photos of `loader`'s folder at the geometry of `transform` (PIL RGB image ->
    (3, H, W) uint8 tensor), named by `signature`; the pixel source of an encoder with `pixel_transform`.

    `get(name)` decodes a photo the first time any process asks for it and reads the stored pixels after that;
    `prepare(names)` does the decoding up front, in threads. Picklable, for data-loader workers."""

    def __init__(self, loader: ImageLoader, transform: Callable, signature: str, root: str | Path | None = None,
                 threads: int | None = None):
        from mmlabel.threads import available_cores

        self.loader = loader
        self.transform = transform
        self.signature = signature
        self.root = Path(root) if root is not None else cache_root()
        settings = f"{signature}\nmax_pixels={loader.max_pixels}\n{DECODING}"
        self.settings = settings
        self.directory = self.root / hashlib.sha256(settings.encode()).hexdigest()[:16]
        self.threads = threads or min(8, available_cores())  # PIL decodes and resizes without the GIL
        self._keys: dict[str, str] = {}  # name -> sha256 or BLANK, settled by this process
        self._reasons: dict[str, str] = {}  # name -> why the file is not a readable image
        self._index: dict[str, list] | None = None  # name -> [size, mtime_ns, sha256], read on first use
        self._index_changed = 0  # records hashed since the index was last written
        self._index_saved = time.monotonic()
        self._blank: torch.Tensor | None = None
        self.decoded = self.stored = self.blank = self.unreadable = 0
        self._lock = threading.Lock()
        self._claims: dict[str, threading.Lock] = {}  # sha256 -> held while one thread makes its entry

    policy = property(lambda self: self.loader.policy)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_lock"], state["_claims"] = None, {}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- reading ---------------------------------------------------------------------------------------------
    def get(self, name: str | None) -> torch.Tensor:
        """(3, H, W) uint8 pixels of photo `name`; blank ones for no name, or a missing or unreadable file under
        "blank" (a `DataError` under "error")."""
        key = self.identity(name)
        if key == BLANK:
            return self.blank_pixels()
        pixels = self._read(key)
        if pixels is None:  # removed since, or damaged: make it again from the file
            with self._lock:
                self._keys.pop(name, None)
            key = self._settle(name)
            pixels = self.blank_pixels() if key == BLANK else self._read(key)
        return pixels

    def identity(self, name: str | None) -> str:
        """The photo's content key: the sha256 of its file, or BLANK. Photos with equal keys have equal pixels."""
        if not name:
            return BLANK
        key = self._keys.get(name)
        return key if key is not None else self._settle(name)

    def blank_pixels(self) -> torch.Tensor:
        """The pixels of the blank image that stands in for a missing one."""
        if self._blank is None:
            from PIL import Image

            self._blank = self._pixels(Image.new("RGB", self.loader.blank_size))
        return self._blank

    def digest(self, name: str) -> tuple[int, str] | None:
        """(size, sha256) of file `name` as this store last hashed it, or None if it has not."""
        found = self._load_index().get(name)
        return (found[0], found[2]) if found else None

    def entry_path(self, sha: str) -> Path:
        return self.directory / sha[:2] / f"{sha}.npy"

    def counts(self) -> dict[str, int]:
        """For the run's log: photos checked up front and missing (`ImageLoader.check`), entries this process
        decoded, photos found already stored, photos given blank pixels, unreadable and downscaled ones."""
        return {"checked": len(self.loader.checked), "decoded": self.decoded, "stored": self.stored,
                "blank": self.blank, "missing": len(self.loader.missing), "unreadable": self.unreadable,
                "downscaled": self.loader.downscaled}

    # -- preparing -------------------------------------------------------------------------------------------
    def prepare(self, names: list[str | None], progress: Callable[[int, int], None] | None = None) -> PrepareSummary:
        """Settle every named photo not settled yet: hash it (unless the index knows it unchanged) and decode it
        where the store has no entry, in threads; `progress(done, total)` after each. Returns what it found; under
        "error", missing or unreadable photos then raise one `DataError` naming the first few."""
        wanted = sorted({name for name in names if name} - set(self._keys))
        before = (self.decoded, self.stored)
        done = 0
        with ThreadPoolExecutor(self.threads, thread_name_prefix="mmlabel-images") as pool:
            futures = [pool.submit(self._settle_quietly, name) for name in wanted]
            for future in as_completed(futures):
                future.result()
                done += 1
                if progress is not None:
                    progress(done, len(wanted))
        self._save_index(force=len(wanted) > 1)
        summary = PrepareSummary(len(wanted), self.decoded - before[0], self.stored - before[1],
                                 [name for name in wanted if name in self.loader.missing],
                                 [(name, self._reasons[name]) for name in wanted if name in self._reasons])
        if self.policy == "error" and (summary.missing or summary.unreadable):
            raise DataError(_refusal(summary), self.loader.image_dir)
        return summary

    def _settle_quietly(self, name: str) -> None:
        try:
            self._settle(name)
        except DataError:
            pass  # recorded in _reasons; `prepare` raises once for all of them

    # -- one photo -------------------------------------------------------------------------------------------
    def _settle(self, name: str) -> str:
        """Make sure photo `name` has an entry (or is blank), counting what it took; returns its key."""
        path = self.loader.path(name)
        found = self._hash(name, path)
        if found is None:
            return self._missing(name)
        sha, data = found
        with self._claim(sha):
            if self._valid(sha):
                self._count("stored")
            else:
                if data is None:  # the index knew the file, but the store has no entry: read it now
                    try:
                        sha, data = self._read_file(name, path)
                    except OSError:
                        return self._missing(name)
                try:
                    pixels = self._pixels(self.loader.decode(io.BytesIO(data)))
                except UNREADABLE as error:
                    reason = unreadable_reason(error, name)
                    with self._lock:
                        self._reasons[name] = reason
                        self.unreadable += 1
                    return self._refuse(name, reason)
                self._write(sha, pixels.numpy())  # named by the bytes decoded, whatever the file holds by now
                self._count("decoded")
        with self._lock:
            self._keys[name] = sha
        return sha

    def _hash(self, name: str, path: Path) -> tuple[str, bytes | None] | None:
        """(sha256, the bytes where they were read) of the file, or None where there is none. The index answers
        for a file whose size and mtime are those it recorded."""
        try:
            stat = path.stat()
        except OSError:
            return None
        if not S_ISREG(stat.st_mode):
            return None
        known = self._load_index().get(name)
        if known and known[0] == stat.st_size and known[1] == stat.st_mtime_ns:
            return known[2], None
        try:
            return self._read_file(name, path)
        except OSError:
            return None

    def _read_file(self, name: str, path: Path) -> tuple[str, bytes]:
        """(sha256, bytes) of the file, recorded in the index with the size and mtime it had before it was read."""
        stat = path.stat()
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        self._remember(name, stat.st_size, stat.st_mtime_ns, sha)
        return sha, data

    def _pixels(self, image) -> torch.Tensor:
        pixels = self.transform(image)
        pixels = torch.as_tensor(np.asarray(pixels)) if not isinstance(pixels, torch.Tensor) else pixels
        if pixels.dtype != torch.uint8 or pixels.dim() != 3 or pixels.shape[0] != 3:
            raise ValueError(f"pixel_transform gave {tuple(pixels.shape)} {pixels.dtype}, not (3, H, W) uint8 "
                             f"({self.signature})")
        return pixels.contiguous()

    def _missing(self, name: str) -> str:
        with self._lock:
            self.loader.missing.add(name)
        return self._refuse(name, f"image not found ({len(self.loader.missing)} missing so far)")

    def _refuse(self, name: str, reason: str) -> str:
        if self.policy == "error":
            raise DataError(f"{reason}; set data.missing_image = \"blank\" to use blank images instead",
                            self.loader.path(name))
        with self._lock:
            self._keys[name] = BLANK
            self.blank += 1
        return BLANK

    def _count(self, what: str) -> None:
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)

    def _claim(self, sha: str) -> threading.Lock:
        """The lock of one entry, so that two names with the same bytes are decoded once."""
        with self._lock:
            return self._claims.setdefault(sha, threading.Lock())

    # -- entries ---------------------------------------------------------------------------------------------
    def _read(self, sha: str) -> torch.Tensor | None:
        """The entry's pixels, or None where it is absent or not (3, H, W) uint8 (damaged)."""
        array = self._map(sha)
        return torch.from_numpy(np.array(array)) if array is not None else None  # a copy: the map closes

    def _valid(self, sha: str) -> bool:
        return self._map(sha) is not None

    def _map(self, sha: str):
        try:
            with _NPY_HEADER:
                array = np.load(self.entry_path(sha), mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        return array if array.dtype == np.uint8 and array.ndim == 3 and array.shape[0] == 3 else None

    def _write(self, sha: str, array: np.ndarray) -> None:
        from mmlabel.atomic import atomic_path

        self._describe_folder()
        with atomic_path(self.entry_path(sha), durable=False) as temporary:
            with open(temporary, "wb") as handle:
                np.save(handle, array, allow_pickle=False)

    def _describe_folder(self) -> None:
        """`signature.txt`: what the folder's entries are, for a person looking at the cache."""
        described = self.directory / "signature.txt"
        if not described.exists():
            from mmlabel.atomic import atomic_path

            with atomic_path(described, durable=False) as temporary:
                temporary.write_text(self.settings + "\n", encoding="utf-8")

    # -- the index of hashed files ---------------------------------------------------------------------------
    def _index_path(self) -> Path:
        folder = str(self.loader.image_dir.resolve())
        return self.root / "index" / f"{hashlib.sha256(folder.encode()).hexdigest()[:16]}.json"

    def _load_index(self) -> dict[str, list]:
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = _read_index(self._index_path())
        return self._index

    def _remember(self, name: str, size: int, mtime_ns: int, sha: str) -> None:
        index = self._load_index()
        with self._lock:
            index[name] = [size, mtime_ns, sha]
            self._index_changed += 1

    def _save_index(self, force: bool = True) -> None:
        """Write the index, merged over what another process may have written since it was read (last writer wins
        a name both hashed: a stale record only costs a hash next time). Without `force` (a photo at a time, as a
        split of one post asks), only every 256 new records or 60 seconds: the whole index is rewritten each time."""
        due = force or self._index_changed >= 256 or time.monotonic() - self._index_saved >= 60
        if not self._index_changed or not due:
            return
        from mmlabel.atomic import write_text

        path = self._index_path()
        merged = {**_read_index(path), **self._load_index()}
        write_text(path, json.dumps({"folder": str(self.loader.image_dir.resolve()), "files": merged}))
        self._index_changed, self._index_saved = 0, time.monotonic()


class DecodedImages:
    """Pixels decoded from the file every time they are asked for, by a transform: for an image encoder without
    `pixel_transform` (its float `transform`: the contract before the image store), and for images already in
    memory and posts' own files (`Tagger.predict`, with the encoder's `pixel_transform` where it has one)."""

    def __init__(self, images, transform: Callable):
        self.images = images  # an ImageLoader, or anything with `load(name) -> PIL image`
        self.transform = transform

    policy = property(lambda self: getattr(self.images, "policy", "error"))

    def get(self, name: str | None) -> torch.Tensor:
        return self.transform(self.images.load(name))

    def identity(self, name: str | None) -> str:
        """Every absent image (no name, or no file under "blank") is BLANK; the others are their names."""
        if name and (self.policy != "blank" or not hasattr(self.images, "path") or self.images.path(name).is_file()):
            return name
        return BLANK

    def prepare(self, names: list[str | None], progress=None) -> PrepareSummary:
        """Nothing to decode ahead; the missing photos `ImageLoader.check` found among `names`."""
        wanted = {name for name in names if name}
        missing = sorted(wanted & set(getattr(self.images, "missing", ())))
        return PrepareSummary(len(wanted), missing=missing)

    def counts(self) -> dict[str, int]:
        return self.images.counts() if hasattr(self.images, "counts") else {}


def pixel_source(images, encoder, root: str | Path | None = None) -> "ImageStore | DecodedImages | None":
    """Where the pixels of `images` (an ImageLoader) come from for image encoder `encoder`: the image store where
    the encoder has `pixel_transform` and `pixel_signature`, else its `transform` on every access; None without
    images or encoder."""
    from mmlabel.contracts import stores_pixels

    if images is None or encoder is None:
        return None
    if stores_pixels(encoder):
        return ImageStore(images, encoder.pixel_transform, encoder.pixel_signature, root)
    return DecodedImages(images, encoder.transform)


def prepare_photos(pixels, names: list[str | None], console=None, announce: bool = True) -> PrepareSummary | None:
    """`pixels.prepare(names)` with a progress bar on `console` (rich, removed when done) and, with `announce`, a
    note in the `mmlabel` log saying what it did where it decoded anything or found photos missing or unreadable."""
    if not isinstance(pixels, ImageStore):
        return pixels.prepare(names) if pixels is not None else None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = console or Console(stderr=True)
    with Progress(TextColumn("[bold]photos"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as bar:  # a log file: no bar
        task = bar.add_task("photos", total=None)
        summary = pixels.prepare(names, lambda done, total: bar.update(task, completed=done, total=total))
    if announce and (summary.decoded or summary.missing or summary.unreadable):
        logger.info("image store %s: %s", pixels.directory, summary.describe())
    return summary


def _read_index(path: Path) -> dict[str, list]:
    """An index file's records; {} where it is absent or unreadable (it only saves hashing)."""
    try:
        files = json.loads(path.read_text(encoding="utf-8")).get("files", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {name: record for name, record in files.items() if isinstance(record, list) and len(record) == 3}


def _refusal(summary: PrepareSummary) -> str:
    parts = []
    if summary.missing:
        parts.append(f"{len(summary.missing)} of {summary.photos} images are missing ({_first(summary.missing)})")
    if summary.unreadable:
        named = _first([f"{name}: {reason}" for name, reason in summary.unreadable])
        parts.append(f"{len(summary.unreadable)} of {summary.photos} images are not readable ({named})")
    return "; ".join(parts) + "; set data.missing_image = \"blank\" to use blank images instead"


def _first(names: list[str], shown: int = 3) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")
