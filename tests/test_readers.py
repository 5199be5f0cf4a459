"""Readers: every format reads, writes and round-trips; bad input stops with file and line (or is skipped);
the merge policy for records of one post; and the real data in every format."""
import json
import re

import pytest

from data_paths import DATA_DIR, REAL_SETS, REPO_ROOT, realdata
from mmlabel.data.convert import convert, read_dataset
from mmlabel.data.example import Example, Span
from mmlabel.errors import DataError
from mmlabel.readers import READERS
from mmlabel.registry import build, components, get

DOCS = REPO_ROOT / "docs"

JML = """RT @ fan : $T$ is great # MCM
Chuck Bass
1
1860693.jpg
RT @ fan : Chuck Bass is great $T$
# MCM
0
1860693.jpg
$T$ closed today
Central Park
-1
22.jpg
"""

# One good post of the `json` format.
POST = ('{"words": ["Chuck", "rocks"], "image_id": "1.jpg", "aspects": [{"from": 0, "to": 1, "polarity": "POS", '
        '"term": ["Chuck"]}], "opinions": []}')
# (format, file name, content, line of the error, words of the message)
BAD_INPUTS = [
    ("jml", "train.txt", "no placeholder here\nasp\n1\na.jpg\n", 1, "expected one $T$ in the sentence, found none"),
    ("jml", "train.txt", "$T$ is here\nasp\n2\na.jpg\n", 3, "sentiment must be -1, 0 or 1, found '2'"),
    ("jml", "train.txt", "$T$ is here\nasp\n1\na.jpg\n$T$ again\nasp\n1\n", 7, "7 lines is not a multiple of four"),
    ("jml", "train.txt", "$T$ ok\nasp\n1\na.jpg\n$T$ caf\xff\nasp\n1\nb.jpg\n", 5, "invalid UTF-8 byte 0xff"),
    ("jml", "train.txt", "$T$ ok\nasp\n1\na.jpg\n   \nasp\n1\nb.jpg\n", 5, "empty sentence"),
    ("tsv", "train.tsv", "index\t#1 Label\t#2 ImageID\t#3 String\t#3 String\n1\t5\ta.jpg\t$T$ x\tasp\n", 2, "label must be 0, 1 or 2"),
    ("conll", "train.txt", "IMGID:1\nChuck\tB-POS\nBass\tX-POS\n", 3, "unknown tag 'X-POS'"),
    ("conll", "train.txt", "IMGID:1\nok\tO\n\nIMGID:2\n\nIMGID:3\nfine\tO\n", 4, "empty sentence"),
    ("jsonl", "train.jsonl", '{"id": "a", "tokens": ["x"], "image": null, "spans": []}\n{"id": "b", "tokens": [\n', 2, "not valid JSON"),
    ("jsonl", "train.jsonl", '{"id": "a", "tokens": [], "image": null, "spans": []}\n', 1, "empty sentence"),
    ("json", "train.json", f'[\n{POST},\n{{"words": ["x",\n', 4, "item [1]: not valid JSON"),
    ("json", "train.json", f'[\n{POST},\n{{"words": ["x"], "image_id": "2.jpg", "aspects": [{{"from": 0, "to": 2, '
                           f'"polarity": "NEG"}}]}}\n]\n', 3, "item [1]: aspect from=0 to=2 is outside the sentence's 1 words"),
    ("json", "train.json", f'[{POST}, {{"words": ["x"], "aspects": []}}]', 1, "item [1]: missing key 'image_id'"),
    ("json", "train.json", '[{"words": ["x"], "image_id": "a.jpg", "aspects": [{"from": 0, "to": 1}]}]', 1,
     "item [0]: aspect {'from': 0, 'to': 1} is missing key 'polarity'"),
    ("json", "train.json", '[{"words": ["x"], "image_id": "a.jpg", "aspects": [{"from": 0, "to": 1, "polarity": "1"}]}]',
     1, "polarity must be POS, NEU or NEG (or positive, neutral, negative), found '1'"),
    # `to` written inclusive, as a file from another convention would have it: the term gives it away.
    ("json", "train.json", '[{"words": ["Chuck", "Bass", "rocks"], "image_id": "a.jpg", "aspects": [{"from": 0, "to": 1, '
                           '"polarity": "POS", "term": ["Chuck", "Bass"]}]}]', 1, "is not the words from=0 to=1 cover"),
    ("json", "train.json", f'[\n{POST},\n{{"words": ["caf\xff"], "image_id": "2.jpg", "aspects": []}}\n]', 3,
     "item [1]: invalid UTF-8 byte 0xff at column 16"),
    ("json", "train.json", '{"words": ["x"], "image_id": "a.jpg", "aspects": []}', 1, "expected a JSON list of posts"),
]


