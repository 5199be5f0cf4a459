"""`mmlabel bench`: examples per second and peak memory of the optimised settings against a naive baseline."""
from pathlib import Path
from typing import Annotated, Optional

import typer

from mmlabel.commands.options import FormatOption, JsonOption, SetOption, echo_json, reader_name


def bench(
    mode: Annotated[str, typer.Argument(help="train or predict.")],
    text_size: Annotated[str, typer.Option(help="base (RoBERTa-base sized) or tiny.")] = "base",
    recipe: Annotated[Optional[str], typer.Option(help="Time this recipe's components, loss, batch size and "
                                                       "max_tokens (random weights of the same shapes; a path "
                                                       "or a built-in name such as dtca).")] = None,
    overrides: SetOption = None,
    fusion_head: Annotated[Optional[str], typer.Option(help="Fusion head, the same in both settings (with "
                                                            "--recipe: replaces the recipe's).")] = None,
    image_model: Annotated[str, typer.Option(help="timm image encoder, random weights (without --recipe).")] = "vit_base_patch16_224",
    batch: Annotated[Optional[int], typer.Option(help="Training batch size (prediction: naive uses it, optimised "
                                                      "32). Default 4, or the recipe's.")] = None,
    steps: Annotated[int, typer.Option(help="Timed batches per round and setting.")] = 10,
    rounds: Annotated[int, typer.Option(help="Alternating rounds; the median is reported.")] = 3,
    freeze_image: Annotated[bool, typer.Option(help="Freeze the image encoder (optimised: cached states).")] = False,
    data: Annotated[Optional[Path], typer.Option(help="Draw sentence lengths from this dataset.")] = None,
    format_name: FormatOption = None,
    alignment: Annotated[Optional[str], typer.Option(help="Alignment loss of the optimised setting (default "
                                                          "sinkhorn, or the recipe's; emd: exact, POT's network "
                                                          "simplex).")] = None,
    naive_alignment: Annotated[Optional[str], typer.Option(help="Alignment loss of the naive setting (default: "
                                                                "the same as optimised).")] = None,
    only: Annotated[Optional[str], typer.Option(help="Run one setting: optimised, naive, without-NAME or "
                                                     "with-workers.")] = None,
    ablate: Annotated[bool, typer.Option(help="Also run the optimised setting without each optimisation in turn "
                                              "(and, on a CPU, with a decoding worker).")] = False,
    profile: Annotated[bool, typer.Option(help="Profile the timed steps (torch.profiler) and print each setting's "
                                              "table of the costliest operations; profiling slows them.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Measure training or prediction speed of DTCA at the paper's sizes, or of a recipe (random weights, no
    download); --data (read with --format) gives the sentence lengths."""
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
    loaded = _recipe(recipe, overrides, fusion_head, alignment, batch, freeze_image) if recipe or overrides else None
    if loaded is None and fusion_head:
        raise typer.BadParameter("give it with --recipe (or use --set fusion_head=NAME there)",
                                 param_hint="--fusion-head")

    def say(message: str) -> None:  # progress on stderr, so that --json output stays parseable
        typer.echo(message, err=True)

    result = run_bench(mode, text_size=text_size, image_model=image_model, batch=batch or 4, steps=steps,
                       rounds=rounds, freeze_image=freeze_image, lengths=lengths, only=only, progress=say,
                       alignment=alignment or "sinkhorn", ablate=ablate, profile=profile, recipe=loaded,
                       naive_alignment=naive_alignment)
    if as_json:
        echo_json(result)
    else:
        _print_result(result)


def _recipe(path: str | None, overrides: list[str] | None, fusion_head: str | None, alignment: str | None,
            batch: int | None, freeze_image: bool):
    """The recipe to time, with the command line's swaps (a component swapped by name keeps only its own options),
    batch size and frozen image encoder."""
    from mmlabel.recipe import load_recipe

    if path is None:
        raise typer.BadParameter("--set needs --recipe", param_hint="--set")
    swaps = [f"fusion_head.name={fusion_head}"] * bool(fusion_head) + [f"alignment_loss.name={alignment}"] * bool(alignment)
    swaps += [f"train.batch_size={batch}"] * bool(batch) + ["image_encoder.freeze=true"] * freeze_image
    return load_recipe(path, [*(overrides or []), *swaps])


def _print_result(result: dict) -> None:
    """Each setting's profile table (with --profile), then a line of figures per setting and the ratio."""
    rows = {setting: figures for setting, figures in result.items() if setting not in ("ratio", "without")}
    rows.update({f"without-{name}": figures for name, figures in result.get("without", {}).items()})
    width = max(map(len, rows))
    for setting, figures in rows.items():
        if "profile" in figures:
            typer.echo(f"\n{setting}, profile of the timed steps:\n{figures['profile']}")
    for setting, figures in rows.items():
        alignment = (f", alignment {figures['alignment_ms']:.1f} of {figures['step_ms']:.0f} ms a step "
                     f"({100 * figures['alignment_share']:.1f}%)" if "alignment_share" in figures else "")
        typer.echo(f"{setting:>{width}}: {figures['examples_per_s']:.2f} examples/s, peak {figures['peak_mb']:.0f} MB"
                   f"{alignment}")
    if "ratio" in result:
        typer.echo(f"{'ratio':>{width}}: {result['ratio']:.2f}x")
