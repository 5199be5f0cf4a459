"""Where a recipe's training step spends its time: `Trainer.step` timed over N batches after a warm-up, then the
same batches under torch.profiler, its costliest operations printed (self CPU time, and CUDA time on a GPU):

    python benchmarks/step_profile.py recipes/quickstart.toml [--set key=value ...] [--steps 30]
"""
import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    import torch
    from rich.console import Console
    from torch.profiler import ProfilerActivity, profile

    from mmlabel.recipe import load_recipe
    from mmlabel.training.assemble import assemble
    from mmlabel.training.trainer import Trainer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mmlabel-profile-") as scratch:
        trainer = Trainer(assemble(load_recipe(args.recipe, args.overrides), Path(scratch) / "run",
                                   console=Console(stderr=True, quiet=True)))
        loader = trainer.prepare(trainer.parts.splits["train"])
        batches = []
        while len(batches) < args.steps + 10:
            batches += list(loader)[: args.steps + 10 - len(batches)]
        trainer.network.train()
        for batch in batches[:10]:  # warm-up
            trainer.step(batch)
        cuda = trainer.device.type == "cuda"
        started = time.perf_counter()
        for batch in batches[10:]:
            trainer.step(batch)
        trainer.read_losses()
        if cuda:
            torch.cuda.synchronize()
        print(f"{1000 * (time.perf_counter() - started) / args.steps:.1f} ms a step over {args.steps} steps "
              f"({trainer.device}, {torch.get_num_threads()} threads)")
        activities = [ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * cuda
        with profile(activities=activities) as profiler:
            for batch in batches[10:]:
                trainer.step(batch)
            trainer.read_losses()
        sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
        print(profiler.key_averages().table(sort_by=sort, row_limit=20, max_name_column_width=45))


if __name__ == "__main__":
    main()
