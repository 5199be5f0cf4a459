"""The context channel (issue 30): text about a post from a side file (`data.context`), read by the text encoder
after the sentence (`sentence [SEP] context`), never cutting the sentence and never tagged; through every fusion
head and alignment loss, and through train, evaluate, predict, serve and report."""
import json
from pathlib import Path

import pytest
import torch

from conftest import SHORT, TINY, run_cli

CONTEXT = "a photo of a red disc on a table"


# -- the side file --------------------------------------------------------------------------------------------
def test_the_side_file_gives_each_post_its_context_by_photo_or_id_and_none_without_an_entry(tmp_path):
    from mmlabel.data.context import with_context
    from mmlabel.data.side_file import read_side_file
    from mmlabel.data.example import Example

    side = tmp_path / "contexts.jsonl"
    side.write_text('{"image": "1.jpg", "context": "first"}\n\n{"image": "2.jpg", "context": "second", "id": "b"}\n'
                    '{"image": "2.jpg", "context": "second"}\n', encoding="utf-8")
    examples = [Example("a", ["x"], "1.jpg"), Example("b", ["y"], "2.jpg"), Example("c", ["z"], "3.jpg")]
    found = with_context(examples, read_side_file(side, "image"), "image")
    assert [example.context for example in found] == ["first", "second", None]  # a key repeated with its text
    assert examples[0].context is None  # the readers' examples are left as they were
    side.write_text('{"id": "c", "context": "third"}\n', encoding="utf-8")
    by_id = with_context(examples, read_side_file(side, "id"), "id")
    assert [example.context for example in by_id] == [None, None, "third"]
    assert by_id[2].to_dict()["context"] == "third" and "context" not in by_id[0].to_dict()


@pytest.mark.parametrize("content, message", [
    ('{"image": "1.jpg", "context": "fine"}\nnot json\n', "contexts.jsonl:2: not a JSON object"),
    ('{"photo": "1.jpg", "context": "x"}\n', "contexts.jsonl:1: expected the key 'image'"),
    ('{"image": "1.jpg", "context": 3}\n', "contexts.jsonl:1: expected 'context' as a string"),
    ('{"image": "nowhere.jpg", "context": "x"}\n', "contexts.jsonl: not one post's image has an entry"),
])
def test_a_bad_side_file_stops_training_in_one_line_naming_file_and_line(small_synthetic, tmp_path, content, message):
    side = tmp_path / "contexts.jsonl"
    side.write_text(content, encoding="utf-8")
    result = run_cli("train", "quickstart", "--out", str(tmp_path / "run"), "--set", f"data.root={small_synthetic}",
                     "--set", f'data.context={{path = "{side}"}}', *SHORT, *TINY)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1, \
        result.stderr


# -- the text encoder -----------------------------------------------------------------------------------------
SENTENCES = [["Kevin", "Durant", "joins", "the", "Warriors", "!"], ["Obama", "visits", "New", "York"],
             ["great", "game"]]
CONTEXTS = ["a photo of Kevin Durant dunking at the game in New York tonight", None, "Obama"]


@pytest.fixture(scope="module")
def text_encoder(tmp_path_factory):
    from mmlabel.testing.kit import tiny_hf
    from mmlabel.text_encoders.hf import HFTextEncoder

    return HFTextEncoder(**tiny_hf(tmp_path_factory.mktemp("context-tokenizer"))).eval()


@pytest.mark.parametrize("max_tokens", [3, 5, 8, 9, 10, 12, 40])
def test_the_context_is_cut_never_the_sentence(text_encoder, max_tokens):
    """Against the tokenizer's own encoding of each sentence alone: the same tokens lead every row, the words keep
    their positions, and the context fills what room is left, up to `max_tokens`."""
    tokenizer = text_encoder.tokenizer
    alone = text_encoder.tokenize(SENTENCES, max_tokens)
    paired = text_encoder.tokenize(SENTENCES, max_tokens, contexts=CONTEXTS)
    assert torch.equal(paired["word_mask"], alone["word_mask"])
    assert torch.equal(paired["first_subword_index"], alone["first_subword_index"])
    assert paired["input_ids"].shape[1] <= max_tokens
    for row, (words, context) in enumerate(zip(SENTENCES, CONTEXTS)):
        sentence = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_tokens)["input_ids"]
        real = int(paired["attention_mask"][row].sum())
        assert paired["input_ids"][row, :len(sentence) - 1].tolist() == sentence[:-1]  # all but the closing [SEP]
        context_tokens = int(paired["context_mask"][row].sum())
        room = max_tokens - len(sentence) - 1  # the pair adds one [SEP]
        if context is None or room < 1:
            assert context_tokens == 0 and real == len(sentence)  # no room: the sentence alone, as without context
        else:
            full = len(tokenizer(context.split(), is_split_into_words=True, add_special_tokens=False)["input_ids"])
            assert context_tokens == min(full, room) + 1  # its tokens, cut to the room left, and the closing [SEP]
            assert real == len(sentence) + min(full, room) + 1
            assert not paired["context_mask"][row, :len(sentence)].any()


