"""How long one epoch of a recipe's training loader takes alone (gathering, decoding or reading photos,
tokenising or padding, collating; no model step), with the mmlabel found first on PYTHONPATH, so that the same
command times two versions of the code:

    PYTHONPATH=OLD_CHECKOUT python benchmarks/loader_epoch.py recipes/quickstart.toml
    python benchmarks/loader_epoch.py recipes/quickstart.toml

It works with the trainer before and after its split into parts (mmlabel.training.assemble): before, it stops
`Trainer.fit` at its start and takes the loader it built. Prints seconds per epoch for three epochs.
"""
import sys
import tempfile
import time
from pathlib import Path


def training_loader(recipe, out: Path):
    try:
        from mmlabel.training.assemble import assemble
    except ImportError:  # the trainer before its split: a Trainer built by the runner, whose fit is cut short
        import mmlabel.training.trainer as trainer_module
        from mmlabel.training import runner

        built = {}

        def fit(self, train, dev, test, resume=False):
            built["loader"] = self._train_loader(train)
            return {}

        trainer_module.Trainer.fit = fit
        runner._train_once(recipe, out, False, None)
        return built["loader"]
    from mmlabel.training.trainer import Trainer

    trainer = Trainer(assemble(recipe, out))
    return trainer._train_loader(trainer.parts.splits["train"])


def main() -> None:
    from mmlabel.data.batches import start_epoch
    from mmlabel.recipe import load_recipe

    recipe = load_recipe(sys.argv[1] if len(sys.argv) > 1 else "recipes/quickstart.toml", sys.argv[2:])
    with tempfile.TemporaryDirectory(prefix="mmlabel-loader-") as scratch:
        loader = training_loader(recipe, Path(scratch) / "run")
        for epoch in (1, 2, 3):
            start_epoch(loader, epoch)
            started, batches = time.perf_counter(), sum(1 for _ in loader)
            print(f"epoch {epoch}: {time.perf_counter() - started:.2f} s for {batches} batches")


if __name__ == "__main__":
    main()
