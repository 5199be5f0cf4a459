"""The prediction API: `Tagger.predict` for posts (raw text or words; an image file, a decoded image or none; one
post or many) and `Tagger.predict_split` for a split's examples, sharded as data-parallel evaluation shares them."""
import json
import warnings

import pytest
from PIL import Image

from mmlabel.data.example import Span
from mmlabel.data.images import ImageLoader
from mmlabel.errors import DataError
from mmlabel.log import MMLabelWarning
from mmlabel.tagger import Post, Prediction, Tagger


def glued(tokens: list[str]) -> str:
    """A synthetic post as typed: punctuation glued to the words (the run's tokenizer splits it off again)."""
    return " ".join(tokens).replace(" ,", ",").replace(" !", "!").replace("@ ", "@").replace(" :", ":")


@pytest.fixture(scope="module")
def tagger(quickstart_run):
    return Tagger.load(quickstart_run[0], device="cpu")


@pytest.fixture(scope="module")
def stored(quickstart_run):
    """The run's test predictions, made by the trainer's evaluation (`predict_split`, photos from the image store)."""
    lines = (quickstart_run[0] / "predictions-test.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert sum(bool(record["spans"]) for record in records) >= 3  # comparisons of spans below can fail
    return records


def as_dicts(spans: list[Span]) -> list[dict]:
    return [{"start": span.start, "end": span.end, "label": span.label} for span in spans]


def test_posts_one_or_many_path_or_decoded_image_predict_as_the_run_did(tagger, stored, synthetic):
    paths = [synthetic / "images" / record["image"] for record in stored]
    found = tagger.predict([Post(record["tokens"], path) for record, path in zip(stored, paths)])
    assert all(isinstance(prediction, Prediction) for prediction in found)
    assert [as_dicts(prediction.spans) for prediction in found] == [record["spans"] for record in stored]
    assert [prediction.words for prediction in found] == [record["tokens"] for record in stored]
    assert all(prediction.attention is None for prediction in found)
    for record, path in list(zip(stored, paths))[:4]:  # the single-post form: a list of Span
        assert as_dicts(tagger.predict(record["tokens"], image=path)) == record["spans"]
        assert as_dicts(tagger.predict(record["tokens"], image=str(path))) == record["spans"]
        assert as_dicts(tagger.predict(Post(record["tokens"], Image.open(path)))) == record["spans"]


def test_raw_text_is_split_by_the_runs_tokenizer_and_its_spans_carry_offsets(tagger, stored, synthetic):
    record = next(record for record in stored if record["spans"])
    text, image = glued(record["tokens"]), synthetic / "images" / record["image"]
    found = tagger.predict([Post(text, image), Post(record["tokens"], image)])
    assert found[0].words == found[1].words == record["tokens"]
    assert found[0].spans == found[1].spans and as_dicts(found[0].spans) == record["spans"]
    for span in found[0].spans:
        covered = text[span.start_char:span.end_char]
        assert covered.replace(" ", "") == "".join(record["tokens"][span.start:span.end])
        assert covered == covered.strip()
    assert all(span.start_char is None for span in found[1].spans)  # words given: no text to point into
    assert tagger.predict(text, image=image) == found[0].spans


def test_attention_comes_with_the_spans_of_one_post_or_many(tagger, stored, synthetic):
    record = next(record for record in stored if record["spans"])
    image = synthetic / "images" / record["image"]
    one = tagger.predict(record["tokens"], image=image, attention=True)
    assert isinstance(one, Prediction) and as_dicts(one.spans) == record["spans"]
    assert tuple(one.attention.shape) == (len(record["tokens"]), 65)  # 8 x 8 patches and the class token
    many = tagger.predict([Post(record["tokens"], image), Post([], image)], attention=True)
    assert many[0].spans == one.spans and many[0].attention.allclose(one.attention, atol=1e-6)
    assert many[1] == Prediction([], [], None)  # a post with no words: nothing to attend from


def test_a_post_without_an_image_warns_where_the_model_reads_images(tagger, text_only_run, stored):
    posts = [Post(stored[0]["tokens"]), Post(stored[1]["tokens"], Image.new("RGB", (64, 64)))]
    with pytest.warns(MMLabelWarning, match=r"^1 of 2 posts have no image: this model reads images, and sees a "
                                            r"blank one for it$") as caught:
        found = tagger.predict(posts)
    assert caught[0].filename == __file__  # attributed to the caller's line
    assert found[0].words == stored[0]["tokens"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Tagger.load(text_only_run[0], device="cpu").predict(posts)  # a text-only model reads no image: no warning


def test_an_image_as_path_bytes_pil_or_numpy_array_predicts_the_same(tagger, stored, synthetic):
    import numpy as np

    record = next(record for record in stored if record["spans"])
    path = synthetic / "images" / record["image"]
    pixels = np.asarray(Image.open(path).convert("RGB"))  # (H, W, 3) uint8
    forms = [path, str(path), path.read_bytes(), bytearray(path.read_bytes()), Image.open(path), pixels,
             pixels.astype(np.float32) / 255, np.dstack([pixels, np.full(pixels.shape[:2], 255, np.uint8)])]
    found = tagger.predict([Post(record["tokens"], image) for image in forms])
    assert [as_dicts(prediction.spans) for prediction in found] == [record["spans"]] * len(forms)
    grey = tagger.predict([Post(record["tokens"], pixels[:, :, 0]), Post(record["tokens"], pixels[:, :, :1])])
    assert grey[0] == grey[1]


@pytest.mark.parametrize("image, error, message", [
    (b"\x00" * 3, DataError, r"^post 0's image bytes: not a readable image .*; set missing_image=\"blank\""),
    ("array-(2, 2, 2)", ValueError, r"^post 0: an image array must be \(height, width\) .* found shape \(2, 2, 2\)"),
    ("array-float-2", ValueError, r"^post 0: a float image array must hold values in \[0, 1\] .* found 0\.\.2$"),
    ("array-int64", ValueError, r"^post 0: an image array must be uint8 \(0\.\.255\) or float \(0\.\.1\), found int64"),
    (3, TypeError, r"^post 0: an image is a file path, the file's bytes, a PIL image or a numpy array, found int$"),
])
def test_an_image_that_is_no_image_is_refused_naming_the_post(tagger, image, error, message):
    import numpy as np

    arrays = {"array-(2, 2, 2)": np.zeros((2, 2, 2), np.uint8), "array-float-2": np.linspace(0, 2, 12).reshape(2, 2, 3),
              "array-int64": np.zeros((2, 2, 3), np.int64)}
    with pytest.raises(error, match=message):
        tagger.predict([Post(["a", "fine", "day"], arrays.get(image, image) if isinstance(image, str) else image)])


def test_a_truncated_image_follows_the_missing_image_policy_naming_the_file(quickstart_run, stored, synthetic,
                                                                            tmp_path):
    """A photo given to predict on must be whole: cut short, it is an error naming it under the run's policy
    ("error"), and a blank image with a warning naming it under "blank" (the dataset loader instead decodes
    a crawl-cut photo as far as it goes)."""
    record = next(record for record in stored if record["spans"])
    whole = synthetic / "images" / record["image"]
    cut = tmp_path / "cut.png"
    Image.open(whole).save(cut)
    cut.write_bytes(cut.read_bytes()[:len(cut.read_bytes()) // 2])
    strict = Tagger.load(quickstart_run[0], device="cpu")
    with pytest.raises(DataError, match=rf"^{cut}: not a readable image \(.*truncated.*\); set missing_image="):
        strict.predict(record["tokens"], image=cut)
    with pytest.raises(DataError, match=r"^post 0's image bytes: not a readable image"):
        strict.predict(record["tokens"], image=cut.read_bytes())
    assert ImageLoader(tmp_path).load("cut.png").mode == "RGB"  # a dataset's photo: as far as it goes
    lenient = Tagger.load(quickstart_run[0], device="cpu", missing_image="blank")
    with pytest.warns(MMLabelWarning, match=rf"^{cut}: not a readable image .*: the post is tagged with a blank image$"):
        found = lenient.predict(record["tokens"], image=cut)
    with pytest.warns(MMLabelWarning, match="sees a blank one"):
        assert found == lenient.predict(record["tokens"])


def test_what_is_not_a_post_is_refused(tagger, tmp_path):
    with pytest.raises(TypeError, match="posts must be Post objects .* found str"):
        tagger.predict([Post(["a"]), "b c"])
    with pytest.raises(TypeError, match="`image` goes with one post"):
        tagger.predict([Post(["a"])], image=tmp_path / "x.png")
    with pytest.raises(TypeError, match="a Post holds its own image"):
        tagger.predict(Post(["a"]), image=tmp_path / "x.png")
    with pytest.raises(DataError, match=r"x\.png: image not found"):  # the run's missing_image policy: error
        tagger.predict(["a", "b"], image=tmp_path / "x.png")
    assert tagger.predict([]) == [] and tagger.predict("   ") == []


def test_the_shares_of_a_sharded_split_gathered_are_the_one_process_predictions(quickstart_run, synthetic):
    from mmlabel.registry import build

    tagger = Tagger.load(quickstart_run[0], device="cpu")
    tagger.batch_size = 5  # 24 examples: 5 batches, 3 for rank 0 and 2 for rank 1 (one of 4 examples)
    examples = build("dataset_reader", "jml").read(synthetic / "test.txt")
    images = ImageLoader(synthetic / "images")
    whole = tagger.predict_split(examples, images)
    shares = [tagger.predict_split(examples, images, rank=rank, world_size=2) for rank in (0, 1)]
    assert sorted(sum(found is not None for found in share) for share in shares) in ([9, 15], [10, 14])
    for index, (first, second) in enumerate(zip(*shares)):
        assert (first is None) != (second is None)
        assert (first or second).spans == whole[index].spans and (first or second).words is examples[index].tokens
    assert sum(bool(found.spans) for found in whole) >= 3


def reference_spans(tagger, words: list[str], image) -> tuple[list, list]:
    """The long post's spans as the documented rule makes them, from independent pieces: the windows of
    `word_windows` over the text encoder's own tokenisation, each tagged as a short post of its own, each word's tag
    from the window where the most words surround it on its cut side, decoded over the whole post."""
    from mmlabel.windows import word_windows

    encoder = tagger.model.text_encoder

    def fitting(start: int) -> int:
        return int(encoder.tokenize([words[start:]], tagger.max_tokens)["word_mask"][0].sum())

    windows = word_windows(len(words), fitting)
    tagged = [tagger.scheme.encode(tagger.predict(words[start:end], image=image), end - start)
              for start, end in windows]
    tags = []
    for word in range(len(words)):
        def context(window):
            start, end = windows[window]
            return min(word - start if start else 10**9, end - 1 - word if end < len(words) else 10**9)
        inside = [window for window, (start, end) in enumerate(windows) if start <= word < end]
        best = max(inside, key=lambda window: (context(window), -window))
        tags.append(tagged[best][word - windows[best][0]])
    return tagger.scheme.decode(tags), windows


def test_a_long_post_is_tagged_in_overlapping_windows_so_that_every_word_gets_a_tag(tagger, stored, synthetic):
    image = synthetic / "images" / stored[0]["image"]
    posts = [record["tokens"] for record in stored if record["spans"]] * 10
    pool = [word for tokens in posts for word in tokens]
    fits = int(tagger.model.text_encoder.tokenize([pool[:300]], tagger.max_tokens)["word_mask"][0].sum())
    assert fits < 60  # the model sees fewer than 60 of the post's words at once
    crossing = None
    for shift in range(40):  # until a span crosses the end of a window
        words = pool[shift:shift + 200]
        found = tagger.predict(words, image=image)
        expected, windows = reference_spans(tagger, words, image)
        assert found == expected and len(windows) >= 4
        assert max(span.end for span in found) > fits + 20  # spans far beyond the words one window holds
        ends = [end for _, end in windows[:-1]]
        crossing = next((span for span in found if any(span.start < end < span.end for end in ends)), None)
        if crossing is not None:
            break
    assert crossing is not None
    with_attention = tagger.predict(words, image=image, attention=True)
    assert with_attention.spans == found and tuple(with_attention.attention.shape) == (200, 65)
    assert bool((with_attention.attention.sum(1) > 0.99).all())  # every word's row, from its window: none cut off
    short = stored[1]["tokens"]
    assert tagger.predict(short, image=image) == reference_spans(tagger, short, image)[0]  # one window: itself