def test_an_encoder_whose_context_cuts_the_sentence_fails_the_kit(tmp_path):
    from mmlabel.testing import ContractViolation, check_factory
    from mmlabel.testing.kit import tiny_hf
    from mmlabel.text_encoders.hf import HFTextEncoder, _word_positions

    class CutsSentences(HFTextEncoder):
        def tokenize(self, words, max_tokens, *, contexts=None):
            if not contexts or not any(contexts):
                return super().tokenize(words, max_tokens)
            pairs = [context.split() if context else ["-"] for context in contexts]
            encoding = self.tokenizer(words, pairs, is_split_into_words=True, truncation="longest_first",
                                      max_length=max_tokens, padding="longest", return_tensors="pt")
            ids = [[w if s == 0 else None for w, s in zip(encoding.word_ids(r), encoding.sequence_ids(r))]
                   for r in range(len(words))]
            first, mask = _word_positions(words, ids)
            return {"input_ids": encoding["input_ids"], "attention_mask": encoding["attention_mask"],
                    "first_subword_index": first, "word_mask": mask,
                    "context_mask": torch.tensor([[s == 1 for s in encoding.sequence_ids(r)]
                                                  for r in range(len(words))])}

    check_factory("text_encoder", HFTextEncoder, **tiny_hf(tmp_path))  # the built-in passes, context check included
    with pytest.raises(ContractViolation, match=r": context: "):
        check_factory("text_encoder", CutsSentences, **tiny_hf(tmp_path))


# -- every fusion head and alignment loss ---------------------------------------------------------------------
def _names(kind: str) -> list[str]:
    from mmlabel.registry import components

    return [component.name for component in components(kind)]


def _model(text_encoder, head: str, loss: str, align_context: bool = False):
    from mmlabel.model import TaggingModel
    from mmlabel.registry import build

    torch.manual_seed(0)
    image = build("image_encoder", {"name": "timm", "model": "vit_base_patch16_224", "pretrained": False,
                                    "model_args": {"img_size": 32, "patch_size": 8, "depth": 1, "embed_dim": 32,
                                                   "num_heads": 2}})
    fusion = build("fusion_head", {"name": head}, text_dim=text_encoder.hidden_size, image_dim=image.hidden_size,
                   num_tags=5, allowed_start=None, allowed_transitions=None, allowed_end=None)
    return TaggingModel(text_encoder, fusion, image_encoder=image, alignment_loss=build("alignment_loss", loss),
                        align_context=align_context).eval()


def _batch(text_encoder, contexts=CONTEXTS):
    batch = text_encoder.tokenize(SENTENCES, 40, contexts=contexts)
    batch["tags"] = torch.tensor([[1, 2, 0, 0, 3, 4], [1, 2, 2, 0, 0, 0], [0, 1, 0, 0, 0, 0]])
    batch["pixel_values"] = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    return batch


@pytest.mark.parametrize("head", ["dtca", "concat", "gated", "prefix", "text"])
def test_every_fusion_head_tags_the_sentence_words_alone_with_context(text_encoder, head):
    assert set(_names("fusion_head")) >= {"dtca", "concat", "gated", "prefix", "text"}
    model = _model(text_encoder, head, "emd")
    batch = _batch(text_encoder)
    output = model(batch)
    assert torch.isfinite(output.loss) and output.emissions.shape[:2] == (3, 6)
    output.loss.backward()
    assert [len(path) for path in model.decode(batch)] == [len(words) for words in SENTENCES]
    # the context is read: the emissions of the sentence's words change with it (self-attention over the pair)
    other = model(_batch(text_encoder, ["nothing like it", None, "a table"])).emissions
    assert not torch.allclose(output.emissions[0], other[0])


