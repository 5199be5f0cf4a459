"""The reference recipe's optimised training step at the paper's sizes with the exact EMD and with the Sinkhorn
alignment, alternated in one process on the same batches (so that both see the same load), seconds per step.

    OMP_NUM_THREADS=1 MMLABEL_THREADS=1 python benchmarks/alignment_in_step.py [--rounds 3] [--batches 4]

`mmlabel bench train --recipe dtca --also-alignment sinkhorn` compares the same two settings in separate worker
processes; this script removes the process-to-process variation that dominates on a loaded machine."""
import argparse
import tempfile
import time
from pathlib import Path

import torch

from mmlabel.benchmark import _batches, _build, _train_step, make_workload
from mmlabel.benchmark_models import recipe_model
from mmlabel.recipe import load_recipe
from mmlabel.registry import build

OPTIMISED = ["bf16", "padding", "attention", "fused_adamw", "allocator"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=4)
    arguments = parser.parse_args()
    torch.manual_seed(0)
    workload = Path(tempfile.mkdtemp(prefix="mmlabel-alignment-"))
    make_workload(workload, None)
    model, _ = recipe_model(load_recipe("dtca"), workload, "base")
    job = {"mode": "train", "flags": OPTIMISED, "model": model, "batch": 4, "workload": str(workload), "max_tokens": 60}
    network, dataset, collate = _build(job, torch.device("cpu"))
    stream = _batches(dataset, collate, job)
    batches = [next(stream) for _ in range(arguments.batches)]
    losses = {"emd (exact)": network.alignment_loss,
              "sinkhorn": build("alignment_loss", {"name": "sinkhorn", "cost": "cosine"})}
    step = _train_step(network, torch.device("cpu"), OPTIMISED)
    step(batches[0])  # warm-up
    seconds = {name: [] for name in losses}
    for round_index in range(arguments.rounds):
        order = list(losses.items()) if round_index % 2 == 0 else list(losses.items())[::-1]
        for name, loss in order:
            network.alignment_loss = loss
            started = time.perf_counter()
            for batch in batches:
                step(batch)
            seconds[name].append((time.perf_counter() - started) / len(batches))
    for name, values in seconds.items():
        print(f"{name}: {sorted(values)[len(values) // 2]:.2f} s a step (rounds: {', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()
