"""The JSON the server answers with: a tagged post, and the description of the model behind it.

A post's result is built field by field from the post and its spans (`post_result`); the fusion head's attention,
where asked for, is added by `with_attention`."""
from pathlib import Path

from mmlabel.data.example import Span


def post_result(post, tokens: list[str], spans: list[Span]) -> dict:
    """One tagged post: `tokens` (its words), `text` where it came as raw text, and its `spans`."""
    raw = {} if post.text is None else {"text": post.text}
    return {**raw, "tokens": tokens, "spans": [span_result(span, tokens, post.text) for span in spans]}


def span_result(span: Span, tokens: list[str], text: str | None) -> dict:
    """A span: word indices `start`/`end` (end exclusive), `label`, its `words`, and for raw text `start_char`,
    `end_char` (end exclusive) and the `text` they cover."""
    result = {"words": " ".join(tokens[span.start:span.end]), **span.to_dict()}
    if text is not None and span.start_char is not None:
        result["text"] = text[span.start_char:span.end_char]
    return result


def with_attention(result: dict, weights, spans: list[Span], image_encoder) -> None:
    """Add the fusion head's attention to a post's `result`: `attention_grid` {prefix, rows, columns} (the image
    encoder's tokens on the photo) and, for each span, `attention`: its words' attention over the grid, one
    hexadecimal digit (0-f, scaled to the strongest cell) per cell, row by row (as in `mmlabel report`)."""
    from mmlabel.report.heatmap import patch_grid, span_heat

    grid = patch_grid(image_encoder, weights.shape[-1])
    if grid is None:
        return
    result["attention_grid"] = dict(zip(("prefix", "rows", "columns"), grid))
    for span, entry in zip(spans, result["spans"]):
        entry["attention"] = span_heat(weights, span, grid)


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
