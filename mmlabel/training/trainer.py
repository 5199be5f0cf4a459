"""The training loop: AdamW with linear warm-up then decay, early stopping on dev F1, and the test split evaluated
once, with the dev-selected model. (The reference code chose its best epoch on the test set; this one never looks.)"""

import math
import signal
import time
from dataclasses import asdict, dataclass

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mmlabel.errors import DivergedError, RunInterrupted
from mmlabel.tagger import Tagger
from mmlabel.training import interrupts
from mmlabel.training.batches import Collator, TaggingDataset, make_loader, start_epoch
from mmlabel.training.precision import autocast
from mmlabel.training.seeds import rng_state, set_rng_state


@dataclass
class TrainState:
    """Where a run stands; saved in every checkpoint so `--resume` continues from it, mid-epoch included."""

    epoch: int = 0  # the last finished epoch
    step: int = 0  # optimiser steps so far
    best_score: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the dev score last improved
    stopped_early: bool = False
    batch: int = 0  # batches of epoch `epoch + 1` trained on so far (non-zero in a mid-epoch checkpoint)
    epoch_loss: float = 0.0  # summed loss of those batches
    epoch_examples: int = 0
    epoch_skipped: int = 0  # of those batches, the ones skipped for a non-finite loss
    skipped: int = 0  # batches skipped for a non-finite loss in the whole run

    def finish_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.batch, self.epoch_loss, self.epoch_examples, self.epoch_skipped = 0, 0.0, 0, 0


