"""What a report shows, gathered from finished runs: each run's predictions and figures on one split, computed by
the code path of `mmlabel evaluate` (`mmlabel.evaluation.predict_split`), the confusion of labels over spans found
with the right boundaries, the posts' photos and, for runs whose fusion head exposes it, the attention of each
predicted span's words over the photo."""
from dataclasses import dataclass, field
from pathlib import Path

from mmlabel.data.example import Example, Span, labels_of
from mmlabel.errors import DataError


@dataclass
class RunView:
    """One run in the report: its figures (those of `mmlabel evaluate`), its predicted spans per post, the label
    confusion over correctly bounded spans and the heat map (`mmlabel.report.heatmap.span_heat`) of each predicted
    span on posts with a photo, with the grid (rows, columns) they are drawn on."""

    name: str
    path: Path
    components: str
    figures: dict
    predictions: list[list[Span]]
    confusion: dict
    heat: list[dict[Span, str]] = field(default_factory=list)
    grid: tuple[int, int] | None = None


@dataclass
class Report:
    """The runs side by side over the same posts of one split; `photos` holds a thumbnail data URI per post, or
    None where the post has no readable photo."""

    split: str
    examples: list[Example]
    photos: list[str | None]
    runs: list[RunView]


def collect(run_dirs: list[Path], split: str = "test") -> Report:
    """Predict `split` with every run (as `mmlabel evaluate` does) and gather what the page shows; a `DataError`
    when the runs' splits are not the same posts."""
    from mmlabel.evaluation import predict_split

    results = [predict_split(run_dir, split, attention=True) for run_dir in run_dirs]
    examples = results[0].examples
    for run_dir, result in zip(run_dirs[1:], results[1:]):
        _check_same_posts(run_dirs[0], examples, run_dir, result.examples, split)
    images = _photos(results)
    photos = [None if image is None else _thumbnail(image) for image in images]
    names = _names(run_dirs)
    runs = [_run_view(name, run_dir, result, images) for name, run_dir, result in zip(names, run_dirs, results)]
    return Report(split, examples, photos, runs)


def confusion(gold: list[list[Span]], predicted: list[list[Span]], labels: list[str]) -> dict:
    """{"labels", "counts"}: counts[i][j] is how many spans of gold label i were predicted with label j, over the
    spans predicted with the right boundaries; labels neither side uses are left out."""
    index = {label: position for position, label in enumerate(labels)}
    counts = [[0] * len(labels) for _ in labels]
    for gold_spans, predicted_spans in zip(gold, predicted):
        gold_labels = {(span.start, span.end): span.label for span in gold_spans}
        for span in set(predicted_spans):
            if (span.start, span.end) in gold_labels:
                counts[index[gold_labels[span.start, span.end]]][index[span.label]] += 1
    return {"labels": labels, "counts": counts}


def _run_view(name: str, run_dir: Path, result, images: list) -> RunView:
    from mmlabel.run_dir import RunDir

    recipe = RunDir(run_dir).recipe()
    parts = [recipe.text_encoder.name, *([recipe.image_encoder.name] if recipe.image_encoder else []),
             recipe.fusion_head.name]
    gold = [example.spans for example in result.examples]
    labels = labels_of([*result.examples, *(Example("", [], None, spans) for spans in result.predictions)])
    view = RunView(name, Path(run_dir), " + ".join(parts), result.figures, result.predictions,
                   confusion(gold, result.predictions, labels))
    if result.tagger.has_attention and any(image is not None for image in images):
        _add_heat(view, result, images)
    return view


def _add_heat(view: RunView, result, images: list) -> None:
    """Heat maps of the predicted spans of posts with a photo (the others were seen as blank images)."""
    from mmlabel.report.heatmap import patch_grid, span_heat

    with_photo = [index for index, image in enumerate(images) if image is not None]
    view.heat = [{} for _ in result.examples]
    grid = patch_grid(result.tagger.model.image_encoder, result.attention[0].shape[1]) if with_photo else None
    if grid is None:
        return
    view.grid = grid[1:]
    for index in with_photo:
        weights = result.attention[index]
        for span in result.predictions[index]:
            heat = span_heat(weights, span, grid)
            if heat:
                view.heat[index][span] = heat


def _photos(results) -> list:
    """Each post's photo as the first multimodal run's image encoder saw it (its resize and crop: the pixels of the
    image store its predictions read, or the leading geometric steps of its `transform`), so that heat maps over its
    patch grid lie where the patches were; the photo as it is where no run reads images; None where the post has no
    readable photo."""
    from mmlabel.data.image_store import BLANK, ImageStore
    from mmlabel.report.photos import encoder_view, load_photo

    multimodal = [result for result in results if result.tagger.multimodal]
    source = (multimodal or results)[0]
    pixels = source.tagger.pixels(source.images) if multimodal else None
    if isinstance(pixels, ImageStore):
        return [None if pixels.identity(example.image) == BLANK else _stored_view(pixels.get(example.image))
                for example in source.examples]
    transform = source.tagger.model.image_encoder.transform if multimodal else None
    photos = []
    for example in source.examples:
        photo = load_photo(source.image_dir, example.image)
        photos.append(encoder_view(photo, transform) if photo is not None and transform is not None else photo)
    return photos


def _stored_view(pixels):
    """(3, H, W) uint8 stored pixels as a PIL image."""
    from PIL import Image

    return Image.fromarray(pixels.permute(1, 2, 0).numpy())


def _thumbnail(image) -> str:
    from mmlabel.report.photos import thumbnail_uri

    return thumbnail_uri(image)


def _check_same_posts(first_dir: Path, first: list[Example], run_dir: Path, examples: list[Example],
                      split: str) -> None:
    if [(e.id, e.tokens, sorted(e.spans)) for e in first] != [(e.id, e.tokens, sorted(e.spans)) for e in examples]:
        raise DataError(f"{run_dir}: its {split} split ({len(examples)} posts) is not the same posts as that of "
                        f"{first_dir} ({len(first)} posts): a report compares runs on the same data")


def _names(run_dirs: list[Path]) -> list[str]:
    """Each run's folder name, or its whole path where two runs share a folder name."""
    names = [Path(run_dir).name for run_dir in run_dirs]
    return [name if names.count(name) == 1 else str(run_dir) for name, run_dir in zip(names, run_dirs)]