@pytest.mark.parametrize("loss", ["emd", "sinkhorn", "ipot", "mmd", "contrastive", "none"])
def test_every_alignment_loss_aligns_the_sentence_tokens_unless_told_otherwise(text_encoder, loss):
    assert set(_names("alignment_loss")) >= {"emd", "sinkhorn", "ipot", "mmd", "contrastive", "none"}
    batch = _batch(text_encoder)
    sentence = batch["attention_mask"].bool() & ~batch["context_mask"]
    for align_context, mask in ((False, sentence), (True, batch["attention_mask"].bool())):
        model = _model(text_encoder, "dtca", loss, align_context)
        assert torch.equal(model.alignment_text_mask(batch), mask)
        with torch.no_grad():
            text = model.text_encoder(batch["input_ids"], batch["attention_mask"])
            image, image_mask = model.image_encoder(batch["pixel_values"])
            expected = model.alignment_loss(text, mask, model.image_projection(image), image_mask).mean()
            assert model(batch).losses["align"] == pytest.approx(float(expected), rel=1e-4, abs=1e-6)
    if loss != "none":  # the two masks give two distances: the test above can tell them apart
        with torch.no_grad():
            distances = [model.alignment_loss(text, m, model.image_projection(image), image_mask).mean()
                         for m in (sentence, batch["attention_mask"].bool())]
        assert not torch.allclose(*distances)


# -- through the commands -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def context_run(small_synthetic, tmp_path_factory):
    """A tiny quickstart run with a context file keyed by photo, every post but the first of each split in it."""
    from mmlabel.registry import build

    root = tmp_path_factory.mktemp("context-run")
    reader = build("dataset_reader", "jml")
    lines = []
    for split in ("train", "dev", "test"):
        for example in reader.read(small_synthetic / f"{split}.txt")[1:]:
            lines.append(json.dumps({"image": example.image, "context": f"{CONTEXT} {example.image}"}))
    side = root / "contexts.jsonl"
    side.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = root / "run"
    result = run_cli("train", "quickstart", "--out", str(out), "--set", f"data.root={small_synthetic}",
                     "--set", f'data.context={{path = "{side}", key = "image"}}', *SHORT, *TINY)
    assert result.returncode == 0, result.stderr
    return out, side


def test_a_run_reads_the_context_and_keeps_it_with_its_predictions(context_run, small_synthetic):
    import mmlabel

    out, side = context_run
    assert f'path = "{side}"' in (out / "recipe.toml").read_text()
    stored = [json.loads(line) for line in (out / "predictions-test.jsonl").read_text().splitlines()]
    assert "context" not in stored[0] and all(record["context"].startswith(CONTEXT) for record in stored[1:])
    evaluated = run_cli("evaluate", str(out), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["f1"] == json.loads((out / "metrics.json").read_text())["test"]["f1"]
    tagger = mmlabel.Tagger.load(out, device="cpu")
    for record in stored:
        spans = tagger.predict(record["tokens"], image=small_synthetic / "images" / record["image"],
                               context=record.get("context"))
        assert [span.to_dict() for span in spans] == record["spans"]


def test_predict_takes_the_context_on_the_command_line_and_in_jsonl(context_run, small_synthetic, tmp_path):
    import mmlabel

    out, _ = context_run
    tagger = mmlabel.Tagger.load(out, device="cpu")
    record = json.loads((out / "predictions-test.jsonl").read_text().splitlines()[1])
    image = small_synthetic / "images" / record["image"]
    words = " ".join(record["tokens"])
    one = run_cli("predict", str(out), "--text", words, "--image", str(image), "--context", record["context"],
                  "--json")
    assert one.returncode == 0, one.stderr
    expected = tagger.predict(words, image=image, context=record["context"])
    assert [(s["start"], s["end"], s["label"]) for s in json.loads(one.stdout)] == \
        [(s.start, s.end, s.label) for s in expected]
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(json.dumps({"tokens": record["tokens"], "image": record["image"],
                                  "context": record["context"]}) + "\n", encoding="utf-8")
    many = run_cli("predict", str(out), "--input", str(source), "--output", str(target), "--images",
                   str(small_synthetic / "images"))
    assert many.returncode == 0, many.stderr
    (written,) = [json.loads(line) for line in target.read_text().splitlines()]
    by_words = tagger.predict(record["tokens"], image=image, context=record["context"])
    assert written["context"] == record["context"] and written["spans"] == [s.to_dict() for s in by_words]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"tokens": ["a"], "context": 3}) + "\n", encoding="utf-8")
    refused = run_cli("predict", str(out), "--input", str(bad), "--output", str(tmp_path / "never.jsonl"))
    assert refused.returncode == 2 and "'context' must be a string" in refused.stderr


