"""The learning-rate schedule a recipe produces on its training split, as docs/training.md shows it: the recipe's
own (the paper's warm-up) against the same horizon with no warm-up (the authors' code), one point per optimiser step.

    MMLABEL_DATA=../shared/data python docs/figures/schedule.py recipes/dtca.toml docs/figures/schedule-twitter2015.png

The steps per epoch are those the trainer takes: ceil(training sentences / batch_size) on one process with
grad_accum = 1; the schedule is `mmlabel.training.trainer.linear_schedule`, the trainer's own.
"""
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from mmlabel.data.splits import read_splits  # noqa: E402
from mmlabel.recipe import load_recipe  # noqa: E402
from mmlabel.training.trainer import linear_schedule  # noqa: E402


def rates(settings, steps_per_epoch: int) -> list[float]:
    """The learning rate of every optimiser step of `epochs` epochs."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=settings.lr)
    scheduler = linear_schedule(optimizer, settings, steps_per_epoch)
    values = []
    for _ in range(steps_per_epoch * settings.epochs):
        values.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return values


def main(recipe_path: str, out: str) -> None:
    recipe = load_recipe(recipe_path)
    sentences = len(read_splits(recipe, recipe.data.root_path())["train"])
    steps = math.ceil(sentences / recipe.train.batch_size / recipe.train.grad_accum)
    settings = recipe.train
    horizon = settings.schedule_epochs or settings.epochs
    curves = {f"{recipe_path}: warm-up {settings.warmup_ratio:g} of {horizon} epochs": rates(settings, steps),
              "no warm-up (the authors' code)": rates(settings.model_copy(update={"warmup_ratio": 0.0}), steps)}
    figure, axes = plt.subplots(figsize=(7, 3.2), dpi=110)
    for label, values in curves.items():
        axes.plot([step / steps for step in range(len(values))], values, label=label)
    axes.set_xlabel(f"epoch ({steps} steps of {settings.batch_size} sentences; {sentences} training sentences)")
    axes.set_ylabel("learning rate")
    axes.set_xticks(range(0, settings.epochs + 1, 2))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out)
    reference = curves[next(iter(curves))]
    warmup = int(settings.warmup_ratio * steps * horizon)
    print(f"{sentences} sentences, {steps} steps per epoch, {steps * horizon} planned, {warmup} warm-up steps")
    for epoch in range(1, 7):
        print(f"after epoch {epoch}: {reference[epoch * steps - 1]:.3g}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