def _write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8", errors="surrogateescape").replace(b"\xc3\xbf", b"\xff"))
    return path


def test_readers_are_registered_with_a_config_and_a_description():
    names = {component.name for component in components("dataset_reader")}
    assert set(READERS) <= names
    for name in READERS:
        component = get("dataset_reader", name)
        reader = build("dataset_reader", name)
        assert reader.name == name and component.config_class is not None and component.description
        assert type(reader).__doc__.strip().splitlines()[0]


def test_jml_merges_the_records_of_one_post(tmp_path):
    reader = build("dataset_reader", "jml")
    examples = reader.read(_write(tmp_path, "train.txt", JML))
    assert [example.id for example in examples] == ["1860693", "22"]
    first = examples[0]
    assert first.tokens == "RT @ fan : Chuck Bass is great # MCM".split() and first.image == "1860693.jpg"
    assert first.spans == [Span(4, 6, "POS"), Span(8, 10, "NEU")]
    assert examples[1].spans == [Span(0, 2, "NEG")]


def test_same_text_with_another_image_stays_apart_and_duplicates_merge(tmp_path):
    record = "$T$ is great\nParis\n1\n{image}\n"
    content = record.format(image="a.jpg") + record.format(image="a.jpg") + record.format(image="b.jpg")
    reader = build("dataset_reader", "jml")
    examples = reader.read(_write(tmp_path, "train.txt", content))
    assert [(example.image, example.spans) for example in examples] == [
        ("a.jpg", [Span(0, 1, "POS")]), ("b.jpg", [Span(0, 1, "POS")])]
    assert reader.duplicates == 1


def test_two_sentiments_for_one_aspect_is_a_bad_record(tmp_path):
    content = "$T$ is great\nParis\n1\na.jpg\n$T$ is great\nParis\n-1\na.jpg\n"
    with pytest.raises(DataError, match=r"train.txt:5: aspect 'Paris' is given sentiment NEG here and POS"):
        build("dataset_reader", "jml").read(_write(tmp_path, "train.txt", content))


