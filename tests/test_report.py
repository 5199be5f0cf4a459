"""`mmlabel report`: two tiny runs (text-only and multimodal) trained on the synthetic data, side by side in one
self-contained HTML page, whose figures are `mmlabel evaluate`'s, opened in headless Chromium where it is installed."""
import json
import re
import shutil
import subprocess

import pytest
import torch

from conftest import run_cli
from mmlabel.evaluation import predict_split
from mmlabel.tagger import Tagger

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get "
                                                              "install chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def runs(quickstart_run, text_only_run, tmp_path_factory):
    """Copies of the session's multimodal quickstart run and of its text-only run, named as the report shows them,
    and the text-only run's data (a copy of the synthetic data, whose images a test hides)."""
    root = tmp_path_factory.mktemp("report-runs")
    shutil.copytree(quickstart_run[0], root / "multimodal")
    shutil.copytree(text_only_run[0], root / "text-only")
    return {"multimodal": root / "multimodal", "text-only": root / "text-only", "data": text_only_run[1]}


@pytest.fixture(scope="module")
def page(runs, tmp_path_factory):
    """The report over both runs, written by the command line."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = run_cli("report", str(runs["multimodal"]), str(runs["text-only"]), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"report: {out} (24 posts, 2 runs, ")
    return out


def _figures(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="figures-json">(.*?)</script>', html, re.S)
    return json.loads(found.group(1))


def test_the_figures_are_those_of_mmlabel_evaluate(runs, page):
    from mmlabel.evaluation import evaluate_run

    html = page.read_text(encoding="utf-8")
    figures = _figures(html)
    result = run_cli("evaluate", str(runs["multimodal"]), "--split", "test", "--json")
    assert result.returncode == 0, result.stderr
    assert figures["multimodal"] == json.loads(result.stdout)
    assert figures["text-only"] == evaluate_run(runs["text-only"], "test")  # what `mmlabel evaluate` prints
    for key in ("precision", "recall", "f1", "aspect_f1", "sentiment_accuracy"):
        row = re.search(rf'<tr data-figure="{key}"><td>{key}</td>(.*?)</tr>', html).group(1)
        shown = re.findall(r'<td class="number">([^<]*)</td>', row)
        assert shown == [f"{figures[name][key]:.2f}" for name in ("multimodal", "text-only")], key
    assert figures["multimodal"]["predicted"] > 0 and figures["text-only"]["predicted"] > 0


def test_the_confusion_matrix_counts_the_correctly_bounded_spans(runs, page):
    html = page.read_text(encoding="utf-8")
    figures = _figures(html)
    for name in ("multimodal", "text-only"):
        table = re.search(rf'<table class="confusion" data-run="{name}">(.*?)</table>', html, re.S).group(1)
        rows = [[int(cell) for cell in re.findall(r'<td class="number[^"]*">(\d+)</td>', row)]
                for row in re.findall(r"<tr><th>(?:POS|NEU|NEG)</th>(.*?)</tr>", table)]
        total, diagonal = sum(map(sum, rows)), sum(rows[index][index] for index in range(len(rows)))
        accuracy = figures[name]["sentiment_accuracy"]
        assert total > 0 and abs(100.0 * diagonal / total - accuracy) < 1e-9
        # every correctly bounded span: the aspect recall's numerator
        assert abs(100.0 * total / figures[name]["gold"] - figures[name]["aspect_recall"]) < 1e-9


def test_the_page_is_self_contained_and_small(page):
    html = page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)  # nothing fetched
    assert not re.search(r"url\(\s*['\"]?(https?:)?//|@import", html, re.I)
    images = re.findall(r'<img src="([^"]*)"', html)
    assert len(images) == 24 and all(src.startswith("data:image/jpeg;base64,") for src in images)
    assert page.stat().st_size < 200_000
    assert html.count('class="post"') == 24


def test_heat_maps_only_for_the_run_whose_head_exposes_attention(page):
    html = page.read_text(encoding="utf-8")
    heats = re.findall(r'data-heat="([0-9a-f]*)" data-grid="(\d+)x(\d+)" data-run="([^"]*)"', html)
    assert heats and {run for *_, run in heats} == {"multimodal"}
    # the quickstart's ViT sees 64 pixels in 8-pixel patches: an 8 x 8 grid, its class token left out
    assert all((rows, columns) == ("8", "8") and len(heat) == 64 and "f" in heat for heat, rows, columns, _ in heats)


def test_each_heat_map_is_its_spans_attention_from_the_tagger(runs):
    """The report's heat maps (taken from the evaluation pass itself) equal `span_heat` of the attention
    `Tagger.predict_split` gives on its own (same posts, so same batches: equal to the digit)."""
    from mmlabel.report.collect import collect
    from mmlabel.report.heatmap import patch_grid, span_heat

    report = collect([runs["multimodal"]])
    view = report.runs[0]
    tagger = Tagger.load(runs["multimodal"], device="cpu")
    result = predict_split(runs["multimodal"], "test")
    assert view.predictions == result.predictions and view.figures == result.figures
    attention = [found.attention for found in tagger.predict_split(report.examples, result.images, attention=True)]
    grid = patch_grid(tagger.model.image_encoder, attention[0].shape[1])
    checked = 0
    for weights, heats in zip(attention, view.heat):
        for span, heat in heats.items():
            assert heat == span_heat(weights, span, grid)
            checked += 1
    assert checked > 5


def test_the_tagger_gives_one_attention_row_per_word(runs):
    from mmlabel.data.splits import image_loader, read_splits
    from mmlabel.recipe import load_recipe
    from mmlabel.tagger import Tagger

    tagger = Tagger.load(runs["multimodal"], device="cpu")
    recipe = load_recipe(runs["multimodal"] / "recipe.toml")
    root = recipe.data.root_path()
    examples = read_splits(recipe, root)["test"][:5]
    images = image_loader(recipe, root, {"test": examples}, ["test"])
    found = tagger.predict_split(examples, images, attention=True)
    weights = [prediction.attention for prediction in found]
    assert [tuple(w.shape) for w in weights] == [(len(example.tokens), 65) for example in examples]
    assert all(torch.allclose(w.sum(1), torch.ones(len(w)), atol=1e-5) for w in weights)
    assert [prediction.spans for prediction in found] == [p.spans for p in tagger.predict_split(examples, images)]
    assert all(prediction.attention is None for prediction in tagger.predict_split(examples, images))
    text_only = Tagger.load(runs["text-only"], device="cpu")
    assert tagger.has_attention and not text_only.has_attention
    with pytest.raises(ValueError, match="no word-to-patch attention"):
        text_only.predict_split(examples, attention=True)


def test_posts_with_attention_give_the_spans_and_maps_of_the_split_path(runs):
    """`Tagger.predict(posts, attention=True)` (the server's path for "attention": true) gives the spans of
    `predict(posts)` and the maps `predict_split` computes for the same posts read from their files; a post with no
    words gets no spans and no map."""
    from PIL import Image

    from mmlabel.data.splits import image_loader, read_splits
    from mmlabel.recipe import load_recipe
    from mmlabel.tagger import Post, Tagger

    tagger = Tagger.load(runs["multimodal"], device="cpu")
    recipe = load_recipe(runs["multimodal"] / "recipe.toml")
    examples = read_splits(recipe, recipe.data.root_path())["test"][:6]
    loader = image_loader(recipe, recipe.data.root_path(), {"test": examples}, ["test"])
    posts = [Post(example.tokens, Image.open(loader.path(example.image)).convert("RGB")) for example in examples]
    posts.insert(2, Post([], None))
    found = tagger.predict(posts, attention=True)
    assert [p.spans for p in found] == [p.spans for p in tagger.predict(posts)]
    assert found[2].spans == [] and found[2].attention is None and found[2].words == []
    assert any(p.spans for p in found)  # the comparison covers predicted spans
    expected = tagger.predict_split(examples, loader, attention=True)
    assert [p.spans for p in found[:2] + found[3:]] == [p.spans for p in expected]
    assert all(torch.allclose(got.attention, want.attention, atol=1e-5)
               for got, want in zip(found[:2] + found[3:], expected))
    with pytest.raises(ValueError, match="no word-to-patch attention"):
        Tagger.load(runs["text-only"], device="cpu").predict(posts, attention=True)


def test_posts_without_photos_show_none_and_the_report_still_works(runs, tmp_path):
    from mmlabel.report import write_report

    images = runs["data"] / "images"
    images.rename(runs["data"] / "hidden-images")
    try:
        report = write_report([runs["text-only"]], tmp_path / "report.html")
    finally:
        (runs["data"] / "hidden-images").rename(images)
    assert report.photos == [None] * 24 and all(example.image for example in report.examples)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<img" not in html and html.count('<span class="no-photo">no photo</span>') == 24
    assert 'id="only-disagree"' not in html  # one run cannot disagree with itself


@pytest.mark.parametrize(("arguments", "message"), [
    (["{tmp}"], "error: {tmp}: incomplete run: recipe.toml is missing"),
    (["{run}", "--split", "validation"], "error: no split 'validation': choose train, dev or test"),
])
def test_bad_input_is_one_line_and_exit_2(runs, tmp_path, arguments, message):
    values = {"tmp": str(tmp_path), "run": str(runs["text-only"])}
    result = run_cli("report", *[argument.format(**values) for argument in arguments], "--out",
                     str(tmp_path / "report.html"))
    assert result.returncode == 2 and result.stderr.strip() == message.format(**values)
    assert not (tmp_path / "report.html").exists()


def _chromium(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", "--virtual-time-budget=3000", *arguments],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.system
@needs_chromium
def test_chromium_renders_the_page(page, tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    _chromium(f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri())
    pixels = Image.open(shot).convert("RGB")
    colours = pixels.getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50  # text, tables, photos: far from a blank page
    dom = _chromium("--dump-dom", page.as_uri()).stdout
    html = page.read_text(encoding="utf-8")
    assert 'id="shown">24 of 24 posts' in dom  # the page's script ran
    assert dom.count('class="post"') == 24 and dom.count('<span class="span label-') >= 24 * 3 // 2
    f1 = _figures(html)["multimodal"]["f1"]
    assert f'<tr data-figure="f1"><td>f1</td><td class="number">{f1:.2f}</td>' in dom
    # the thumbnails are the plain photos: no heat map is drawn until a span is pointed at
    assert _drawn_heat_maps(dom) == (0, 24) and not _showing(dom)


@pytest.mark.system
@needs_chromium
def test_pointing_at_a_span_draws_its_heat_map_and_leaving_it_removes_it(page, tmp_path):
    """The page with a script that points at the first span that has a heat map (mouseover), dumped; then the same
    and the pointer leaving it (mouseout)."""
    html = page.read_text(encoding="utf-8")
    point = ("<script>var span = document.querySelector('.span[data-heat]');"
             "span.dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));%s</script></body>")
    shown, left = tmp_path / "shown.html", tmp_path / "left.html"
    shown.write_text(html.replace("</body>", point % ""), encoding="utf-8")
    left.write_text(html.replace("</body>", point % "span.dispatchEvent(new MouseEvent('mouseout', {bubbles: true}));"),
                    encoding="utf-8")
    dom = _chromium("--dump-dom", shown.as_uri()).stdout
    assert len(_showing(dom)) == 1 and _drawn_heat_maps(dom) == (1, 24)  # over the photo of the span's post
    dom = _chromium("--dump-dom", left.as_uri()).stdout
    assert not _showing(dom) and _drawn_heat_maps(dom) == (0, 24)


def _drawn_heat_maps(dom: str) -> tuple[int, int]:
    """(heat-map canvases shown, all of them) in a dumped DOM (a canvas drawn on gains width and height attributes
    before `hidden`)."""
    canvases = re.findall(r'<canvas class="heat"[^>]*>', dom)
    return sum("hidden" not in canvas for canvas in canvases), len(canvases)


def _showing(dom: str) -> list[str]:
    """The spans whose heat map is marked as shown."""
    return re.findall(r'<span class="span [^"]*\bshowing\b[^"]*"', dom)


@pytest.mark.system
@needs_chromium
def test_the_filters_hide_posts(page):
    html = page.read_text(encoding="utf-8")
    errors = html.count('data-error="1"')
    dom = _chromium("--dump-dom", page.as_uri() + "#errors").stdout
    assert f'id="shown">{errors} of 24 posts' in dom and 0 < errors
    assert len(re.findall(r'<article class="post" data-error="0"[^>]* hidden=""', dom)) == 24 - errors
    word = re.search(r'data-words="([^"]*)"', html).group(1).split()[0]
    matching = sum(word in words.split() or any(word in w for w in words.split())
                   for words in re.findall(r'data-words="([^"]*)"', html))
    dom = _chromium("--dump-dom", page.as_uri() + f"#search={word}").stdout
    assert f'id="shown">{matching} of 24 posts' in dom


def test_the_page_escapes_the_posts_and_marks_errors_and_disagreements():
    """The page from a hand-made report: words are text, never markup; flags follow the spans."""
    from pathlib import Path

    from mmlabel.data.example import Example, Span
    from mmlabel.report.collect import Report, RunView
    from mmlabel.report.page import render

    examples = [Example("a", ["<script>alert(1)</script>", "is", "good"], None, [Span(0, 1, "POS")]),
                Example("b", ["Alice", "&", "Bob"], None, [Span(2, 3, "NEG")])]
    figures = {"precision": 50.0, "recall": 50.0, "f1": 50.0, "per_label": {}, "gold": 2}
    confusion = {"labels": ["POS", "NEG"], "counts": [[1, 0], [0, 0]]}
    first = RunView("one</script>", Path("one"), "hf + dtca", figures, [[Span(0, 1, "POS")], [Span(0, 1, "NEG")]],
                    confusion)
    second = RunView("two", Path("two"), "hf + dtca", figures, [[Span(0, 1, "POS")], [Span(2, 3, "NEG")]], confusion)
    html = render(Report("test", examples, [None, None], [first, second]))
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "one</script>" not in html and "Alice &amp; " in html and "Alice & " not in html
    posts = re.findall(r'<article class="post" data-error="(\d)" data-disagree="(\d)"', html)
    assert posts == [("0", "0"), ("1", "1")]
    assert 'class="span label-NEG incorrect"' in html and 'class="span label-NEG correct"' in html
    assert "missed: Bob (NEG)" in html


def test_a_span_with_the_right_boundaries_and_the_wrong_sentiment_is_listed_once():
    """Found where it is but labelled wrongly: marked as a wrong sentiment on the run's line, not again as missed."""
    from pathlib import Path

    from mmlabel.data.example import Example, Span
    from mmlabel.report.collect import Report, RunView
    from mmlabel.report.page import render

    examples = [Example("a", ["Alice", "and", "Bob", "won"], None, [Span(0, 1, "POS"), Span(2, 3, "NEG")])]
    figures = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "per_label": {}, "gold": 2}
    confusion = {"labels": ["POS", "NEG"], "counts": [[0, 1], [0, 0]]}
    run = RunView("one", Path("one"), "hf + dtca", figures, [[Span(0, 1, "NEG")]], confusion)
    html = render(Report("test", examples, [None], [run]))
    row = re.search(r'<span class="who">one</span>(.*?)</div>', html, re.S).group(1)
    assert re.search(r'class="span label-NEG incorrect wrong-label"[^>]*>Alice<sub>NEG</sub>'
                     r'<span class="gold-label">gold POS</span></span>', row)
    assert "missed: Bob (NEG)</span>" in row and "Alice (POS)" not in row  # only what the run did not find at all
    assert html.count("gold POS") == 1


def test_photos_are_shown_as_the_encoder_saw_them_in_small_thumbnails():
    import base64
    import io

    from PIL import Image

    from mmlabel.registry import build
    from mmlabel.report.photos import encoder_view, thumbnail_uri

    photo = Image.new("RGB", (400, 300), "white")
    photo.paste((255, 0, 0), (0, 0, 50, 300))  # a red band on the left, outside the centre crop
    crop = build("image_encoder", {"name": "timm", "model": "vit_base_patch16_224", "pretrained": False,
                                               "model_args": {"depth": 1}})
    view = encoder_view(photo, crop.transform)
    assert view.size == (224, 224) and view.getpixel((0, 112)) == (255, 255, 255)  # the band was cropped away
    assert encoder_view(photo, lambda image: image) is photo  # not a Compose: the photo as it is
    uri = thumbnail_uri(photo)
    assert uri.startswith("data:image/jpeg;base64,")
    thumbnail = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert thumbnail.format == "JPEG" and thumbnail.size == (128, 96)
