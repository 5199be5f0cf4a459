"""The quickstart's training speed before and after a change, as a ratio measured in one run on one machine:

    python benchmarks/quickstart_speed.py --base 25ffc21 [--epochs 3] [--rounds 2] [--out DIR]

trains `recipes/quickstart.toml` with the code of `--base` (a git revision, exported into a temporary folder) and
with this checkout, alternately (base, this, base, this, ...: both see the same machine load), each run alone, and
reads `train_examples_per_s` of every epoch after the first from each run's `log.jsonl`, with the decoded-photo
counts where the log has them. Prints one JSON object: the median examples per second of each side, their ratio, and
every run's figures. The CPU model differs between machines, so only the ratio means anything elsewhere.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def export(revision: str, target: Path) -> Path:
    """The tree of `revision` of this repository, written into `target`."""
    archive = subprocess.run(["git", "-C", str(HERE), "archive", revision], check=True, capture_output=True).stdout
    target.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def train(tree: Path, out: Path, epochs: int, extra: list[str]) -> dict:
    """One quickstart run with the code in `tree`; its per-epoch figures."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-m", "mmlabel", "train", "recipes/quickstart.toml", "--out", str(out),
               "--set", f"train.epochs={epochs}", *extra]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{tree}: training failed:\n{result.stderr[-2000:]}")
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return {"seconds": round(time.perf_counter() - started, 1),
            "examples_per_s": [record["train_examples_per_s"] for record in log],
            "images": [record.get("images") for record in log]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision of the 'before' code")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override, both sides")
    args = parser.parse_args()
    extra = [item for override in args.overrides for item in ("--set", override)]
    with tempfile.TemporaryDirectory(prefix="mmlabel-speed-") as scratch:
        folder = args.out or Path(scratch)
        sides = {"before": export(args.base, Path(scratch) / "before"), "after": HERE}
        runs: dict[str, list[dict]] = {"before": [], "after": []}
        for round_index in range(args.rounds):
            for side, tree in sides.items():
                run = train(tree, folder / f"{side}-{round_index}", args.epochs, extra)
                runs[side].append(run)
                print(f"round {round_index + 1} {side}: {run['examples_per_s']} examples/s per epoch",
                      file=sys.stderr)
    later = {side: statistics.median(speed for run in side_runs for speed in run["examples_per_s"][1:])
             for side, side_runs in runs.items()}
    print(json.dumps({"base": args.base, "epochs": args.epochs, "rounds": args.rounds,
                      "examples_per_s_after_epoch_1": later, "ratio": later["after"] / later["before"],
                      "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