class Trainer:
    """Fits a `TaggingModel` on train, selects the epoch on dev, writes everything into a `RunDir`.

    Faults: a NaN or infinite loss stops the run naming the batch (or skips it: `train.on_nonfinite`); inside
    `interrupts.stop_requests()` SIGINT and SIGTERM save a checkpoint after the current step and raise
    `RunInterrupted`. A resumed run replays the uninterrupted one exactly on CPU: the batch order is a function of
    (seed, epoch), and checkpoints hold the position within the epoch and every RNG state."""

    def __init__(self, model, recipe, scheme, metric, run, device: torch.device, images=None,
                 console: Console | None = None):
        self.model = model.to(device)
        self.recipe = recipe
        self.train_settings = recipe.train
        self.scheme = scheme
        self.metric = metric
        self.run = run
        self.device = device
        self.images = images
        self.console = console or Console(stderr=True)
        self.features = self._feature_cache()
        self.tagger = Tagger(model, scheme, recipe.data.max_tokens, images, device, self.train_settings.precision,
                             features=self.features)
        self.state = TrainState()
        self.train_examples: list = []
        self.batches_per_epoch = 0
        self._accumulated = 0  # batches whose gradients wait for the next optimiser step
        self._last_checkpoint: str | None = None  # where the last checkpoint stands, for error messages

    # -- the loop ------------------------------------------------------------------------------------------
    def fit(self, train: list, dev: list, test: list, resume: bool = False) -> dict:
        """Train until `epochs` or early stopping, then evaluate the dev-selected model on test once."""
        if self.features is not None:
            self.console.print("the image encoder is frozen: computing each image's patch states once")
            self.features.fill([example.image for example in train + dev + test])
        loader = self._train_loader(train)
        self.train_examples = train
        self.batches_per_epoch = len(loader)
        if self.train_settings.max_steps_per_epoch:
            limit = self.train_settings.max_steps_per_epoch * self.train_settings.grad_accum
            self.batches_per_epoch = min(len(loader), limit)
        steps_per_epoch = math.ceil(self.batches_per_epoch / self.train_settings.grad_accum)
        self.optimizer, self.scheduler = self._optimizer(steps_per_epoch * self.train_settings.epochs)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.train_settings.precision == "fp16")
        if resume and self.run.checkpoint_path.exists():
            self._load_checkpoint()
            self.run.keep_log_until(self.state.epoch)
            self.console.print(f"resuming after {self._position()} (best dev epoch {self.state.best_epoch})")
        while self.state.epoch < self.train_settings.epochs and not self.state.stopped_early:
            self._stop_if_requested()
            self._run_epoch(loader, dev, self.state.epoch + 1)
        return self._finish(dev, test)

    def _run_epoch(self, loader, dev: list, epoch: int) -> None:
        started = time.perf_counter()
        train_loss, examples = self.train_epoch(loader, epoch)
        skipped = self.state.epoch_skipped
        dev_figures, dev_predictions = self.evaluate(dev)
        score = dev_figures[self.metric.main_key]
        improved = score > self.state.best_score
        if improved:
            self.state.best_score, self.state.best_epoch, self.state.bad_epochs = score, epoch, 0
            self.run.save_model(self.model)
            self.run.save_predictions("dev", dev, dev_predictions)
        else:
            self.state.bad_epochs += 1
        self.state.finish_epoch(epoch)
        self.state.stopped_early = self.state.bad_epochs >= self.train_settings.patience
        seconds = time.perf_counter() - started
        self.run.log({"epoch": epoch, "step": self.state.step, "train_loss": train_loss,
                      "lr": self.scheduler.get_last_lr()[0], "dev": _headline(dev_figures), "best": improved,
                      "skipped_batches": skipped, "seconds": round(seconds, 2),
                      "train_examples_per_s": round(examples / seconds, 2)})
        self.console.print(f"epoch {epoch}: loss {train_loss:.4f}  dev {self.metric.main_key} {score:.2f}"
                           f"{'  (best)' if improved else ''}"
                           f"{f'  ({skipped} batches skipped: non-finite loss)' if skipped else ''}")
        self._save_checkpoint()
        self._stop_if_requested(saved=True)

    def train_epoch(self, loader, epoch: int) -> tuple[float, int]:
        """One pass over the training batches, from `state.batch` on (a mid-epoch resume leaves out those already
        trained on); returns the mean loss of the epoch's batches and the number of examples they hold."""
        self.model.train()
        state, accum = self.state, self.train_settings.grad_accum
        start_epoch(loader, epoch, skip=state.batch)
        started, seen = time.perf_counter(), 0
        with self._progress() as progress:
            task = progress.add_task(f"epoch {epoch}", total=self.batches_per_epoch, completed=state.batch,
                                     loss=0.0, lr=0.0, speed=0.0)
            for position, batch in enumerate(loader, start=state.batch):
                if position >= self.batches_per_epoch:
                    break
                update = (position + 1) % accum == 0 or position + 1 == len(loader)
                loss = self.step(batch, update=update)
                size = batch["input_ids"].shape[0]
                state.batch, state.epoch_examples, seen = position + 1, state.epoch_examples + size, seen + size
                state.epoch_loss += loss if loss is not None else 0.0
                progress.update(task, advance=1, loss=state.epoch_loss / max(state.batch - state.epoch_skipped, 1),
                                lr=self.scheduler.get_last_lr()[0], speed=seen / (time.perf_counter() - started))
                if update:
                    self._between_steps()
        return state.epoch_loss / max(state.batch - state.epoch_skipped, 1), state.epoch_examples

    def step(self, batch: dict, update: bool = True) -> float | None:
        """Forward and backward on one batch; with `update`, clip, step the optimiser and the schedule. Returns the
        batch's loss, or None for a batch skipped because its loss is not finite (`train.on_nonfinite = "skip"`)."""
        rows = batch.get("index")
        batch = self._to_device(batch)
        with autocast(self.device, self.train_settings.precision):
            output = self.model(batch)
        loss = None
        if torch.isfinite(output.loss.detach()):
            self.scaler.scale(output.loss / self.train_settings.grad_accum).backward()
            self._accumulated += 1
            loss = float(output.loss.detach())
        else:
            self._nonfinite(float(output.loss.detach()), rows)
        if update:
            self._update()
        return loss

    def evaluate(self, examples: list) -> tuple[dict, list]:
        """The metric's figures and the predicted spans on `examples`."""
        predictions = self.tagger.predict_examples(examples)
        return self.metric.score([example.spans for example in examples], predictions), predictions

    # -- helpers -------------------------------------------------------------------------------------------
    def _finish(self, dev: list, test: list) -> dict:
        self.run.load_model_weights(self.model)
        dev_figures, _ = self.evaluate(dev)
        test_figures, test_predictions = self.evaluate(test)
        self.run.save_predictions("test", test, test_predictions)
        metrics = {"dev": dev_figures, "test": test_figures, "best_epoch": self.state.best_epoch,
                   "epochs": self.state.epoch, "stopped_early": self.state.stopped_early,
                   "skipped_batches": self.state.skipped}
        self.run.save_metrics(metrics)
        return metrics

    def _train_loader(self, train: list):
        transform = self.model.image_encoder.transform if self.model.image_encoder is not None else None
        dataset = TaggingDataset(train, self.scheme, self.images, transform, self.features)
        collate = Collator(self.model.text_encoder.tokenize, self.recipe.data.max_tokens)
        return make_loader(dataset, collate, self.train_settings.batch_size, shuffle=True,
                           seed=self.train_settings.seed, workers=self.train_settings.workers)

    def _feature_cache(self):
        """A cache of the image encoder's states where it is frozen (and the recipe does not opt out)."""
        from mmlabel.training.feature_cache import ImageFeatureCache, is_frozen

        if not (self.train_settings.cache_image_features and self.images is not None
                and is_frozen(self.model.image_encoder)):
            return None
        return ImageFeatureCache(self.model.image_encoder, self.images, self.device, self.train_settings.precision)

    def _optimizer(self, total_steps: int):
        from transformers import get_linear_schedule_with_warmup

        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
        parameters = [(name, p) for name, p in self.model.named_parameters() if p.requires_grad]
        groups = [
            {"params": [p for n, p in parameters if not n.endswith(no_decay)],
             "weight_decay": self.train_settings.weight_decay},
            {"params": [p for n, p in parameters if n.endswith(no_decay)], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=self.train_settings.lr)
        warmup = int(self.train_settings.warmup_ratio * total_steps)
        return optimizer, get_linear_schedule_with_warmup(optimizer, warmup, max(total_steps, 1))

    def _to_device(self, batch: dict) -> dict:
        return {key: value.to(self.device, non_blocking=True) for key, value in batch.items() if key != "index"}

    def _progress(self) -> Progress:
        return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}  "
                                   "{task.fields[speed]:.1f} ex/s"),
                        TimeElapsedColumn(), console=self.console, transient=True)

    def _update(self) -> None:
        """The optimiser step of the accumulated gradients (none if every batch since the last was skipped)."""
        if self._accumulated:
            self.scaler.unscale_(self.optimizer)
            if self.train_settings.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.train_settings.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()  # the schedule keeps its length even when a step had nothing to apply
        self.state.step += 1
        self._accumulated = 0

    def _between_steps(self) -> None:
        """After an optimiser step: the periodic mid-epoch checkpoint, and a stop if a signal asked for one."""
        every = self.train_settings.checkpoint_every
        due = every and self.state.step % every == 0 and self.state.batch < self.batches_per_epoch
        if due:
            self._save_checkpoint()
        self._stop_if_requested(saved=bool(due))

    def _nonfinite(self, value: float, rows) -> None:
        """A NaN or infinite loss: stop naming the batch and the last good checkpoint, or skip and count it."""
        ids = [self.train_examples[row].id for row in rows.tolist()] if rows is not None else []
        shown = ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
        where = (f"step {self.state.step + 1} (epoch {self.state.epoch + 1}, batch {self.state.batch + 1} of "
                 f"{self.batches_per_epoch}), on examples {shown}")
        if self.train_settings.on_nonfinite == "skip":
            self.state.epoch_skipped += 1
            self.state.skipped += 1
            self.console.print(f"skipped a batch: the loss is {value} at {where}")
            return
        self.run.set_status("diverged")
        last = (f"the last good checkpoint is {self.run.checkpoint_path}, saved {self._last_checkpoint}"
                if self._last_checkpoint else "there is no checkpoint yet")
        raise DivergedError(f"the loss is {value} at {where}; {last}; lower train.lr, or set "
                            f"train.on_nonfinite = \"skip\" to skip such batches")

    def _stop_if_requested(self, saved: bool = False) -> None:
        """Under a SIGINT or SIGTERM (see `interrupts`): save a checkpoint unless one was just saved, and stop."""
        number = interrupts.requested()
        if number is None:
            return
        if not saved:
            self._save_checkpoint()
        self.run.set_status("interrupted")
        raise RunInterrupted(f"{signal.Signals(number).name}: stopped after {self._position()} and saved "
                             f"{self.run.checkpoint_path}; continue with --resume", number)

    def _position(self) -> str:
        position = f"epoch {self.state.epoch}"
        if self.state.batch:
            position += f", batch {self.state.batch} of {self.batches_per_epoch} of epoch {self.state.epoch + 1}"
        return f"{position} (step {self.state.step})"

    def _save_checkpoint(self) -> None:
        self.run.save_checkpoint({
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "state": asdict(self.state), "rng": rng_state(),
        })
        self._last_checkpoint = f"after {self._position()}"

    def _load_checkpoint(self) -> None:
        checkpoint = self.run.load_checkpoint()
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.state = TrainState(**checkpoint["state"])
        set_rng_state(checkpoint["rng"])
        self._last_checkpoint = f"after {self._position()}"


def _headline(figures: dict) -> dict:
    """The scalar figures of a metric's result, for the log."""
    return {key: value for key, value in figures.items() if isinstance(value, (int, float))}