def test_the_context_changes_what_the_model_reads(context_run, small_synthetic):
    """Tagger.predict passes the context through: the word states differ with and without it."""
    import mmlabel
    from mmlabel.data.batches import Collator

    out, _ = context_run
    tagger = mmlabel.Tagger.load(out, device="cpu")
    collate = Collator.for_encoder(tagger.model.text_encoder, tagger.max_tokens)
    words = ["Kevin", "Durant", "is", "great"]
    with_context = collate([{"index": 0, "words": words, "tags": [0] * 4, "context": CONTEXT}])
    without = collate([{"index": 0, "words": words, "tags": [0] * 4, "context": None}])
    assert with_context["input_ids"].shape[1] > without["input_ids"].shape[1]
    assert torch.equal(with_context["first_subword_index"], without["first_subword_index"])
    tagger.model.eval()
    with torch.no_grad():
        states = [tagger.model.text_encoder(b["input_ids"], b["attention_mask"]) for b in (with_context, without)]
    assert not torch.allclose(states[0][0, 1:5], states[1][0, 1:5])


def test_serve_takes_the_context_of_a_post(context_run, small_synthetic):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    import base64

    import mmlabel
    from test_serve import serving

    out, _ = context_run
    tagger = mmlabel.Tagger.load(out, device="cpu")
    records = [json.loads(line) for line in (out / "predictions-test.jsonl").read_text().splitlines()][1:4]
    with serving(out) as (url, _):
        for record in records:
            image = small_synthetic / "images" / record["image"]
            post = {"tokens": record["tokens"], "image": base64.b64encode(image.read_bytes()).decode(),
                    "context": record["context"]}
            answer = httpx.post(f"{url}/predict", json=post)
            assert answer.status_code == 200, answer.text
            expected = tagger.predict(record["tokens"], image=image, context=record["context"])
            assert answer.json()["context"] == record["context"]
            assert [(s["start"], s["end"], s["label"]) for s in answer.json()["spans"]] == \
                [(s.start, s.end, s.label) for s in expected]
        refused = httpx.post(f"{url}/predict", json={"tokens": ["a"], "context": ["not", "text"]})
        assert refused.status_code == 422 and "context" in refused.json()["error"]


def test_the_report_shows_each_posts_context(context_run, tmp_path):
    out, _ = context_run
    result = run_cli("report", str(out), "--out", str(tmp_path / "report.html"))
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "report.html").read_text()
    stored = [json.loads(line) for line in (out / "predictions-test.jsonl").read_text().splitlines()]
    assert page.count('<div class="context"') == len(stored) - 1  # the first post has none
    assert stored[1]["context"] in page


# -- recipes --------------------------------------------------------------------------------------------------
def _recipe(name: str) -> dict:
    from mmlabel.recipe import load_recipe

    return load_recipe(Path(__file__).resolve().parents[1] / "recipes" / f"{name}.toml").model_dump()


def test_the_context_recipes_are_the_reference_with_a_context_file():
    reference, photo, text = _recipe("dtca"), _recipe("dtca-context"), _recipe("context")
    side = {"path": "contexts.jsonl", "key": "image"}
    assert reference["data"].pop("context") is None
    assert photo["data"].pop("context") == side and photo == reference
    assert text["data"].pop("context") == side and text["image_encoder"] is None
    assert text["fusion_head"]["name"] == "text" and text["alignment_loss"]["name"] == reference["alignment_loss"]["name"]
    for section in ("text_encoder", "metric", "loss", "train"):
        assert text[section] == reference[section], section


def test_the_methods_comparison_has_both_context_rows_and_its_tiny_run_leaves_them_out(tmp_path):
    from mmlabel.experiments.experiment_file import load_experiment
    from mmlabel.experiments.grid import expand
    from mmlabel.experiments.sweep import Sweep
    from mmlabel.recipe import read_raw

    path = str(Path(__file__).resolve().parents[1] / "recipes" / "experiments" / "methods.toml")
    experiment = load_experiment(path, data_root=tmp_path)
    with pytest.warns(Warning):  # the notes of swapped components
        recipes = Sweep(read_raw(experiment.recipe), "methods", expand(experiment.grids), [1], tmp_path, []).recipes()
    text = recipes["dataset=twitter2017__method=text-with-context"]
    photo = recipes["dataset=twitter2017__method=dtca-with-context"]
    assert text.image_encoder is None and text.fusion_head.name == "text" and text.data.context.key == "image"
    assert photo.image_encoder is not None and photo.fusion_head.name == "dtca" and photo.data.context is not None
    assert (photo.loss.alpha, photo.loss.beta) == (0.3, 0.9)
    tiny = load_experiment(path, tiny=True, data_root=tmp_path)
    assert "dtca with context" not in tiny.only["method"] and "dtca (emd)" in tiny.only["method"]
