"""A recipe's training speed before and after a change, as a ratio measured in one run on one machine:

    python benchmarks/speed_before_after.py --base 25ffc21 [--epochs 3] [--rounds 2] [--out DIR]
    python benchmarks/speed_before_after.py --base 25ffc21 --recipe recipes/dtca.toml --workload --epochs 1 \
        --set train.max_steps_per_epoch=8

trains the recipe (default `recipes/quickstart.toml`) with the code of `--base` (a git revision, exported into a
temporary folder) and with this checkout, alternately (base, this, base, this, ...: both see the same machine load),
each run alone (or, with `--paired`, both at once on a core each), and reads `train_examples_per_s` from each run's `log.jsonl`: every epoch after the first, or with
`--epochs 1` the one epoch. Prints one JSON object: the median examples per second of each side, their ratio, and
every run's figures (with the image counts where the log has them). `--workload` trains on the GPU probe's synthetic
Twitter-like workload (tweet-sized JPEGs, Twitter sentence lengths) with random weights of the recipe's sizes
(`benchmarks/gpu_probe.py`), for a recipe whose data and weights are not on this machine. The CPU model differs
between machines, so only the ratio means anything elsewhere.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def export(revision: str, target: Path) -> Path:
    """The tree of `revision` of this repository, written into `target`."""
    archive = subprocess.run(["git", "-C", str(HERE), "archive", revision], check=True, capture_output=True).stdout
    target.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def start(tree: Path, recipe: str, out: Path, epochs: int, extra: list[str], core: int | None = None):
    """Start one run of `recipe` with the code in `tree` (on one core, with one thread, where `core` is given)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-m", "mmlabel", "train", recipe, "--out", str(out),
               "--set", f"train.epochs={epochs}", *extra]
    if core is not None:
        command = ["taskset", "-c", str(core), *command, "--set", "train.threads=1"]
    return subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, tree: Path, out: Path) -> dict:
    """The figures of a started run, once it has ended."""
    _, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{tree}: training failed:\n{stderr[-2000:]}")
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return {"examples_per_s": [record["train_examples_per_s"] for record in log],
            "images": [record.get("images") for record in log]}


def _workload_overrides(root: Path, recipe: str) -> list[str]:
    """--set options that train `recipe` on the probe's workload with random weights of its sizes."""
    sys.path.insert(0, str(HERE / "benchmarks"))
    from gpu_probe import write_workload

    write_workload(root, {"train": 64, "dev": 16, "test": 8}, photos=32)
    keys = [f"data.root={root}", 'data.images="images"', 'text_encoder.init="random"',
            'text_encoder.model_type="roberta"', 'text_encoder.tokenizer="train"',
            "text_encoder.config_overrides={vocab_size = 50265}", "image_encoder.pretrained=false"]
    return [item for key in keys for item in ("--set", key)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision of the 'before' code")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override, both sides")
    parser.add_argument("--recipe", default="recipes/quickstart.toml", help="a recipe path inside the repository")
    parser.add_argument("--paired", action="store_true",
                        help="run both sides at once, one core and one thread each, swapping cores every round: "
                             "on a machine whose speed drifts, both see the same drift")
    parser.add_argument("--workload", action="store_true",
                        help="train on the GPU probe's synthetic Twitter-like data, random weights of the recipe's sizes")
    args = parser.parse_args()
    extra = [item for override in args.overrides for item in ("--set", override)]
    with tempfile.TemporaryDirectory(prefix="mmlabel-speed-") as scratch:
        folder = args.out or Path(scratch)
        if args.workload:
            extra = [*_workload_overrides(Path(scratch) / "workload", args.recipe), *extra]
        sides = {"before": export(args.base, Path(scratch) / "before"), "after": HERE}
        runs: dict[str, list[dict]] = {"before": [], "after": []}
        for round_index in range(args.rounds):
            if args.paired:  # both at once, a core each, swapping cores every round: the same machine at once
                cores = {side: (index + round_index) % 2 for index, side in enumerate(sides)}
                started = {side: start(tree, args.recipe, folder / f"{side}-{round_index}", args.epochs, extra,
                                       cores[side]) for side, tree in sides.items()}
                done = {side: finish(started[side], sides[side], folder / f"{side}-{round_index}") for side in sides}
            else:
                done = {}
                for side, tree in sides.items():
                    process = start(tree, args.recipe, folder / f"{side}-{round_index}", args.epochs, extra)
                    done[side] = finish(process, tree, folder / f"{side}-{round_index}")
            for side, run in done.items():
                runs[side].append(run)
                print(f"round {round_index + 1} {side}: {run['examples_per_s']} examples/s per epoch",
                      file=sys.stderr)
    first = 1 if args.epochs > 1 else 0
    later = {side: statistics.median(speed for run in side_runs for speed in run["examples_per_s"][first:])
             for side, side_runs in runs.items()}
    print(json.dumps({"base": args.base, "recipe": args.recipe, "epochs": args.epochs, "rounds": args.rounds,
                      "paired": args.paired,
                      "examples_per_s": later, "counted_from_epoch": first + 1, "ratio": later["after"] / later["before"],
                      "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
