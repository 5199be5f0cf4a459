"""Fuzzing every reader (hypothesis): whatever bytes a file holds, reading it returns examples or raises the
toolkit's own `DataError`, under both `on_bad_example` policies; never another exception."""
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmlabel.errors import DataError
from mmlabel.readers import READERS
from mmlabel.registry import build

# Pieces of each format, so that generated files get past the first check and into the deeper ones.
FRAGMENTS = ["$T$", "$T$'s", "\t", "\n", "\r\n", "\n\n", " ", "IMGID:", "IMGID:12.jpg", "B-POS", "I-NEU", "O", "B-",
             "-1", "0", "1", "2", "index\t#1 Label\t#2 ImageID\t#3 String\t#3 String", "a.jpg", "word", "é", "\x00",
             "\xff", '{"id": "a", "tokens": ["x", "y"], "image": null, "spans": [{"start": 0, "end": 1, "label": "P"}]}',
             "{", "}", "[", "]", '"tokens"', '"spans"', '"start"', ":", ",", "1e400", "NaN", "9" * 5000, "[" * 3000,
             "true", "null", '"\\ud800"',
             '{"words": ["x", "y"], "image_id": "a.jpg", "aspects": [{"from": 0, "to": 1, "polarity": "POS", "term": ["x"]}]}',
             '"words"', '"image_id"', '"aspects"', '"from"', '"to"', '"polarity"', '"term"', '"NEG"', '"positive"']
STRUCTURED = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(lambda parts: "".join(parts).encode("utf-8", "surrogatepass"))
RAW = st.binary(max_size=2000)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _read(format_name: str, content: bytes, policy: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"train{build('dataset_reader', format_name).suffix}"
        path.write_bytes(content)
        try:
            examples = build("dataset_reader", format_name).read(path, on_bad_example=policy)
        except DataError as error:
            assert str(error).startswith(str(path)), str(error)
            return
        assert all(example.tokens and all(isinstance(t, str) for t in example.tokens) for example in examples)


@pytest.mark.parametrize("policy", ["error", "skip"])
@pytest.mark.parametrize("format_name", sorted(READERS))
@FUZZ
@given(content=RAW)
def test_arbitrary_bytes_parse_or_raise_a_data_error(format_name, policy, content):
    _read(format_name, content, policy)


@pytest.mark.parametrize("policy", ["error", "skip"])
@pytest.mark.parametrize("format_name", sorted(READERS))
@FUZZ
@given(content=STRUCTURED)
def test_format_shaped_garbage_parses_or_raises_a_data_error(format_name, policy, content):
    _read(format_name, content, policy)


@pytest.mark.parametrize("format_name", sorted(READERS))
def test_an_unreadable_file_is_a_data_error(tmp_path, monkeypatch, format_name):
    path = tmp_path / f"train{build('dataset_reader', format_name).suffix}"
    path.write_text("x\n")
    monkeypatch.setattr(Path, "read_bytes", lambda self: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    with pytest.raises(DataError, match=rf"^{path}: cannot read: Permission denied$"):
        build("dataset_reader", format_name).read(path)
