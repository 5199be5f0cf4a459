"""`mmlabel bench`: examples per second and peak memory of the optimised settings against a naive baseline."""
import json
from pathlib import Path
from typing import Annotated, Optional

import typer


def bench(
    mode: Annotated[str, typer.Argument(help="train or predict.")],
    text_size: Annotated[str, typer.Option(help="base (RoBERTa-base sized) or tiny.")] = "base",
    image_model: Annotated[str, typer.Option(help="timm image encoder, random weights.")] = "vit_base_patch16_224",
    batch: Annotated[int, typer.Option(help="Training batch size (prediction: naive uses it, optimised 32).")] = 4,
    steps: Annotated[int, typer.Option(help="Timed batches per round and setting.")] = 10,
    rounds: Annotated[int, typer.Option(help="Alternating rounds; the median is reported.")] = 3,
    freeze_image: Annotated[bool, typer.Option(help="Freeze the image encoder (optimised: cached states).")] = False,
    data: Annotated[Optional[Path], typer.Option(help="Draw sentence lengths from this dataset.")] = None,
    format: Annotated[str, typer.Option("--format", help="Reader for --data.")] = "jml",
    alignment: Annotated[str, typer.Option(help="Alignment loss, the same in both settings (emd: ~2,000 Sinkhorn "
                                                "iterations a batch).")] = "sinkhorn",
    only: Annotated[Optional[str], typer.Option(help="Run one setting: optimised or naive.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Measure training or prediction speed of DTCA at the paper's sizes (random weights, no download)."""
    from mmlabel.benchmark import SETTINGS, TEXT_SIZES, bench as run_bench, twitter_lengths

    if mode not in ("train", "predict"):
        raise typer.BadParameter("train or predict", param_hint="MODE")
    if text_size not in TEXT_SIZES:
        raise typer.BadParameter(" or ".join(TEXT_SIZES), param_hint="--text-size")
    if only is not None and only not in SETTINGS:
        raise typer.BadParameter(" or ".join(SETTINGS), param_hint="--only")
    lengths = twitter_lengths(data, format) if data else None
    say = None if as_json else typer.echo
    result = run_bench(mode, text_size, image_model, batch, steps, rounds, freeze_image, lengths, only, say, alignment)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    for setting in [s for s in SETTINGS if s in result]:
        typer.echo(f"{setting:>9}: {result[setting]['examples_per_s']:.2f} examples/s, peak {result[setting]['peak_mb']:.0f} MB")
    if "ratio" in result:
        typer.echo(f"    ratio: {result['ratio']:.2f}x")
