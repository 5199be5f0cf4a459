"""Image loading: the missing-image policy, broken and truncated files, colour modes and huge images."""
import numpy as np
import pytest
from PIL import Image

from mmlabel.data.images import ImageLoader, to_rgb
from mmlabel.errors import DataError


@pytest.fixture
def image_dir(tmp_path):
    Image.new("RGB", (40, 30), (10, 200, 30)).save(tmp_path / "ok.png")
    buffer = tmp_path / "full.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, quality=90)
    (tmp_path / "truncated.jpg").write_bytes(buffer.read_bytes()[: buffer.stat().st_size // 2])
    (tmp_path / "notes.jpg").write_text("this is not an image")
    return tmp_path


def test_missing_images_stop_with_name_and_count_under_error(image_dir):
    loader = ImageLoader(image_dir, "error")
    with pytest.raises(DataError, match=r"2 of 3 images are missing \(a.jpg, b.jpg\)"):
        loader.check(["ok.png", "a.jpg", "b.jpg", None, "a.jpg"])
    with pytest.raises(DataError, match=r"a.jpg: image not found"):
        loader.load("a.jpg")


def test_missing_images_become_blank_and_are_counted_under_blank(image_dir):
    loader = ImageLoader(image_dir, "blank", blank_size=(8, 8))
    assert loader.check(["ok.png", "a.jpg", "b.jpg"]) == 2
    image = loader.load("a.jpg")
    assert image.mode == "RGB" and image.size == (8, 8) and image.getextrema() == ((0, 0),) * 3
    assert loader.load("ok.png").size == (40, 30)
    assert loader.counts() == {"checked": 3, "loaded": 1, "blank": 1, "missing": 2, "unreadable": 0, "downscaled": 0}


def test_truncated_jpeg_loads(image_dir):
    image = ImageLoader(image_dir).load("truncated.jpg")
    assert image.size == (64, 64) and image.mode == "RGB"


def test_a_non_image_follows_the_policy_with_its_own_message(image_dir):
    with pytest.raises(DataError, match=r"notes.jpg: not a readable image"):
        ImageLoader(image_dir, "error").load("notes.jpg")
    loader = ImageLoader(image_dir, "blank")
    assert loader.load("notes.jpg").mode == "RGB"
    assert loader.counts()["unreadable"] == 1 and loader.counts()["blank"] == 1


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "P", "LA", "1"])
def test_every_mode_becomes_rgb(mode):
    image = Image.new("RGB", (4, 4), (200, 100, 50)).convert(mode)
    converted = to_rgb(image)
    assert converted.mode == "RGB" and converted.size == (4, 4)


def test_sixteen_bit_greyscale_keeps_its_range_instead_of_clipping():
    pixels = np.array([[0, 32896], [65535, 65535]], dtype=np.uint16)
    converted = to_rgb(Image.fromarray(pixels))
    assert np.asarray(converted)[:, :, 0].tolist() == [[0, 128], [255, 255]]


def test_transparent_pixels_go_over_white():
    image = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    assert to_rgb(image).getpixel((0, 0)) == (255, 255, 255)


def test_huge_jpeg_is_decoded_at_a_reduced_scale(tmp_path):
    Image.new("RGB", (400, 300), (0, 0, 255)).save(tmp_path / "big.jpg")
    loader = ImageLoader(tmp_path, max_pixels=20_000)
    image = loader.load("big.jpg")
    assert image.size[0] * image.size[1] <= 20_000 and loader.counts()["downscaled"] == 1


def test_huge_image_of_another_format_is_refused_before_decoding(tmp_path):
    Image.new("RGB", (400, 300)).save(tmp_path / "big.png")
    with pytest.raises(DataError, match=r"big.png: not a readable image .*400x300 pixels is over the limit of 20,000"):
        ImageLoader(tmp_path, max_pixels=20_000).load("big.png")
    assert ImageLoader(tmp_path, "blank", max_pixels=20_000).load("big.png").mode == "RGB"
