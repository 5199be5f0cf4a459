"""What the server answers with: a tagged post (`models.PostOut`), and the description of the model behind it.

A post's result is built from its checked words and the tagger's prediction (`post_result`); the fusion head's
attention, where asked for, is added by `with_attention`."""
from pathlib import Path

from mmlabel.data.example import Span
from mmlabel.serving.models import AttentionGrid, PostOut, SpanOut


def post_result(post, spans: list[Span], attention=None, image_encoder=None) -> PostOut:
    """One tagged post (`post`: an `inputs.Checked`): its words, its text where it came as raw text, its `spans`
    and, where given, the `attention` (words, patches) of each span over the image encoder's patch grid."""
    result = PostOut(text=post.text, context=getattr(post, "context", None), tokens=post.words,
                     spans=[span_result(span, post.words, post.text) for span in spans])
    if attention is not None:
        with_attention(result, attention, spans, image_encoder)
    return result


def span_result(span: Span, words: list[str], text: str | None) -> SpanOut:
    """A span: its word indices and label, its `words`, and for raw text its character offsets and the `text` they
    cover."""
    covered = text[span.start_char:span.end_char] if text is not None and span.start_char is not None else None
    return SpanOut(words=" ".join(words[span.start:span.end]), **span.to_dict(), text=covered)


def with_attention(result: PostOut, weights, spans: list[Span], image_encoder) -> None:
    """Add the fusion head's attention to a post's `result`: its `attention_grid` (the image encoder's tokens on the
    photo) and, for each span, its words' attention over the grid as `mmlabel report` draws it
    (`mmlabel.report.heatmap.span_heat`)."""
    from mmlabel.report.heatmap import patch_grid, span_heat

    grid = patch_grid(image_encoder, weights.shape[-1])
    if grid is None:
        return
    result.attention_grid = AttentionGrid(prefix=grid[0], rows=grid[1], columns=grid[2])
    for span, entry in zip(spans, result.spans):
        entry.attention = span_heat(weights, span, grid)


def describe(run_dir: str | Path, tagger) -> dict:
    """The model behind the server: its run, components, tag set, tokenizer and the run's dev and test figures."""
    from mmlabel.run_dir import RunDir

    run = RunDir(run_dir)
    recipe, tags = run.recipe(), run.tags()
    components = {path: spec.name for path, (kind, spec) in recipe.component_specs().items()
                  if path not in ("data.reader", "metric") and (kind != "alignment_loss" or tagger.multimodal)}
    metrics = run.metrics() if run.metrics_path.exists() else {}  # weights saved, test not yet evaluated
    figures = {split: {key: value for key, value in metrics.get(split, {}).items() if isinstance(value, (int, float))}
               for split in ("dev", "test")}
    return {"run": Path(run_dir).resolve().name, "components": components, "multimodal": tagger.multimodal,
            "tag_scheme": tags["scheme"], "labels": tags["labels"], "tags": tags["tags"],
            "tokenizer": tagger.tokenizer, "metric": recipe.metric.name, "best_epoch": metrics.get("best_epoch"),
            **figures}