@pytest.mark.parametrize("format_name, file_name, content, line, message", BAD_INPUTS)
def test_bad_input_names_file_and_line(tmp_path, format_name, file_name, content, line, message):
    path = _write(tmp_path, file_name, content)
    with pytest.raises(DataError) as caught:
        build("dataset_reader", format_name).read(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert message in str(caught.value)


@pytest.mark.parametrize("format_name, file_name, content, line, message", BAD_INPUTS)
def test_skip_policy_keeps_the_good_records_and_lists_the_bad(tmp_path, format_name, file_name, content, line, message):
    path = _write(tmp_path, file_name, content)
    reader = build("dataset_reader", format_name)
    reader.read(path, on_bad_example="skip")
    assert [(bad.path, bad.line) for bad in reader.skipped] == [(path, line)]
    assert message in reader.skipped[0].reason


def test_skip_policy_returns_the_good_examples(tmp_path):
    content = "$T$ ok\nasp\n1\na.jpg\n$T$ bad\nasp\n7\nb.jpg\n$T$ fine\nother\n0\nc.jpg\n"
    reader = build("dataset_reader", "jml")
    examples = reader.read(_write(tmp_path, "train.txt", content), on_bad_example="skip")
    assert [example.image for example in examples] == ["a.jpg", "c.jpg"]
    assert str(reader.skipped[0]).endswith("train.txt:7: sentiment must be -1, 0 or 1, found '7'")


def test_conll_reads_i_after_o_as_a_new_span_like_conlleval(tmp_path):
    content = "IMGID:9\nthe\tO\nWhite\tI-LOC\nHouse\tI-LOC\nObama\tI-PER\n"
    [example] = build("dataset_reader", "conll").read(_write(tmp_path, "test.txt", content))
    assert example.image == "9.jpg" and example.spans == [Span(1, 3, "LOC"), Span(3, 4, "PER")]


EXAMPLES = [
    Example("p1", ["Chuck", "Bass", "loves", "Café", "Nervosa", "!"], "p1.jpg", [Span(0, 2, "POS"), Span(3, 5, "NEG")]),
    Example("p2", ["$", "rain", "in", "Paris"], "p2.png", [Span(3, 4, "NEU")]),
]


@pytest.mark.parametrize("format_name", sorted(READERS))
def test_write_then_read_keeps_words_spans_and_images(tmp_path, format_name):
    reader = build("dataset_reader", format_name)
    path = tmp_path / f"train{reader.suffix}"
    reader.write(EXAMPLES, path)
    again = reader.read(path)
    assert [(e.tokens, e.image, e.spans) for e in again] == [(e.tokens, e.image, e.spans) for e in EXAMPLES]
    assert [e.id for e in again] == ["p1", "p2"]


def test_jml_cannot_write_entities_or_sentences_without_aspects(tmp_path):
    with pytest.raises(DataError, match="not a sentiment"):
        build("dataset_reader", "jml").write([Example("x", ["Obama"], "x.jpg", [Span(0, 1, "PER")])], tmp_path / "a.txt")
    with pytest.raises(DataError, match="has no aspect"):
        build("dataset_reader", "tsv").write([Example("x", ["hi"], "x.jpg", [])], tmp_path / "a.tsv")


# As VLP-MABSA's conversion script writes them: one line, polarity of its own spelling or a long one, a placeholder
# opinion, and in this one a repeated aspect and two posts with the same image.
PUBLISHED = json.dumps([
    {"words": ["RT", "@", "fan", ":", "Chuck", "Bass", "is", "great", "#", "MCM"], "image_id": "1860693.jpg",
     "aspects": [{"from": 8, "to": 10, "polarity": "neutral", "term": ["#", "MCM"]},
                 {"from": 4, "to": 6, "polarity": "POS", "term": ["Chuck", "Bass"]},
                 {"from": 4, "to": 6, "polarity": "Positive", "term": ["Chuck", "Bass"]}],
     "opinions": [{"term": []}], "source": "ignored"},
    {"words": ["Central", "Park", "closed"], "image_id": "1860693.jpg",
     "aspects": [{"from": 0, "to": 2, "polarity": "negative", "term": ["Central", "Park"]}], "opinions": [{"term": []}]},
    {"words": ["no", "aspect", "here"], "image_id": None, "aspects": []},
])


def test_json_reads_the_published_layout(tmp_path):
    reader = build("dataset_reader", "json")
    examples = reader.read(_write(tmp_path, "train.json", PUBLISHED))
    assert [(e.id, e.image, e.spans) for e in examples] == [
        ("1860693", "1860693.jpg", [Span(4, 6, "POS"), Span(8, 10, "NEU")]),
        ("1860693-2", "1860693.jpg", [Span(0, 2, "NEG")]),
        ("3", None, []),
    ]
    assert examples[0].tokens[4:6] == ["Chuck", "Bass"] and reader.duplicates == 1


def test_json_writes_the_documented_layout(tmp_path):
    path = tmp_path / "test.json"
    build("dataset_reader", "json").write(EXAMPLES[:1], path)
    assert json.loads(path.read_text(encoding="utf-8")) == [{
        "words": ["Chuck", "Bass", "loves", "Café", "Nervosa", "!"], "image_id": "p1.jpg",
        "aspects": [{"from": 0, "to": 2, "polarity": "POS", "term": ["Chuck", "Bass"]},
                    {"from": 3, "to": 5, "polarity": "NEG", "term": ["Café", "Nervosa"]}],
        "opinions": []}]
    assert path.read_text(encoding="utf-8").count("\n") == 3  # one post per line between the brackets


def test_the_json_example_in_the_docs_reads_as_it_says(tmp_path):
    text = (DOCS / "data.md").read_text(encoding="utf-8")
    example = re.search(r"### The field's JSON format.*?```json\n(.*?)```", text, re.S).group(1)
    examples = build("dataset_reader", "json").read(_write(tmp_path, "train.json", example))
    assert [(e.id, e.image, e.spans) for e in examples] == [
        ("1860693", "1860693.jpg", [Span(4, 6, "POS"), Span(8, 10, "NEU")]), ("22", "22.jpg", [Span(0, 2, "NEG")])]


def test_json_cannot_write_entity_types(tmp_path):
    path = tmp_path / "train.json"
    with pytest.raises(DataError, match=rf"^{path}: cannot write as json: example 'x': label 'PER' is not a sentiment"):
        build("dataset_reader", "json").write([Example("x", ["Obama"], "x.jpg", [Span(0, 1, "PER")])], path)


def test_find_splits_maps_valid_to_dev_and_names_a_missing_root(tmp_path):
    for stem in ("train", "valid", "test"):
        (tmp_path / f"{stem}.txt").write_text("IMGID:1\nx\tO\n")
    assert build("dataset_reader", "conll").find_splits(tmp_path) == {
        "train": tmp_path / "train.txt", "dev": tmp_path / "valid.txt", "test": tmp_path / "test.txt"}
    with pytest.raises(DataError, match=r"nowhere: data directory not found"):
        build("dataset_reader", "jml").find_splits(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"no jsonl split files here \(expected train.jsonl"):
        build("dataset_reader", "jsonl").find_splits(tmp_path)


@realdata
@pytest.mark.realdata
@pytest.mark.parametrize("format_name, folder", REAL_SETS)
def test_real_data_reads_in_every_format(format_name, folder):
    _, splits, _ = read_dataset(DATA_DIR / folder, format_name)
    assert set(splits) == {"train", "dev", "test"}
    for examples in splits.values():
        assert len(examples) > 500
        assert all(example.tokens and example.image for example in examples)
        assert sum(len(example.spans) for example in examples) > len(examples)
        assert len({example.id for example in examples}) == len(examples)


@realdata
@pytest.mark.realdata
@pytest.mark.parametrize("year", ["twitter2015", "twitter2017"])
def test_real_jml_tsv_and_conll_agree(year):
    jml = read_dataset(DATA_DIR / "mabsa" / year, "jml")[1]["test"]
    tsv = read_dataset(DATA_DIR / "mabsa" / year, "tsv")[1]["test"]
    conll = read_dataset(DATA_DIR / "mabsa-conll" / year, "conll")[1]["test"]
    content = [(e.id, e.tokens, e.image, e.spans) for e in jml]
    assert content == [(e.id, e.tokens, e.image, e.spans) for e in tsv]
    assert content == [(e.id, e.tokens, e.image, e.spans) for e in conll]


@realdata
@pytest.mark.realdata
@pytest.mark.parametrize("year", ["twitter2015", "twitter2017"])
@pytest.mark.parametrize("via", ["conll", "jsonl", "tsv", "json"])
def test_real_jml_round_trips_through_other_formats(tmp_path, year, via):
    source = DATA_DIR / "mabsa" / year
    convert(source, tmp_path / via, "jml", via)
    convert(tmp_path / via, tmp_path / "back", via, "jml")
    original = read_dataset(source, "jml")[1]
    back = read_dataset(tmp_path / "back", "jml")[1]
    assert set(back) == set(original)
    for split in original:
        assert [(e.tokens, e.image, e.spans) for e in back[split]] == [(e.tokens, e.image, e.spans) for e in original[split]]
    if via == "json":  # one example per post, in order: the ids agree, so that `score` pairs them across formats
        converted = read_dataset(tmp_path / via, via)[1]
        assert all([e.id for e in converted[split]] == [e.id for e in original[split]] for split in original)
