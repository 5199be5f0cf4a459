"""The training loop: AdamW with linear warm-up then decay over a planned horizon (`train.schedule_epochs`), early
stopping on dev F1, and the test split evaluated once, with the dev-selected model. (The reference code chose its best
epoch on the test set; this one never looks.)"""

import math
import signal
import time
from dataclasses import asdict, dataclass, field

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mmlabel.errors import DivergedError, RunError, RunInterrupted
from mmlabel.tagger import Tagger
from mmlabel.training import distributed, interrupts
from mmlabel.data.batches import Collator, TaggingDataset, loader_workers, make_loader, start_epoch
from mmlabel.data.image_store import pixel_source, prepare_photos
from mmlabel.data.token_rows import TokenRows
from mmlabel.device import autocast
from mmlabel.run_dir import without_pooler
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
    batch: int = 0  # batches of epoch `epoch + 1` trained on so far, by all processes (non-zero mid-epoch)
    epoch_loss: float = 0.0  # summed loss of this process's batches (in a checkpoint: of every process's)
    epoch_examples: int = 0  # and their examples
    epoch_batches: int = 0  # and how many of them had a finite loss
    epoch_skipped: int = 0  # batches of the epoch skipped for a non-finite loss, by all processes
    skipped: int = 0  # batches skipped for a non-finite loss in the whole run
    epoch_terms: dict = field(default_factory=dict)  # LOSS_TERMS -> summed like epoch_loss
    epoch_lrs: list = field(default_factory=list)  # each parameter group's learning rate at the epoch's first step

    def finish_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.batch, self.epoch_loss, self.epoch_examples, self.epoch_batches, self.epoch_skipped = 0, 0.0, 0, 0, 0
        self.epoch_terms, self.epoch_lrs = {}, []


# The loss's parts, raw and as weighted into the loss (mmlabel.model.ModelOutput), logged as each epoch's means.
LOSS_TERMS = ("crf", "text", "align", "weighted_crf", "weighted_text", "weighted_align")


