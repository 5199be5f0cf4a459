"""Broken images beyond test_images' cases: zero bytes, random bytes, any bytes at all (hypothesis), and the rarer
Pillow modes. Whatever the file holds, the loader returns an RGB image or follows the `missing_image` policy with a
`DataError` naming the file; never another exception."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mmlabel.data.images import ImageLoader, to_rgb
from mmlabel.errors import DataError

PNG_HEADER = b"\x89PNG\r\n\x1a\n"
JPEG_HEADER = b"\xff\xd8\xff\xe0"


@pytest.mark.parametrize("content", [b"", np.random.default_rng(1).bytes(4096), PNG_HEADER, JPEG_HEADER + b"\x00" * 64],
                         ids=["zero-bytes", "random-bytes", "png-header-only", "jpeg-header-only"])
def test_an_unreadable_file_follows_the_policy_naming_the_file(tmp_path, content):
    (tmp_path / "broken.jpg").write_bytes(content)
    with pytest.raises(DataError, match=r"broken.jpg"):
        ImageLoader(tmp_path, "error").load("broken.jpg")
    loader = ImageLoader(tmp_path, "blank")
    assert loader.load("broken.jpg").mode == "RGB" and loader.counts()["unreadable"] == 1


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(st.binary(max_size=600), st.binary(max_size=600).map(lambda b: PNG_HEADER + b),
                         st.binary(max_size=600).map(lambda b: JPEG_HEADER + b)))
def test_any_bytes_load_as_rgb_or_raise_a_data_error(tmp_path, content):
    (tmp_path / "fuzz.png").write_bytes(content)
    try:
        image = ImageLoader(tmp_path, "error").load("fuzz.png")
    except DataError as error:
        assert "fuzz.png" in str(error)
    else:
        assert image.mode == "RGB"


@pytest.mark.parametrize("mode", ["I", "F", "I;16", "I;16B", "PA", "RGBX", "YCbCr", "LAB", "HSV"])
def test_rarer_modes_become_rgb(mode):
    image = Image.new("RGB", (4, 4), (200, 100, 50))
    image = image.convert(mode) if mode not in ("I;16", "I;16B") else image.convert("L").convert("I").convert(mode)
    converted = to_rgb(image)
    assert converted.mode == "RGB" and converted.size == (4, 4)
