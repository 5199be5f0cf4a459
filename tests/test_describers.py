"""Describers (image -> text) and `mmlabel data describe`: the side file's format and errors, the `file` describer,
`ocr` against the real Tesseract (on the kit's photo and on the synthetic OCR variant, whose cue word it must read)
and its one-line errors, and the describe run: resumable after a kill, at most one line per photo, refusing a file
another describer began. The `hf` describer runs transformers' real pipeline on a random tiny BLIP in the
conformance kit (tests/test_contracts.py) and here through the command."""
import json
import shutil
import sys

import pytest

from conftest import registered, run_command
from mmlabel import hookimpl
from mmlabel.configs import ComponentConfig, Configured
from mmlabel.data.synth import cue_word, make_posts, write_synthetic
from mmlabel.data.side_file import read_side_file, resume
from mmlabel.errors import ComponentError, DataError
from mmlabel.registry import build
from mmlabel.testing.describers import kit_photos

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None,
                                     reason="tesseract is not installed (.ci/run installs Debian's tesseract-ocr)")


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- the side file ---------------------------------------------------------------------------------------------
def test_a_side_file_is_read_by_image_or_id_and_a_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "context.jsonl"
    path.write_text('{"image": "1.jpg", "context": "a dog"}\n\n{"image": "2.jpg", "context": ""}\n', encoding="utf-8")
    assert read_side_file(path) == {"1.jpg": "a dog", "2.jpg": ""}
    path.write_text('{"id": 7, "context": "x"}\n', encoding="utf-8")
    assert read_side_file(path, key="id") == {"7": "x"}
    path.write_text('{"image": "1.jpg", "context": "a"}\n{"image": "2.jpg", "text": "b"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"context\.jsonl:2: expected 'context' as a string, found None"):
        read_side_file(path)
    path.write_text('{"image": "1.jpg", "context": "a"}\n{"image": "1.jpg", "context": "b"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r":2: image '1.jpg' is given two different contexts"):
        read_side_file(path)
    with pytest.raises(DataError, match=r"expected the key 'image' \(a string\); keys found: 'id', 'context'"):
        path.write_text('{"id": "1", "context": "a"}\n', encoding="utf-8")
        read_side_file(path)


def test_resume_cuts_off_a_line_a_killed_run_left_half_written(tmp_path):
    path = tmp_path / "context.jsonl"
    path.write_bytes(b'{"image": "1.jpg", "context": "caf\xc3\xa9"}\n{"image": "2.jpg", "cont')
    assert resume(path) == {"1.jpg": "café"}
    assert path.read_bytes() == b'{"image": "1.jpg", "context": "caf\xc3\xa9"}\n'


# -- the file describer ----------------------------------------------------------------------------------------
def test_the_file_describer_looks_photos_up_by_name_then_by_base_name(tmp_path):
    path = tmp_path / "captions.jsonl"
    path.write_text('{"image": "1.jpg", "context": "a  red\\ndisc"}\n', encoding="utf-8")
    describer = build("describer", {"name": "file", "path": str(path)})
    assert describer.describe(kit_photos()[:2], ["1.jpg", "imgs/1.jpg"]) == ["a red disc", "a red disc"]
    with pytest.raises(DataError, match=r"captions\.jsonl: no line for photo '2.jpg' \(data.describer.missing"):
        describer.describe(kit_photos()[:1], ["2.jpg"])
    lenient = build("describer", {"name": "file", "path": str(path), "missing": "empty"})
    assert lenient.describe(kit_photos()[:1], ["2.jpg"]) == [""]
    assert lenient.signature != describer.signature


# -- ocr: the real Tesseract -----------------------------------------------------------------------------------
@needs_tesseract
def test_ocr_reads_the_word_of_a_photo_and_nothing_from_a_plain_one():
    texts = build("describer", "ocr").describe(kit_photos(), ["1.jpg", "2.jpg", "3.jpg"])
    assert texts == ["", "SALE", ""]


@needs_tesseract
def test_ocr_recovers_the_cue_word_of_most_photos_of_the_synthetic_ocr_variant(tmp_path):
    """The OCR variant writes the image's sentiment cue as a word: Tesseract must read it back on most photos (an
    exact match of the whole text), and the word must say the image-decided aspect's sentiment."""
    write_synthetic(tmp_path, train=16, dev=1, test=1, ocr_cue=True)
    posts = [post for post in make_posts(16, 13, "train") if post.image_aspect is not None]
    from mmlabel.data.synth import WORDS

    for post in posts:
        assert cue_word(post, 13) in WORDS[post.example.spans[post.image_aspect].label]
    from PIL import Image

    photos = [Image.open(tmp_path / "images" / post.example.image) for post in posts]
    texts = build("describer", "ocr").describe(photos, [post.example.image for post in posts])
    read = sum(text == cue_word(post, 13).upper() for text, post in zip(texts, posts))
    assert len(posts) >= 8 and read >= 0.75 * len(posts), list(zip(texts, [cue_word(p, 13) for p in posts]))


def test_ocr_without_tesseract_or_pytesseract_is_one_line_naming_what_to_install(monkeypatch):
    import pytesseract

    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    with pytest.raises(ComponentError, match=r"^describer 'ocr' needs the tesseract program, which is not on PATH: "
                                             r"apt-get install tesseract-ocr"):
        build("describer", "ocr")
    monkeypatch.setitem(sys.modules, "pytesseract", None)
    with pytest.raises(ComponentError, match=r"^describer 'ocr' needs pytesseract: pip install 'mmlabel\[describe\]'"):
        build("describer", "ocr")


@needs_tesseract
def test_ocr_with_a_language_tesseract_lacks_is_one_line():
    with pytest.raises(ComponentError, match=r"^describer 'ocr': Tesseract failed: .*xyz"):
        build("describer", {"name": "ocr", "lang": "xyz"}).describe(kit_photos()[:1], ["1.jpg"])


# -- mmlabel data describe ---------------------------------------------------------------------------------------
class CountingDescriber(Configured):
    """Describes a photo by its name and size; stops (as a kill would) once it has described `fail_after`."""

    class Config(ComponentConfig):
        fail_after: int = -1
        tag: str = "v1"

    calls: list[list[str]] = []

    def __init__(self, config=None, **options):
        super().__init__(config, **options)
        self.signature = f"counting:{self.config.tag}"

    def describe(self, images, names):
        done = sum(len(call) for call in CountingDescriber.calls)
        if 0 <= self.config.fail_after <= done:
            raise KeyboardInterrupt
        CountingDescriber.calls.append(list(names))
        return [f"{name} {image.width}x{image.height}\n" for image, name in zip(images, names)]


class CountingPlugin:
    @hookimpl
    def register_describers(self, register):
        register("counting", CountingDescriber)


@pytest.fixture
def counting(tmp_path):
    CountingDescriber.calls = []
    write_synthetic(tmp_path / "data", train=10, dev=3, test=3)
    (tmp_path / "data" / "images" / "dev-0001.png").unlink()  # a missing photo: no line, named in the summary
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[data]\nreader = "jml"\nroot = "{tmp_path / "data"}"\n', encoding="utf-8")
    with registered(CountingPlugin(), "counting-plugin"):
        yield recipe


def test_describe_writes_one_line_per_photo_and_resumes_after_a_kill(counting, tmp_path):
    out = tmp_path / "context.jsonl"
    code, _, _ = run_command("data", "describe", counting, "-d", "counting", "--set", "data.describer.fail_after=8",
                             "--batch-size", "4", "--out", out)
    assert code == 130  # Ctrl-C in the third batch
    assert [len(call) for call in CountingDescriber.calls] == [4, 4]
    assert json.loads((tmp_path / "context.jsonl.describer.json").read_text())["complete"] is False
    with out.open("a", encoding="utf-8") as handle:
        handle.write('{"image": "train-0009.png", "con')  # the kill cut a line short
    code, stdout, stderr = run_command("data", "describe", counting, "-d", "counting", "--batch-size", "4",
                                       "--out", out)
    assert code == 0, stderr
    assert "16 photos: 7 described, 8 already in the file, 0 with no text; 1 missing (dev-0001.png)" in stdout
    lines = _lines(out)
    names = [f"train-{index:04d}.png" for index in range(10)] + ["dev-0000.png", "dev-0002.png"] + [
        f"test-{index:04d}.png" for index in range(3)]
    assert [line["image"] for line in lines] == names  # each once, in the splits' order, none lost
    assert lines[0] == {"image": "train-0000.png", "context": "train-0000.png 64x64"}  # one line, as written
    assert sum(len(call) for call in CountingDescriber.calls) == 15  # nothing described twice
    record = json.loads((tmp_path / "context.jsonl.describer.json").read_text())
    assert record == {"describer": "counting-plugin:counting", "signature": "counting:v1", "complete": True,
                      "photos": 16, "missing": 1, "unreadable": 0}
    assert f"data.context={{path = \"{out}\", key = \"image\"}}" in stdout
    code, stdout, _ = run_command("data", "describe", counting, "-d", "counting", "--out", out)
    assert "0 described, 15 already in the file" in stdout and len(_lines(out)) == 15


def test_describe_refuses_a_file_another_describer_began_unless_restarted(counting, tmp_path):
    out = tmp_path / "context.jsonl"
    assert run_command("data", "describe", counting, "-d", "counting", "--out", out)[0] == 0
    code, _, stderr = run_command("data", "describe", counting, "-d", "counting", "--set", "data.describer.tag=v2",
                                  "--out", out)
    assert code == 2 and stderr.strip().splitlines() == [
        f"error: {out}: begun by describer 'counting-plugin:counting' with signature 'counting:v1', not "
        "'counting:v2'; give another --out, or --restart to describe every photo again"]
    code, stdout, _ = run_command("data", "describe", counting, "-d", "counting", "--set", "data.describer.tag=v2",
                                  "--out", out, "--restart")
    assert code == 0 and "15 described, 0 already" in stdout and len(_lines(out)) == 15
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text("", encoding="utf-8")
    code, _, stderr = run_command("data", "describe", counting, "-d", "counting", "--out", foreign)
    assert code == 2 and "was not written by mmlabel data describe" in stderr


def test_describe_defaults_to_a_file_in_the_cache_named_by_the_describer(counting, tmp_path, monkeypatch):
    monkeypatch.setenv("MMLABEL_CACHE", str(tmp_path / "cache"))
    code, stdout, stderr = run_command("data", "describe", counting, "-d", "counting")
    assert code == 0, stderr
    written = list((tmp_path / "cache" / "context").glob("data-*/counting-*.jsonl"))
    assert len(written) == 1 and f"side file: {written[0]}" in stdout and len(_lines(written[0])) == 15
    code, _, stderr = run_command("data", "describe", counting)
    assert code == 2 and "data.describer: the recipe names no describer; give --describer NAME" in stderr


def test_describe_with_the_hf_describer_runs_the_real_pipeline(counting, tmp_path):
    """A random tiny BLIP saved locally: transformers' own pipeline loads and runs it; the texts are strings, the
    same for the same photo, and a second run finds them all."""
    from mmlabel.testing.describers import save_tiny_blip

    model = save_tiny_blip(tmp_path / "blip", ["a photo of a red disc", "a grey picture"])
    out = tmp_path / "captions.jsonl"
    args = ("data", "describe", counting, "-d", "hf", "--set", f"data.describer.checkpoint={model}", "--set",
            "data.describer.max_new_tokens=4", "--set", "data.describer.device=cpu", "--out", out)
    code, stdout, stderr = run_command(*args)
    assert code == 0, stderr
    lines = _lines(out)
    assert len(lines) == 15 and all(isinstance(line["context"], str) for line in lines)
    assert "0 described, 15 already" in run_command(*args)[1]
    again = build("describer", {"name": "hf", "checkpoint": str(model), "max_new_tokens": 4, "device": "cpu"})
    from PIL import Image

    photo = Image.open(tmp_path / "data" / "images" / "train-0000.png")
    assert again.describe([photo], ["train-0000.png"]) == [lines[0]["context"]]