class Trainer:
    """Fits a `TaggingModel` on train, selects the epoch on dev, writes everything into a `RunDir`.

    Faults: a NaN or infinite loss stops the run naming the batch (or skips it: `train.on_nonfinite`); inside
    `interrupts.stop_requests()` SIGINT and SIGTERM save a checkpoint after the current step and raise
    `RunInterrupted`. A resumed run replays the uninterrupted one exactly on CPU: the batch order is a function of
    (seed, epoch), and checkpoints hold the position within the epoch and every RNG state.

    Under torchrun (`distributed`), every process runs this same loop in step with the others on its share of the
    batches, through DDP (`self.network`); `self.model` is the module itself, whose state_dict is what is saved."""

    def __init__(self, model, recipe, scheme, metric, run, device: torch.device, images=None,
                 console: Console | None = None):
        self.model = model.to(device)
        self.processes = distributed.current()
        self.network = self.model  # wrapped in DDP by `fit` when several processes train
        self.recipe = recipe
        self.train_settings = recipe.train
        self.scheme = scheme
        self.metric = metric
        self.run = run
        self.device = device
        self.images = images
        self.pixels = pixel_source(images, model.image_encoder)  # the image store (or decoding each time)
        self.text = TokenRows.for_encoder(model.text_encoder, recipe.data.max_tokens)  # each sentence tokenised once
        self.workers = loader_workers(self.train_settings.workers, device)
        self.console = console or Console(stderr=True)
        self.features = self._feature_cache()
        self.tagger = Tagger(model, scheme, recipe.data.max_tokens, self.pixels, device, self.train_settings.precision,
                             features=self.features, workers=self.workers, text=self.text)
        self.state = TrainState()
        self.train_examples: list = []
        self.batches_per_epoch = 0
        self._accumulated = 0  # batches whose gradients wait for the next optimiser step
        self._batch_terms: dict[str, float] = {}  # the last finite batch's loss terms (LOSS_TERMS)
        self._last_checkpoint: str | None = None  # where the last checkpoint stands, for error messages

    # -- the loop ------------------------------------------------------------------------------------------
    def fit(self, train: list, dev: list, test: list, resume: bool = False) -> dict:
        """Train until `epochs` or early stopping, then evaluate the dev-selected model on test once."""
        prepare_photos(self.pixels, [example.image for example in train + dev + test], self.console)
        if self.features is not None:
            self.console.print("the image encoder is frozen: computing each image's patch states once")
            self.features.fill([example.image for example in train + dev + test])
        loader = self._train_loader(train)
        self._probe(loader)
        self.train_examples = train
        self.batches_per_epoch = loader.batch_sampler.total  # over all processes
        world_size = self.processes.world_size
        if self.train_settings.max_steps_per_epoch:
            limit = self.train_settings.max_steps_per_epoch * self.train_settings.grad_accum * world_size
            self.batches_per_epoch = min(self.batches_per_epoch, limit)
        rounds = math.ceil(self.batches_per_epoch / world_size)  # each process's batches
        steps_per_epoch = math.ceil(rounds / self.train_settings.grad_accum)
        self.optimizer, self.scheduler = self._optimizer(steps_per_epoch)
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
        from mmlabel.threads import use_threads

        use_threads(self.train_settings.threads)  # this process's share, as other runs start or end
        started = time.perf_counter()
        train_loss, examples = self.train_epoch(loader, epoch)
        skipped, terms, lrs = self.state.epoch_skipped, self._epoch_terms(), self.state.epoch_lrs
        dev_figures, dev_predictions = self.evaluate(dev)
        score = dev_figures[self.metric.main_key]
        improved = self.processes.broadcast(score > self.state.best_score)  # decided once, on rank 0
        if improved:
            self.state.best_score, self.state.best_epoch, self.state.bad_epochs = score, epoch, 0
            self.run.save_model(self.model)
            self.run.save_predictions("dev", dev, dev_predictions)
        else:
            self.state.bad_epochs += 1
        self.state.finish_epoch(epoch)
        self.state.stopped_early = self.state.bad_epochs >= self.train_settings.patience
        seconds = time.perf_counter() - started
        record = {"epoch": epoch, "step": self.state.step, "train_loss": train_loss,
                  "terms": {key: terms[key] for key in LOSS_TERMS[:3]},
                  "weighted_terms": {key[len("weighted_"):]: terms[key] for key in LOSS_TERMS[3:]},
                  **self._learning_rates(lrs), "dev": _headline(dev_figures), "best": improved,
                  "skipped_batches": skipped, "seconds": round(seconds, 2),
                  "train_examples_per_s": round(examples / seconds, 2)}
        if self.pixels is not None:  # blank images included: what data.missing_image = "blank" stood in for
            record["images"] = self.pixels.counts()
        self.run.log(record)
        self.console.print(f"epoch {epoch}: loss {train_loss:.4f} = crf {terms['weighted_crf']:.4f} + text "
                           f"{terms['weighted_text']:.4f} + align {terms['weighted_align']:.4f} (raw "
                           f"{terms['crf']:.4f}, {terms['text']:.4f}, {terms['align']:.4f})  "
                           f"dev {self.metric.main_key} {score:.2f}"
                           f"{'  (best)' if improved else ''}"
                           f"{f'  ({skipped} batches skipped: non-finite loss)' if skipped else ''}",
                           soft_wrap=True)  # one line, however narrow the console
        self._save_checkpoint()
        self._stop_if_requested(saved=True)

    def train_epoch(self, loader, epoch: int) -> tuple[float, int]:
        """One pass over the training batches, from `state.batch` on (a mid-epoch resume leaves out those already
        trained on); returns the mean loss of the epoch's batches and the number of examples they hold. With N
        processes, each round trains N batches at once, one per process."""
        self.network.train()
        state, accum, world_size = self.state, self.train_settings.grad_accum, self.processes.world_size
        start_epoch(loader, epoch, skip=state.batch)
        if state.batch == 0:
            state.epoch_lrs = list(self.scheduler.get_last_lr())
        started, seen, rounds = time.perf_counter(), 0, 0
        with self._progress() as progress:
            task = progress.add_task(f"epoch {epoch}", total=self.batches_per_epoch, completed=state.batch,
                                     loss=0.0, lr=0.0, speed=0.0)
            for batch in loader:
                if state.batch >= self.batches_per_epoch:
                    break
                rounds += 1  # checkpoints fall between steps, so a resumed epoch starts a window afresh too
                done = min(state.batch + world_size, self.batches_per_epoch)
                update = rounds % accum == 0 or done == self.batches_per_epoch
                loss = self.step(batch, update=update)
                size = batch["input_ids"].shape[0]
                state.batch, state.epoch_examples, seen = done, state.epoch_examples + size, seen + size
                if loss is not None:
                    state.epoch_loss, state.epoch_batches = state.epoch_loss + loss, state.epoch_batches + 1
                    for key, value in self._batch_terms.items():
                        state.epoch_terms[key] = state.epoch_terms.get(key, 0.0) + value
                progress.update(task, completed=state.batch, loss=state.epoch_loss / max(state.epoch_batches, 1),
                                lr=self.scheduler.get_last_lr()[0], speed=seen / (time.perf_counter() - started))
                if update:
                    self._between_steps()
        return self._epoch_totals()

    def step(self, batch: dict, update: bool = True) -> float | None:
        """Forward and backward on one batch; with `update`, clip, step the optimiser and the schedule. Returns the
        batch's loss, or None for a batch skipped because its loss is not finite (`train.on_nonfinite = "skip"`)."""
        rows = batch.get("index")
        batch = self._to_device(batch)
        loss = None
        with self.processes.no_sync(self.network, accumulating=not update):
            with autocast(self.device, self.train_settings.precision):
                output = self.network(batch)
            value = float(output.loss.detach())
            # every process skips, or none does: a backward pass in some processes only would hang DDP
            if not self.processes.largest(int(not math.isfinite(value))):
                self.scaler.scale(output.loss / self.train_settings.grad_accum).backward()
                self._accumulated, loss = self._accumulated + 1, value
                self._batch_terms = _terms(output)
            else:
                self._nonfinite(value, rows)
                if update and self.processes.enabled:
                    self._drop_window(output.loss)
        if update:
            self._update()
        return loss

    def evaluate(self, examples: list) -> tuple[dict, list]:
        """The metric's figures and the predicted spans on `examples`. With N processes, each predicts every Nth
        batch of the one-process evaluation and the shares are gathered: the figures are the one-process figures."""
        processes = self.processes
        shares = processes.gather(self.tagger.predict_shard(examples, rank=processes.rank,
                                                             world_size=processes.world_size))
        predicted = {index: spans for share in shares for index, spans in share.items()}
        predictions = [predicted[index] for index in range(len(examples))]
        return self.metric.score([example.spans for example in examples], predictions), predictions

    # -- helpers -------------------------------------------------------------------------------------------
    def _finish(self, dev: list, test: list) -> dict:
        self.processes.barrier()  # rank 0 has written the best weights
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
        dataset = TaggingDataset(train, self.scheme, self.pixels, self.features, self.text)
        collate = Collator.for_encoder(self.model.text_encoder, self.recipe.data.max_tokens)
        return make_loader(dataset, collate, self.train_settings.batch_size, shuffle=True,
                           seed=self.train_settings.seed, workers=self.workers,
                           rank=self.processes.rank, world_size=self.processes.world_size)

    def _probe(self, loader) -> None:
        """Check what each component returns on the first training examples, before any step (`contracts`); with
        several processes, find the parameters the loss leaves out and wrap the model in DDP."""
        from mmlabel.probe import check_model_outputs

        items = [loader.dataset[index] for index in range(min(len(loader.dataset), 4))]
        batch = self._to_device(loader.collate_fn(items)) if items else None
        if batch is not None:
            with autocast(self.device, self.train_settings.precision):
                check_model_outputs(self.model, batch)
        if self.processes.enabled:
            unused = []
            if batch is not None:
                with autocast(self.device, self.train_settings.precision):
                    unused = distributed.unused_parameters(self.model, batch)
            if unused:
                self.console.print(f"{len(unused)} parameters get no gradient ({', '.join(unused[:3])}"
                                   f"{', ...' if len(unused) > 3 else ''}): DDP looks for them every step")
            self.network = self.processes.wrap(self.model, self.device, unused)

    def _feature_cache(self):
        """A cache of the image encoder's states where it is frozen (and the recipe does not opt out)."""
        from mmlabel.feature_cache import ImageFeatureCache, is_frozen

        if not (self.train_settings.cache_image_features and self.pixels is not None
                and is_frozen(self.model.image_encoder)):
            return None
        return ImageFeatureCache(self.model.image_encoder, self.pixels, self.device, self.train_settings.precision)

    def _optimizer(self, steps_per_epoch: int):
        settings = self.train_settings
        groups = parameter_groups(self.model, settings.weight_decay, settings.lr, settings.head_lr)
        # fused: one kernel over all parameters instead of ~10 ops per tensor (CPU and CUDA); measured 9x faster
        # optimiser steps for 22M parameters on this 2-core CPU
        optimizer = torch.optim.AdamW(groups, lr=settings.lr, fused=self.device.type in ("cpu", "cuda"))
        return optimizer, linear_schedule(optimizer, settings, steps_per_epoch)

    def _learning_rates(self, at_start: list[float]) -> dict[str, float]:
        """The encoders' learning rate at the epoch's first step and after its last (and the heads', where
        `train.head_lr` gives them their own)."""
        at_end = self.scheduler.get_last_lr()
        at_start = at_start or at_end
        rates = {"lr_start": at_start[0], "lr": at_end[0]}
        if self.train_settings.head_lr is not None:
            rates.update(head_lr_start=at_start[-1], head_lr=at_end[-1])
        return rates

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

    def _drop_window(self, loss: torch.Tensor) -> None:
        """A skipped batch that ends a gradient-accumulation window, under DDP: DDP's forward pass prepared the
        window's all-reduce, which only a backward pass completes, so do it, then drop the (non-finite) gradients of
        the whole window: no optimiser step for it."""
        self.scaler.scale(loss).backward()
        self.optimizer.zero_grad(set_to_none=True)
        self._accumulated = 0

    def _between_steps(self) -> None:
        """After an optimiser step: the periodic mid-epoch checkpoint, and a stop if a signal asked for one."""
        every = self.train_settings.checkpoint_every
        due = every and self.state.step % every == 0 and self.state.batch < self.batches_per_epoch
        if due:
            self._save_checkpoint()
        self._stop_if_requested(saved=bool(due))

    def _nonfinite(self, value: float, rows) -> None:
        """A NaN or infinite loss (in any process): stop naming the batch and the last good checkpoint, or skip the
        round's batches (one per process) and count them."""
        ids = [self.train_examples[row].id for row in rows.tolist()] if rows is not None else []
        shares = self.processes.gather(None if math.isfinite(value) else (value, ids))
        rank, (value, ids) = next((rank, share) for rank, share in enumerate(shares) if share is not None)
        shown = ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
        where = (f"step {self.state.step + 1} (epoch {self.state.epoch + 1}, batch {self.state.batch + rank + 1} of "
                 f"{self.batches_per_epoch}), on examples {shown}")
        if self.train_settings.on_nonfinite == "skip":
            self.state.epoch_skipped += self.processes.world_size
            self.state.skipped += self.processes.world_size
            self.console.print(f"skipped a batch: the loss is {value} at {where}")
            return
        self.run.set_status("diverged")
        last = (f"the last good checkpoint is {self.run.checkpoint_path}, saved {self._last_checkpoint}"
                if self._last_checkpoint else "there is no checkpoint yet")
        raise distributed.everywhere(DivergedError(f"the loss is {value} at {where}; {last}; lower train.lr, or "
                                                   f"set train.on_nonfinite = \"skip\" to skip such batches"))

    def _stop_if_requested(self, saved: bool = False) -> None:
        """Under a SIGINT or SIGTERM (see `interrupts`) to any process: save a checkpoint unless one was just saved,
        and stop (every process, at the same step)."""
        number = self.processes.largest(interrupts.requested() or 0)
        if not number:
            return
        if not saved:
            self._save_checkpoint()
        self.run.set_status("interrupted")
        self.processes.barrier()  # no process exits (and makes torchrun stop the others) before rank 0 has written
        name = signal.Signals(number).name
        raise distributed.everywhere(RunInterrupted(f"{name}: stopped after {self._position()} and saved "
                                                    f"{self.run.checkpoint_path}; continue with --resume", number))

    def _position(self) -> str:
        position = f"epoch {self.state.epoch}"
        if self.state.batch:
            position += f", batch {self.state.batch} of {self.batches_per_epoch} of epoch {self.state.epoch + 1}"
        return f"{position} (step {self.state.step})"

    def _epoch_terms(self) -> dict[str, float]:
        """The mean of each of LOSS_TERMS over the epoch's batches (with a finite loss), over all processes."""
        sums = self.processes.total(self.state.epoch_batches, *(self.state.epoch_terms.get(key, 0.0)
                                                                 for key in LOSS_TERMS))
        return {key: value / max(sums[0], 1) for key, value in zip(LOSS_TERMS, sums[1:])}

    def _epoch_totals(self) -> tuple[float, int]:
        """The mean loss of the epoch's batches so far and their examples, over all processes."""
        loss, examples, batches = self.processes.total(self.state.epoch_loss, self.state.epoch_examples,
                                                       self.state.epoch_batches)
        return loss / max(batches, 1), int(examples)

    def _save_checkpoint(self) -> None:
        """Rank 0 writes the module's own weights (not DDP's) and the optimiser state, the same in every process;
        the epoch's sums over all processes; and every process's RNG state."""
        state = asdict(self.state)
        loss, examples, batches = self.processes.total(self.state.epoch_loss, self.state.epoch_examples,
                                                       self.state.epoch_batches)
        state.update(epoch_loss=loss, epoch_examples=int(examples), epoch_batches=int(batches))
        terms = self.processes.total(*(self.state.epoch_terms.get(key, 0.0) for key in LOSS_TERMS))
        state.update(epoch_terms=dict(zip(LOSS_TERMS, terms)))
        rngs = self.processes.gather(rng_state())
        if self.processes.is_main:
            self.run.save_checkpoint({
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "state": state, "rng": rngs[0], "processes": len(rngs), **({"rngs": rngs} if len(rngs) > 1 else {}),
            })
        self._last_checkpoint = f"after {self._position()}"

    def _load_checkpoint(self) -> None:
        """Any number of processes resume a checkpoint of any number: each takes the weights, optimiser and the
        position in the epoch; the epoch's sums stay with rank 0; with as many processes as wrote it, each takes
        its own RNG state, else rank 0's."""
        checkpoint = self.run.load_checkpoint()
        self.model.load_state_dict(without_pooler(checkpoint["model"], self.model))
        try:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        except ValueError:  # its parameters differ: written before the text encoder lost its unused pooler
            raise RunError(f"{self.run.checkpoint_path}: the optimiser state does not match this model's parameters "
                           f"(a checkpoint of an older mmlabel?); resume it with the version that wrote it") from None
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        state = checkpoint["state"]
        state.setdefault("epoch_batches", state["batch"] - state["epoch_skipped"])  # a checkpoint from before it
        self.state = TrainState(**state)
        if not self.processes.is_main:
            self.state.epoch_loss, self.state.epoch_examples, self.state.epoch_batches = 0.0, 0, 0
            self.state.epoch_terms = {}
        rngs = checkpoint.get("rngs", [])
        set_rng_state(rngs[self.processes.rank] if len(rngs) == self.processes.world_size else checkpoint["rng"])
        self._last_checkpoint = f"after {self._position()}"


