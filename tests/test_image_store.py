"""The image store: each photo decoded once per geometry, content-addressed, noticed when it changes, never seen half
written, shared by concurrent processes; uint8 batches normalised on the device to what the float transform gave;
the fallback for encoders without `pixel_transform`; `train.workers = "auto"`."""
import hashlib
import multiprocessing
import os

import numpy as np
import pytest
import torch
from PIL import Image

from mmlabel.data.image_store import BLANK, DecodedImages, ImageStore, pixel_source
from mmlabel.data.images import ImageLoader
from mmlabel.errors import DataError

TINY_VIT = {"model": "vit_base_patch16_224", "pretrained": False,
            "model_args": {"img_size": 32, "patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2}}


def photo(path, seed: int, size=(50, 40)):
    """A random RGB JPEG of `size` at `path`."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return path


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for index in range(4):
        photo(images / f"p{index}.jpg", index)
    return images


@pytest.fixture(scope="module")
def encoder():
    from mmlabel.image_encoders.timm_encoder import TimmImageEncoder

    torch.manual_seed(0)
    return TimmImageEncoder(**TINY_VIT).eval()


class CountingTransform:
    """The encoder's pixel transform, counting its calls (each one is a decoded photo)."""

    def __init__(self, transform):
        self.transform, self.calls = transform, 0

    def __call__(self, image):
        self.calls += 1
        return self.transform(image)


def store(folder, encoder, root, policy="error", transform=None):
    return ImageStore(ImageLoader(folder, policy), transform or encoder.pixel_transform, encoder.pixel_signature, root)


def test_each_photo_is_decoded_once_and_read_back_by_later_passes_and_processes(folder, encoder, tmp_path):
    names = ["p0.jpg", "p1.jpg", "p2.jpg", "p3.jpg", "p1.jpg", None]
    counting = CountingTransform(encoder.pixel_transform)
    first = store(folder, encoder, tmp_path / "cache", transform=counting)
    summary = first.prepare(names)
    assert (summary.photos, summary.decoded, summary.stored) == (4, 4, 0) and counting.calls == 4
    for _ in range(3):  # epochs
        pixels = [first.get(name) for name in names]
    assert counting.calls == 5  # and the blank image of the post without a photo, once
    assert first.prepare(names).photos == 0 and counting.calls == 5  # nothing left to settle, nothing decoded
    assert first.counts()["decoded"] == 4
    expected = encoder.pixel_transform(ImageLoader(folder).load("p2.jpg"))
    assert pixels[2].dtype == torch.uint8 and torch.equal(pixels[2], expected)
    again = store(folder, encoder, tmp_path / "cache", transform=counting)  # another run, same cache
    summary = again.prepare(names)
    assert (summary.decoded, summary.stored) == (0, 4) and counting.calls == 5
    assert torch.equal(again.get("p2.jpg"), expected)
    assert again.counts() | {"checked": 0} == {"checked": 0, "decoded": 0, "stored": 4, "blank": 0, "missing": 0,
                                               "unreadable": 0, "downscaled": 0}


def test_entries_are_named_by_content_and_kept_per_geometry(folder, encoder, tmp_path):
    (folder / "copy.jpg").write_bytes((folder / "p0.jpg").read_bytes())
    images = store(folder, encoder, tmp_path / "cache")
    summary = images.prepare(["p0.jpg", "copy.jpg", "p1.jpg"])
    assert (summary.decoded, summary.stored) == (2, 1)  # the copy found the entry of the same bytes
    sha = hashlib.sha256((folder / "p0.jpg").read_bytes()).hexdigest()
    assert images.identity("copy.jpg") == images.identity("p0.jpg") == sha
    assert images.entry_path(sha).is_file() and len(list(images.directory.glob("*/*.npy"))) == 2
    assert sha in (images.directory / "signature.txt").read_text() or "timm" in (images.directory /
                                                                                  "signature.txt").read_text()
    from mmlabel.image_encoders.timm_encoder import TimmImageEncoder

    squash = TimmImageEncoder(**TINY_VIT, resize="squash")
    assert squash.pixel_signature != encoder.pixel_signature
    other = store(folder, squash, tmp_path / "cache")
    assert other.directory != images.directory and other.prepare(["p0.jpg"]).decoded == 1


def test_a_changed_file_is_noticed_and_an_unchanged_one_is_not_hashed_again(folder, encoder, tmp_path, monkeypatch):
    root = tmp_path / "cache"
    before = store(folder, encoder, root)
    before.prepare(["p0.jpg", "p1.jpg"])
    old = before.get("p0.jpg")
    photo(folder / "p0.jpg", 99, size=(60, 30))  # new bytes, new size
    hashed = []
    real_sha256 = hashlib.sha256
    monkeypatch.setattr("mmlabel.data.image_store.hashlib.sha256",
                        lambda data=b"": hashed.append(data) or real_sha256(data))
    after = store(folder, encoder, root)
    summary = after.prepare(["p0.jpg", "p1.jpg"])
    assert (summary.decoded, summary.stored) == (1, 1)
    files = {(folder / name).read_bytes(): name for name in ("p0.jpg", "p1.jpg")}
    # p0.jpg hashed once; p1.jpg not at all: its size and mtime are those of the index, which answers for it
    assert [files[data] for data in hashed if data in files] == ["p0.jpg"]
    assert not torch.equal(after.get("p0.jpg"), old)
    assert torch.equal(after.get("p0.jpg"), encoder.pixel_transform(ImageLoader(folder).load("p0.jpg")))
    # the same size, a new mtime: hashed again, and the same bytes keep their entry
    os.utime(folder / "p1.jpg", ns=(1, 1))
    summary = store(folder, encoder, root).prepare(["p1.jpg"])
    assert (summary.decoded, summary.stored) == (0, 1)


def test_a_partial_entry_is_never_read_and_a_damaged_one_is_made_again(folder, encoder, tmp_path, monkeypatch):
    images = store(folder, encoder, tmp_path / "cache")
    sha0 = hashlib.sha256((folder / "p0.jpg").read_bytes()).hexdigest()
    sha1 = hashlib.sha256((folder / "p1.jpg").read_bytes()).hexdigest()
    # a writer killed before its rename left its temporary file; another entry was cut short (a power cut)
    images.entry_path(sha0).parent.mkdir(parents=True)
    (images.entry_path(sha0).parent / f".{sha0}.npy.abc123.tmp").write_bytes(b"\x93NUMPY half")
    images.entry_path(sha1).parent.mkdir(parents=True, exist_ok=True)
    images.entry_path(sha1).write_bytes(images.entry_path(sha1).name.encode()[:10])
    summary = images.prepare(["p0.jpg", "p1.jpg"])
    assert (summary.decoded, summary.stored) == (2, 0)
    for name in ("p0.jpg", "p1.jpg"):
        assert torch.equal(images.get(name), encoder.pixel_transform(ImageLoader(folder).load(name)))
    # a write that fails half-way leaves nothing under the entry's name
    def fail(handle, array, allow_pickle):
        handle.write(b"\x93NUMPY")
        raise OSError("disk full")

    monkeypatch.setattr("mmlabel.data.image_store.np.save", fail)
    with pytest.raises(OSError, match="disk full"):
        store(folder, encoder, tmp_path / "other").prepare(["p2.jpg"])
    assert not list((tmp_path / "other").glob("*/*/*.npy")) and not list((tmp_path / "other").glob("*/*/.*.tmp"))


def test_an_entry_removed_while_a_run_reads_it_is_made_again(folder, encoder, tmp_path):
    images = store(folder, encoder, tmp_path / "cache")
    images.prepare(["p0.jpg"])
    images.entry_path(images.identity("p0.jpg")).unlink()  # someone cleared the cache
    assert torch.equal(images.get("p0.jpg"), encoder.pixel_transform(ImageLoader(folder).load("p0.jpg")))


def _prepare_in_process(folder, root, barrier, queue):
    from mmlabel.image_encoders.timm_encoder import TimmImageEncoder

    encoder = TimmImageEncoder(**TINY_VIT)
    images = store(folder, encoder, root)
    barrier.wait()
    summary = images.prepare([f"p{index}.jpg" for index in range(4)])
    queue.put((summary.decoded + summary.stored, images.counts()["decoded"]))


@pytest.mark.system  # two processes at once: out of the quick loop
def test_two_processes_preparing_the_same_photos_at_once_both_succeed_with_identical_entries(folder, encoder,
                                                                                               tmp_path):
    context = multiprocessing.get_context("spawn")  # a forked child of a process with torch's threads can hang
    barrier, queue = context.Barrier(2), context.Queue()
    processes = [context.Process(target=_prepare_in_process, args=(folder, tmp_path / "cache", barrier, queue))
                 for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [process.exitcode for process in processes] == [0, 0]
    results = [queue.get(timeout=5) for _ in processes]
    assert [settled for settled, _ in results] == [4, 4]
    images = store(folder, encoder, tmp_path / "cache")
    assert images.prepare([f"p{index}.jpg" for index in range(4)]).decoded == 0
    for index in range(4):
        expected = encoder.pixel_transform(ImageLoader(folder).load(f"p{index}.jpg"))
        assert torch.equal(images.get(f"p{index}.jpg"), expected)
    assert not list((tmp_path / "cache").glob("*/*/.*.tmp"))


def test_missing_and_unreadable_photos_follow_the_policy_and_share_one_blank(folder, encoder, tmp_path):
    (folder / "broken.jpg").write_bytes(b"not a photo")
    names = ["p0.jpg", "gone.jpg", "broken.jpg", None]
    blank = store(folder, encoder, tmp_path / "cache", "blank")
    summary = blank.prepare(names)
    assert summary.missing == ["gone.jpg"] and [name for name, _ in summary.unreadable] == ["broken.jpg"]
    assert "not a readable image" in summary.unreadable[0][1] and "BytesIO" not in summary.unreadable[0][1]
    assert "1 missing (gone.jpg); 1 unreadable (broken.jpg: not a readable image" in summary.describe()
    assert blank.identity("gone.jpg") == blank.identity("broken.jpg") == blank.identity(None) == BLANK
    zeros = encoder.pixel_transform(Image.new("RGB", (224, 224)))
    assert torch.equal(blank.get("gone.jpg"), zeros) and torch.equal(blank.get("broken.jpg"), zeros)
    assert blank.counts() | {"checked": 0} == {"checked": 0, "decoded": 1, "stored": 0, "blank": 2, "missing": 1,
                                               "unreadable": 1, "downscaled": 0}
    strict = store(folder, encoder, tmp_path / "cache", "error")
    with pytest.raises(DataError) as error:
        strict.prepare(names)
    message = str(error.value)
    assert "1 of 3 images are missing (gone.jpg)" in message and "1 of 3 images are not readable (broken.jpg" in message
    assert "\n" not in message and strict.identity("p0.jpg") != BLANK  # the readable photo was stored meanwhile
    with pytest.raises(DataError, match="gone.jpg: image not found"):
        store(folder, encoder, tmp_path / "cache", "error").get("gone.jpg")


def test_batches_carry_uint8_pixels_that_the_encoder_normalises_to_the_float_transform(folder, encoder, tmp_path):
    from mmlabel.data.batches import Collator, TaggingDataset, make_loader
    from mmlabel.data.example import Example
    from mmlabel.registry import build

    scheme = build("tag_scheme", "bio", labels=["POS"])
    examples = [Example(str(i), ["a", "b"][: i % 2 + 1], f"p{i}.jpg") for i in range(4)]
    pixels = pixel_source(ImageLoader(folder), encoder, root=tmp_path / "cache")
    assert isinstance(pixels, ImageStore)
    pixels.prepare([example.image for example in examples])
    dataset = TaggingDataset(examples, scheme, pixels)
    collate = Collator(lambda words, max_tokens: _fake_tokenize(words), 10)
    batches = [batch for batch in make_loader(dataset, collate, 4, shuffle=False, seed=0)]
    in_workers = [batch for batch in make_loader(dataset, collate, 4, shuffle=False, seed=0, workers=1)]
    (batch,) = batches
    assert batch["pixel_values"].dtype == torch.uint8 and batch["pixel_values"].shape == (4, 3, 32, 32)
    assert torch.equal(in_workers[0]["pixel_values"], batch["pixel_values"])  # the store pickles into a worker
    order = batch["index"].tolist()
    floats = torch.stack([encoder.transform(ImageLoader(folder).load(examples[i].image)) for i in order])
    normalised = encoder.normalize(batch["pixel_values"])
    assert normalised.dtype == torch.float32 and (normalised - floats).abs().max() <= 1e-6
    with torch.no_grad():
        assert torch.allclose(encoder(batch["pixel_values"])[0], encoder(floats)[0], atol=1e-5)


def _fake_tokenize(words):
    rows, longest = len(words), max(map(len, words))
    mask = torch.tensor([[column < len(sentence) for column in range(longest)] for sentence in words])
    return {"input_ids": torch.ones(rows, longest + 2, dtype=torch.long),
            "attention_mask": torch.ones(rows, longest + 2, dtype=torch.long),
            "first_subword_index": torch.arange(1, longest + 1).repeat(rows, 1), "word_mask": mask}


@pytest.mark.parametrize("resize", ["crop", "squash"])
def test_device_normalisation_equals_the_old_float_transform(resize):
    from mmlabel.image_encoders.timm_encoder import TimmImageEncoder

    encoder = TimmImageEncoder(model="vit_base_patch16_224.orig_in21k", pretrained=False, resize=resize,
                               model_args={"depth": 1})
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in ((300, 500), (224, 224))]
    uint8 = torch.stack([encoder.pixel_transform(image) for image in images])
    floats = torch.stack([encoder.transform(image) for image in images])
    assert uint8.dtype == torch.uint8 and uint8.shape == floats.shape == (2, 3, 224, 224)
    assert (encoder.normalize(uint8) - floats).abs().max() <= 1e-6
    assert "resize" not in encoder.state_dict() and not any("pixel_" in key for key in encoder.state_dict())


def test_an_encoder_without_pixel_transform_decodes_with_its_transform_each_time(folder, tmp_path):
    class OldEncoder(torch.nn.Module):
        input_size = (3, 8, 8)

        def transform(self, image):
            return torch.from_numpy(np.asarray(image.resize((8, 8)), dtype=np.float32) / 255).permute(2, 0, 1)

    pixels = pixel_source(ImageLoader(folder, "blank"), OldEncoder(), root=tmp_path / "cache")
    assert isinstance(pixels, DecodedImages)
    assert pixels.get("p0.jpg").dtype == torch.float32 and pixels.identity("gone.jpg") == BLANK
    assert pixels.prepare(["p0.jpg", "gone.jpg"]).decoded == 0 and not (tmp_path / "cache").exists()


def test_a_frozen_encoders_feature_cache_reads_its_pixels_from_the_store(folder, encoder, tmp_path):
    from mmlabel.feature_cache import ImageFeatureCache

    (folder / "copy.jpg").write_bytes((folder / "p0.jpg").read_bytes())
    counting = CountingTransform(encoder.pixel_transform)
    pixels = store(folder, encoder, tmp_path / "cache", "blank", transform=counting)
    cache = ImageFeatureCache(encoder, pixels, torch.device("cpu"))
    cache.fill(["p0.jpg", "copy.jpg", "p1.jpg", None, "gone.jpg"])
    assert len(cache) == 3  # p0 and its copy share one entry, the absent ones the blank
    assert counting.calls == 3  # two photos and the blank, decoded once
    with torch.no_grad():
        expected = encoder(encoder.transform(ImageLoader(folder).load("p1.jpg"))[None])[0][0]
    assert torch.allclose(cache.get("p1.jpg")[0], expected, atol=1e-5)


def test_workers_auto_is_none_on_a_cpu_and_a_share_of_the_cores_beside_a_gpu(monkeypatch):
    from mmlabel.data.batches import loader_workers
    from mmlabel.recipe import load_recipe

    assert loader_workers("auto", "cpu") == 0 and loader_workers(3, "cpu") == 3
    monkeypatch.setattr("mmlabel.threads.available_cores", lambda: 32)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert loader_workers("auto", "cuda") == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert loader_workers("auto", "cuda:0") == 3
    monkeypatch.setattr("mmlabel.threads.available_cores", lambda: 2)
    assert loader_workers("auto", torch.device("cuda")) == 1
    assert load_recipe("recipes/dtca.toml", resolve=False).train.workers == "auto"
    assert load_recipe("recipes/dtca.toml", ["train.workers=2"], resolve=False).train.workers == 2
