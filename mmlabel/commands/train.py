"""`mmlabel train`, `mmlabel evaluate`, `mmlabel predict`: the toolkit's main job and the use of its results."""
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from mmlabel.commands.options import (DeviceOption, FormatOption, JsonOption, SetOption, SplitOption, echo_json,
                                      images_option)


def train(
    recipe: Annotated[Path, typer.Argument(help="The recipe TOML file, e.g. recipes/dtca.toml.")],
    set_: SetOption = None,
    out: Annotated[Optional[Path], typer.Option(help="Run directory (default: runs/<recipe>-<time>).")] = None,
    seeds: Annotated[Optional[str], typer.Option(help="Run each seed, e.g. 1,2,3, and report mean and std.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the interrupted run in --out.")] = False,
    nproc: Annotated[Optional[int], typer.Option(
        min=1, help="Data-parallel training in N processes on this machine (one per GPU): launches torchrun.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Train a tagger from a recipe; the best epoch is chosen on dev, the test split is evaluated once. --json prints
    {"run", "best_epoch", "dev", "test"} (with --seeds: {"runs", "seeds", "dev", "test"} of means and stds)."""
    from mmlabel.device import resolve_device
    from mmlabel.recipe import load_recipe
    from mmlabel.environment import recipe_folder
    from mmlabel.training import distributed
    from mmlabel.training.runner import default_out, train_once, train_seeds

    from mmlabel.errors import RunInterrupted

    loaded = load_recipe(recipe, set_ or [])
    folder = recipe_folder(recipe)  # whose git commit run.json records
    resolve_device(loaded.train.device)  # a device this machine lacks: one line, before any process or run starts
    if resume and out is None:
        raise typer.BadParameter("--resume needs --out, the run directory to continue", param_hint="--resume")
    if nproc is not None and nproc > 1:
        out = out or default_out(recipe, loaded.output.dir)  # chosen once, here, for every process
        flags = ["--resume"] * resume + ["--json"] * as_json
        raise typer.Exit(_launch(nproc, _train_command(recipe, set_ or [], out, seeds)[1:] + flags))
    processes = distributed.start(loaded.train.device)
    out = out or processes.broadcast(default_out(recipe, loaded.output.dir))
    try:
        if seeds:
            summary = train_seeds(loaded, out, _parse_seeds(seeds), resume, recipe_folder=folder)
            if processes.is_main and as_json:
                echo_json({"runs": str(out), **summary})
            elif processes.is_main:
                _print_summary(out, summary)
        else:
            metrics = train_once(loaded, out, resume, recipe_folder=folder)
            if processes.is_main and as_json:
                echo_json({"run": str(out), **metrics})
            elif processes.is_main:
                _print_metrics(out, metrics)
    except RunInterrupted as error:
        command = _resume_command(recipe, set_ or [], out, seeds, processes)
        raise distributed.everywhere(RunInterrupted(
            str(error).replace("continue with --resume", f"resume with: {command}"), error.signal_number)) from None


def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory, or the folder of train --seeds (every "
                                                 "seed is evaluated).")],
    split: SplitOption = "test",
    data: Annotated[Optional[Path], typer.Option(help="Other data: a directory with splits, or one file "
                                                      "(default: the run's own data).")] = None,
    format_name: FormatOption = None,
    images: images_option("images/ beside --data; for the run's own data, its recipe's") = None,
    device: DeviceOption = "auto",
    as_json: JsonOption = False,
) -> None:
    """Score a trained model on a split of its own data or of other data (--data, read with --format, its images
    from --images); prints the run's metric's figures. Given the folder of `train --seeds`, scores every seed-N run
    in it and prints each seed's figures and their mean ± std (--json: {"seeds", "runs": {"seed-N": figures},
    "summary": {figure: {"mean", "std"}}})."""
    from mmlabel.device import keep_freed_memory, resolve_device
    from mmlabel.evaluation import evaluate_run
    from mmlabel.run_dir import seed_runs

    resolve_device(device)  # a device this machine lacks: one line, before the model or the data are read
    keep_freed_memory()  # this process's choice; the library leaves the allocator alone
    runs = seed_runs(run_dir)
    if not runs:
        figures = evaluate_run(run_dir, split, data, format_name, images, device=device)
        if as_json:
            echo_json(figures)
        else:
            _figure_table(f"{run_dir} on {split}", figures)
        return
    from mmlabel.training.runner import summarise

    each = {run.name: evaluate_run(run, split, data, format_name, images, device=device) for run in runs}
    if as_json:
        echo_json({"seeds": [int(name.removeprefix("seed-")) for name in each], "runs": each,
                   "summary": summarise(list(each.values()))})
    else:
        _seeds_table(f"{run_dir} on {split}", each)


class MissingImage(str, Enum):
    """`predict --missing-image`: the values of `data.missing_image`."""

    error = "error"
    blank = "blank"


def predict(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory (of train --seeds: one seed-N run).")],
    text: Annotated[Optional[str], typer.Option(help="One post's raw text.")] = None,
    image: Annotated[Optional[Path], typer.Option(
        help="The post's image (without it, a model that reads images sees a blank one, with a warning).")] = None,
    context: Annotated[Optional[str], typer.Option(
        help="Text about the post (a caption, OCR text, knowledge): the model's context channel (data.context), "
             "read after the words and never tagged.")] = None,
    input: Annotated[Optional[Path], typer.Option("--input", help="JSONL: one {tokens|text, image, context} per "
                                                                  "line.")] = None,
    output: Annotated[Optional[Path], typer.Option(help="Where --input's predictions go (JSONL).")] = None,
    images: images_option("the folder of the --input file") = None,
    device: DeviceOption = "auto",
    missing_image: Annotated[Optional[MissingImage], typer.Option(
        help="An image that is missing, truncated or damaged: stop with an error naming it, or tag its post with a "
             "blank image and a warning (default: the run's data.missing_image).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Label new posts with a trained model: one with --text/--image (a line per span: its words, a tab, its label;
    --json: [{words, start, end, label, start_char, end_char}]; the text is split into words by the run's
    `data.tokenizer`), many with --input/--output (--images: the folder of --input's images; a malformed line stops
    the command before anything is written). Posts longer than the model's `data.max_tokens` are tagged in
    overlapping windows: every word gets a tag."""
    from mmlabel.device import keep_freed_memory, resolve_device
    from mmlabel.tagger import Post, Tagger, predict_jsonl
    from mmlabel.threads import use_threads

    _check_predict_options(text, input, output, context, as_json)
    resolve_device(device)  # a device this machine lacks: one line, before the model loads
    keep_freed_memory()  # this process's choice; the library leaves the allocator alone
    tagger = Tagger.load(run_dir, device=device, missing_image=missing_image.value if missing_image else None)
    tagger.image_remedy = "give --missing-image blank to tag its post with a blank image instead"
    use_threads()  # and its compute threads (mmlabel.threads)
    if text is not None:
        found = _predict_one(tagger, Post(text, image, context or None))
        spans = [{"words": " ".join(found.words[span.start:span.end]), **span.to_dict()} for span in found.spans]
        if as_json:
            echo_json(spans)
        else:
            for span in spans:
                typer.echo(f"{span['words']}\t{span['label']}")
        return
    bad = predict_jsonl(tagger, input, output, images or input.parent)
    if bad:
        for line, reason in bad:
            print(f"error: {input}:{line}: {reason}" if line else f"error: {input}: {reason}", file=sys.stderr)
        print(f"error: {len(bad)} malformed line{'s' * (len(bad) > 1)} in {input}: nothing written to {output}",
              file=sys.stderr)
        raise typer.Exit(2)


def _check_predict_options(text, input, output, context, as_json) -> None:
    """`predict`'s options that go together: one post (--text, with --context and --json) or a file (--input with
    --output)."""
    if (text is None) == (input is None):
        raise typer.BadParameter("give either --text or --input", param_hint="--text/--input")
    if context is not None and text is None:
        raise typer.BadParameter("--context goes with --text (--input lines carry a 'context' field)",
                                 param_hint="--context")
    if as_json and text is None:
        raise typer.BadParameter("--json goes with --text (--input writes JSON lines to --output)", param_hint="--json")
    if input is not None and output is None:
        raise typer.BadParameter("--input needs --output", param_hint="--output")


def _predict_one(tagger, post):
    """The prediction of --text's post; without --image, a model that reads images warns in the command's words."""
    import warnings

    from mmlabel.log import warn

    if tagger.multimodal and post.image is None:
        warn("this model reads images: without --image it sees a blank one")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"1 of 1 posts have no image")  # said above, with the option
        return tagger.predict([post])[0]


