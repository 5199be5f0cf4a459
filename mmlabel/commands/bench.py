"""`mmlabel bench`: examples per second and peak memory of the optimised settings against a naive baseline."""
from pathlib import Path
from typing import Annotated, Optional

import typer

from mmlabel.commands.options import FormatOption, JsonOption, echo_json, reader_name


def bench(
    mode: Annotated[str, typer.Argument(help="train or predict.")],
    text_size: Annotated[str, typer.Option(help="base (RoBERTa-base sized) or tiny.")] = "base",
    image_model: Annotated[str, typer.Option(help="timm image encoder, random weights.")] = "vit_base_patch16_224",
    batch: Annotated[int, typer.Option(help="Training batch size (prediction: naive uses it, optimised 32).")] = 4,
    steps: Annotated[int, typer.Option(help="Timed batches per round and setting.")] = 10,
    rounds: Annotated[int, typer.Option(help="Alternating rounds; the median is reported.")] = 3,
    freeze_image: Annotated[bool, typer.Option(help="Freeze the image encoder (optimised: cached states).")] = False,
    data: Annotated[Optional[Path], typer.Option(help="Draw sentence lengths from this dataset.")] = None,
    format_name: FormatOption = None,
    alignment: Annotated[str, typer.Option(help="Alignment loss, the same in both settings (emd: exact, POT's "
                                                "network simplex).")] = "sinkhorn",
    only: Annotated[Optional[str], typer.Option(help="Run one setting: optimised, naive, without-NAME or "
                                                     "with-workers.")] = None,
    ablate: Annotated[bool, typer.Option(help="Also run the optimised setting without each optimisation in turn "
                                              "(and, on a CPU, with a decoding worker).")] = False,
    profile: Annotated[bool, typer.Option(help="Profile the timed steps (torch.profiler) and print each setting's "
                                              "table of the costliest operations; profiling slows them.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Measure training or prediction speed of DTCA at the paper's sizes (random weights, no download); --data (read
    with --format) gives the sentence lengths."""
    from mmlabel.benchmark import TEXT_SIZES, bench as run_bench, setting_flags, twitter_lengths

    if mode not in ("train", "predict"):
        raise typer.BadParameter("train or predict", param_hint="MODE")
    if text_size not in TEXT_SIZES:
        raise typer.BadParameter(" or ".join(TEXT_SIZES), param_hint="--text-size")
    if only is not None:
        try:
            setting_flags(only, mode, freeze_image)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--only") from None
    lengths = twitter_lengths(data, reader_name(data, format_name)) if data else None

    def say(message: str) -> None:  # progress on stderr, so that --json output stays parseable
        typer.echo(message, err=True)

    result = run_bench(mode, text_size=text_size, image_model=image_model, batch=batch, steps=steps, rounds=rounds,
                       freeze_image=freeze_image, lengths=lengths, only=only, progress=say, alignment=alignment,
                       ablate=ablate, profile=profile)
    if as_json:
        echo_json(result)
    else:
        _print_result(result)


def _print_result(result: dict) -> None:
    """Each setting's profile table (with --profile), then a line of figures per setting and the ratio."""
    rows = {setting: figures for setting, figures in result.items() if setting not in ("ratio", "without")}
    rows.update({f"without-{name}": figures for name, figures in result.get("without", {}).items()})
    width = max(map(len, rows))
    for setting, figures in rows.items():
        if "profile" in figures:
            typer.echo(f"\n{setting}, profile of the timed steps:\n{figures['profile']}")
    for setting, figures in rows.items():
        typer.echo(f"{setting:>{width}}: {figures['examples_per_s']:.2f} examples/s, peak {figures['peak_mb']:.0f} MB")
    if "ratio" in result:
        typer.echo(f"{'ratio':>{width}}: {result['ratio']:.2f}x")
