"""`mmlabel bench`: examples per second and peak memory of the optimised settings against a naive baseline."""
from pathlib import Path
from typing import Annotated, Optional

import typer

from mmlabel.commands.options import FormatOption, JsonOption, SetOption, echo_json, reader_name

TextSizeOption = Annotated[str, typer.Option(help="base (RoBERTa-base sized) or tiny.")]
RecipeOption = Annotated[Optional[str], typer.Option(
    help="Time this recipe's components, loss, batch size and max_tokens (random weights of the same shapes; a path "
         "or a built-in name such as dtca).")]
FusionHeadOption = Annotated[Optional[str], typer.Option(
    help="Fusion head, the same in both settings (needs --recipe; replaces the recipe's).")]
ImageModelOption = Annotated[str, typer.Option(help="timm image encoder, random weights (without --recipe).")]
BatchOption = Annotated[Optional[int], typer.Option(
    help="Training batch size (prediction: naive uses it, optimised 32). Default 4, or the recipe's.")]
StepsOption = Annotated[int, typer.Option(help="Timed batches per round and setting.")]
RoundsOption = Annotated[int, typer.Option(help="Alternating rounds; the median is reported.")]
FreezeImageOption = Annotated[bool, typer.Option(help="Freeze the image encoder (optimised: cached states).")]
DataOption = Annotated[Optional[Path], typer.Option(help="Draw sentence lengths from this dataset.")]
AlignmentOption = Annotated[Optional[str], typer.Option(
    help="Alignment loss of the optimised setting (default sinkhorn, or the recipe's; emd: exact, POT's network "
         "simplex).")]
NaiveAlignmentOption = Annotated[Optional[str], typer.Option(
    help="Alignment loss of the naive setting (default: ipot, the reference code's, with --recipe; else the same as "
         "optimised).")]
AlsoAlignmentOption = Annotated[Optional[list[str]], typer.Option(
    help="Also time the optimised setting with this alignment loss (repeatable): setting alignment-NAME.")]
AlsoFusionHeadOption = Annotated[Optional[list[str]], typer.Option(
    help="Also time the optimised setting with this fusion head (repeatable): setting fusion-NAME (text: without "
         "the image encoder).")]
OnlyOption = Annotated[Optional[str], typer.Option(
    help="Run one setting: optimised, naive, without-NAME, with-workers, with-compile, alignment-NAME or fusion-NAME.")]
AblateOption = Annotated[bool, typer.Option(
    help="Also run the optimised setting without each optimisation in turn (and, on a CPU, with a decoding worker).")]
CompileOption = Annotated[bool, typer.Option(
    "--compile", help="Also time the optimised setting with the encoders and emissions compiled by torch.compile "
                      "(setting with-compile; 3 warm-up steps).")]
ProfileOption = Annotated[bool, typer.Option(
    help="Profile the timed steps (torch.profiler) and print each setting's table of the costliest operations; "
         "profiling slows them.")]


def bench(
    mode: Annotated[str, typer.Argument(help="train or predict.")],
    text_size: TextSizeOption = "base",
    recipe: RecipeOption = None,
    overrides: SetOption = None,
    fusion_head: FusionHeadOption = None,
    image_model: ImageModelOption = "vit_base_patch16_224",
    batch: BatchOption = None,
    steps: StepsOption = 10,
    rounds: RoundsOption = 3,
    freeze_image: FreezeImageOption = False,
    data: DataOption = None,
    format_name: FormatOption = None,
    alignment: AlignmentOption = None,
    naive_alignment: NaiveAlignmentOption = None,
    also_alignment: AlsoAlignmentOption = None,
    also_fusion_head: AlsoFusionHeadOption = None,
    only: OnlyOption = None,
    ablate: AblateOption = False,
    compile: CompileOption = False,
    profile: ProfileOption = False,
    as_json: JsonOption = False,
) -> None:
    """Measure training or prediction speed of DTCA at the paper's sizes, or of a recipe (random weights, no
    download); --data (read with --format) gives the sentence lengths."""
    from mmlabel.benchmark import bench as run_bench, twitter_lengths

    _check(mode, text_size, only, freeze_image, naive_alignment, also_alignment, also_fusion_head)
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
                       naive_alignment=naive_alignment or ("ipot" if loaded else None),
                       also_alignments=tuple(also_alignment or ()), compile=compile,
                       also_fusion_heads=tuple(also_fusion_head or ()))
    if as_json:
        echo_json(result)
    else:
        _print_result(result)


def _check(mode: str, text_size: str, only: str | None, freeze_image: bool, naive_alignment: str | None,
           also_alignment: list[str] | None, also_fusion_head: list[str] | None) -> None:
    """Every argument that could be misspelt, checked before anything runs (one line, exit 2)."""
    from mmlabel.benchmark import TEXT_SIZES, setting_flags
    from mmlabel.registry import get

    if mode not in ("train", "predict"):
        raise typer.BadParameter("train or predict", param_hint="MODE")
    if text_size not in TEXT_SIZES:
        raise typer.BadParameter(" or ".join(TEXT_SIZES), param_hint="--text-size")
    if only is not None:
        try:
            setting_flags(only, mode, freeze_image)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--only") from None
    for name in [*(also_alignment or ()), *([naive_alignment] if naive_alignment else [])]:
        get("alignment_loss", name)
    for name in also_fusion_head or ():
        get("fusion_head", name)


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
    rows = {setting: figures for setting, figures in result.items()
            if setting not in ("ratio", "without", "alignment_cost")}
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
    if "alignment_cost" in result:
        typer.echo(f"the optimised setting's alignment loss adds {100 * result['alignment_cost']:.1f}% to a step "
                   f"(its step against alignment-none's)")