def linear_schedule(optimizer, settings, steps_per_epoch: int):
    """The learning-rate schedule of a recipe's `train` section: linear warm-up over `warmup_ratio` of the planned
    horizon, `schedule_epochs` (default `epochs`) x `steps_per_epoch` optimiser steps, then linear decay to 0 at its
    end."""
    from transformers import get_linear_schedule_with_warmup

    total = steps_per_epoch * (settings.schedule_epochs or settings.epochs)
    return get_linear_schedule_with_warmup(optimizer, int(settings.warmup_ratio * total), max(total, 1))


def parameter_groups(model, weight_decay: float, lr: float, head_lr: float | None = None) -> list[dict]:
    """AdamW's parameter groups of a `TaggingModel`'s trainable parameters: biases and norm weights without weight
    decay; with `head_lr`, everything outside the pretrained encoders (fusion head with its CRF, text head, image
    projection) at that learning rate and the encoders at `lr`."""
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    encoders = ("text_encoder.", "image_encoder.")
    parameters = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    parts = [(parameters, lr)]
    if head_lr is not None:
        parts = [([(n, p) for n, p in parameters if n.startswith(encoders)], lr),
                 ([(n, p) for n, p in parameters if not n.startswith(encoders)], head_lr)]
    groups = []
    for members, rate in parts:  # the heads' groups last: the log reads their rate there
        groups += [{"params": [p for n, p in members if not n.endswith(no_decay)], "weight_decay": weight_decay,
                    "lr": rate},
                   {"params": [p for n, p in members if n.endswith(no_decay)], "weight_decay": 0.0, "lr": rate}]
    return groups


def _terms(output) -> dict[str, float]:
    """A batch's LOSS_TERMS as floats (one transfer from the device)."""
    values = [output.losses[key] for key in LOSS_TERMS[:3]] + [output.weighted_losses[key] for key in LOSS_TERMS[:3]]
    return dict(zip(LOSS_TERMS, torch.stack([value.float() for value in values]).tolist()))


def _headline(figures: dict) -> dict:
    """The scalar figures of a metric's result, for the log."""
    return {key: value for key, value in figures.items() if isinstance(value, (int, float))}