def _resume_command(recipe: Path, overrides: list[str], out: Path, seeds: str | None, processes=None) -> str:
    """The command line that continues an interrupted run (with --out spelt out: the default one has a time in it);
    a run of several processes on one machine resumes with as many (any number would do)."""
    import shlex

    words = _train_command(recipe, overrides, out, seeds)
    if processes is not None and processes.enabled and processes.local_world_size == processes.world_size:
        words += ["--nproc", str(processes.world_size)]
    return shlex.join([*words, "--resume"])


def _train_command(recipe: Path, overrides: list[str], out: Path, seeds: str | None) -> list[str]:
    words = ["mmlabel", "train", str(recipe), "--out", str(out)]
    words += [word for override in overrides for word in ("--set", override)]
    return words + (["--seeds", seeds] if seeds else [])


def _launch(nproc: int, arguments: list[str]) -> int:
    """`mmlabel ARGUMENTS` in `nproc` processes started by torchrun on this machine (`mmlabel.training.torchrun`);
    their exit code. SIGINT and SIGTERM are passed on to torchrun, which passes them on to every process (they
    checkpoint and stop together)."""
    import os
    import signal
    import subprocess

    if "WORLD_SIZE" in os.environ:
        raise typer.BadParameter("already running under torchrun: leave --nproc out", param_hint="--nproc")
    command = [sys.executable, "-m", "mmlabel.training.torchrun", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "mmlabel", *(["--debug"] if os.environ.get("MMLABEL_DEBUG") else []), *arguments]
    # a session of its own: a Ctrl-C in the terminal reaches torchrun once, through us, not twice
    process = subprocess.Popen(command, start_new_session=True)
    received: list[int] = []

    def pass_on(number, frame) -> None:
        received.append(number)
        process.send_signal(number)

    previous = {number: signal.signal(number, pass_on) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = process.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    # torchrun exits 1 after passing a signal on; report it as one process would: 130 for SIGINT, 143 for SIGTERM
    return 128 + received[0] if received and code != 0 else code


def _parse_seeds(text: str) -> list[int]:
    try:
        return [int(seed) for seed in text.split(",") if seed.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}", param_hint="--seeds") from None


def _print_metrics(out: Path, metrics: dict) -> None:
    typer.echo(f"run: {out}")
    typer.echo(f"best dev epoch: {metrics['best_epoch']} (the test split was evaluated once, with that model)")
    _split_table({split: [f"{metrics[split][key]:.2f}" for key in FIGURES] for split in ("dev", "test")})


def _print_summary(out: Path, summary: dict) -> None:
    seeds = summary["seeds"]
    if len(seeds) == 1:  # no spread to show
        typer.echo(f"run: {out}/seed-{seeds[0]}")
        _split_table({split: [f"{summary[split][key]['mean']:.2f}" for key in FIGURES] for split in ("dev", "test")})
        return
    typer.echo(f"runs: {out}/seed-{{{','.join(map(str, seeds))}}}  (mean ± std over the seeds)")
    _split_table({split: [f"{summary[split][key]['mean']:.2f} ± {summary[split][key]['std']:.2f}" for key in FIGURES]
                  for split in ("dev", "test")})


FIGURES = ("precision", "recall", "f1")


def _split_table(rows: dict[str, list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("split", *FIGURES)
    for split, cells in rows.items():
        table.add_row(split, *cells)
    Console().print(table)


def _figure_table(title: str, figures: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("figure", "value", title=title)
    for key, value in figures.items():
        if isinstance(value, (int, float)):
            table.add_row(key, _number(value))
    Console().print(table)


def _seeds_table(title: str, runs: dict[str, dict]) -> None:
    """Each seed's figures side by side, and their mean ± std where they differ (the counts of gold spans do not)."""
    import statistics

    from rich.console import Console
    from rich.table import Table

    table = Table("figure", *runs, *(["mean ± std"] if len(runs) > 1 else []), title=title)
    first = next(iter(runs.values()))
    for key, value in first.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        values = [figures[key] for figures in runs.values()]
        spread = [] if len(values) == 1 else [_number(values[0]) if len(set(values)) == 1 else
                                              f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"]
        table.add_row(key, *map(_number, values), *spread)
    Console().print(table)


def _number(value: int | float) -> str:
    """A figure as the table shows it: a count as a whole number, a score with two decimals."""
    return str(value) if isinstance(value, int) else f"{value:.2f}"
