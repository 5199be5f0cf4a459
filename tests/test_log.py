"""What mmlabel tells its user besides results: the `mmlabel` logger and `MMLabelWarning`s, which a library user
can filter and the command line shows on stderr one line each; library calls that printed now log or warn."""
import logging
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, run_cli
from mmlabel.log import MMLabelNote, MMLabelWarning, command_line_output, logger, warn


def test_the_command_line_shows_the_log_and_mmlabels_warnings_a_line_each(capsys):
    others = []
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, category, *where: others.append((category, str(message)))
        with command_line_output():
            logger.info("the image store is ready")
            logger.debug("not shown unless --debug")
            warn("a plugin is skipped")
            warn("options dropped", MMLabelNote)
            try:
                raise ValueError("boom")
            except ValueError:
                logger.exception("a batch failed")
            warnings.warn("another library's warning", UserWarning)
    assert others == [(UserWarning, "another library's warning")]  # shown as the program shows warnings
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[:5] == ["the image store is ready", "warning: a plugin is skipped", "note: options dropped",
                         "error: a batch failed", "Traceback (most recent call last):"]
    assert "ValueError: boom" in err and "not shown" not in err
    # nothing stays installed: a program that imports mmlabel keeps its own logging and warnings
    assert logger.handlers == [] and logger.level == logging.NOTSET
    with pytest.warns(MMLabelWarning, match="^quiet$"):
        warn("quiet")
    assert capsys.readouterr().err == ""


def test_debug_shows_the_debug_records(capsys):
    with command_line_output(debug=True):
        logger.debug("the batch holds 3 posts")
    assert capsys.readouterr().err == "the batch holds 3 posts\n"


def test_a_library_user_can_filter_mmlabels_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=MMLabelWarning)
        warn("a plugin is skipped")
        warn("options dropped", MMLabelNote)
        with pytest.raises(UserWarning):
            warnings.warn("not mmlabel's", UserWarning)


def test_a_recipe_swap_note_is_a_warning_and_a_note_line_on_the_command_line(capsys):
    from mmlabel.recipe import load_recipe

    with pytest.warns(MMLabelNote, match=r"--set fusion_head.name=concat drops fusion_head.heads from the file"):
        load_recipe(REPO / "recipes" / "quickstart.toml", ["fusion_head.name=concat"])
    assert capsys.readouterr().err == ""  # the library prints nothing
    result = run_cli("recipe", "check", "recipes/quickstart.toml", "--set", "fusion_head.name=concat")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "note: recipes/quickstart.toml: --set fusion_head.name=concat drops fusion_head.heads from "
        "the file (fusion_head 'concat' does not define it)"]


def test_preparing_photos_logs_what_it_did_and_prints_nothing(tmp_path, caplog, capsys):
    from mmlabel.data.image_store import ImageStore, prepare_photos
    from mmlabel.data.images import ImageLoader

    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(2):
        Image.new("RGB", (20, 10), (index * 90, 40, 200)).save(folder / f"p{index}.png")

    def pixels(image):  # (3, 8, 8) uint8: a pixel transform as an image encoder gives one
        return torch.from_numpy(np.array(image.resize((8, 8)))).permute(2, 0, 1).contiguous()

    store = ImageStore(ImageLoader(folder, "blank"), pixels, "test 8x8", tmp_path / "cache")
    caplog.set_level(logging.INFO, logger="mmlabel")
    prepare_photos(store, ["p0.png", "p1.png", "absent.png"])
    notes = [record.getMessage() for record in caplog.records if record.name == "mmlabel"]
    assert notes == [f"image store {store.directory}: 3 photos: 2 decoded, 0 already stored; 1 missing (absent.png)"]
    assert "image store" not in capsys.readouterr().err
