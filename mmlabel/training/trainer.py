"""The training loop: `fit` runs epochs of `train_epoch`, each batch through `step`, `evaluate`s on dev after each
epoch and finally evaluates the dev-selected model on test, once. (The reference code chose its best epoch on the test
set; this one never looks.) Everything else is a callback (`mmlabel.training.callbacks`): progress, log.jsonl,
checkpoints, best-epoch selection, early stopping; a callback is the place to hook in.

Nothing inside `step` reads a value back from the device, so that on a GPU the host queues work ahead of it: the
loss and its terms accumulate on the device (`LossMeter`) and are read every `train.log_every` optimiser steps,
before a checkpoint and at the epoch's end. A non-finite loss skips its optimiser step on the device (the fused
AdamW's `found_inf`) and is counted at the read, or, under `train.on_nonfinite = "stop"`, stops the run there, naming
the batch.

Faults: inside `interrupts.stop_requests()` SIGINT and SIGTERM save a checkpoint after the current step and raise
`RunInterrupted`. A resumed run replays the uninterrupted one exactly on CPU: the batch order is a function of
(seed, epoch), and checkpoints hold the position within the epoch and every RNG state. Under torchrun
(`distributed`), every process runs this same loop in step with the others on its share of the batches, through DDP
(`self.network`); `self.model` is the module itself, whose state_dict is what is saved."""
import math
import signal
import time
from dataclasses import asdict, dataclass, field

import torch

from mmlabel.data.batches import Collator, TaggingDataset, make_loader, start_epoch
from mmlabel.device import autocast
from mmlabel.errors import DivergedError, RunError, RunInterrupted
from mmlabel.run_dir import without_pooler
from mmlabel.tagger import Tagger
from mmlabel.training import distributed, interrupts
from mmlabel.training.callbacks import Callback, CallbackList, default_callbacks
from mmlabel.training.checkpoints import BackgroundWriter, HostCopy
from mmlabel.training.compiling import BucketedCollator, compile_loss, compiled_graphs
from mmlabel.training.meter import LOSS_TERMS, BatchLoss, LossMeter
from mmlabel.training.optim import fused_available, make_optimizer
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
    epoch_loss: float = 0.0  # summed loss of this process's batches read back so far (in a checkpoint: every process's)
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


class Trainer:
    """Fits the model of a run's parts (`mmlabel.training.assemble.RunParts`) on train, selects the epoch on dev and
    writes everything into the run directory; `callbacks` run after the built-ins. With `evaluate_test=False`
    (hyperparameter search, `mmlabel.tuning`) the test split is never evaluated and metrics.json has no "test"."""

    def __init__(self, parts, callbacks: list[Callback] = (), evaluate_test: bool = True):
        self.parts = parts
        self.evaluate_test = evaluate_test
        self.model = parts.model.to(parts.device)
        self.network = self.model  # wrapped in DDP by `fit` when several processes train
        self.loss_function = self.network  # what `step` calls: the network, compiled under `train.compile`
        self.settings = parts.recipe.train
        self.processes, self.device, self.run = parts.processes, parts.device, parts.run
        self.metric, self.console = parts.metric, parts.console
        self.tagger = Tagger(self.model, parts.scheme, parts.recipe.data.max_tokens, parts.images, self.device,
                             self.settings.precision, features=parts.features, workers=parts.workers, text=parts.text)
        self.callbacks = CallbackList([*default_callbacks(), *callbacks])
        self.state = TrainState()
        self.meter = LossMeter()
        self.writer = BackgroundWriter()
        self.batches_per_epoch = 0
        self.epoch_started = 0.0
        self.last_checkpoint: str | None = None  # "after epoch 1 (step 6)": where the last checkpoint stands
        self._window_finite: torch.Tensor | None = None  # every batch of the accumulation window so far was finite

    # -- the loop ------------------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict:
        """Train until `epochs` or early stopping, then evaluate the dev-selected model on test once."""
        splits = self.parts.splits
        try:
            loader = self.prepare(splits["train"], resume)
            self.callbacks.call("on_fit_start", self)
            while self.state.epoch < self.settings.epochs and not self.state.stopped_early:
                self._run_epoch(loader, splits["dev"], self.state.epoch + 1)
            metrics = self._finish(splits["dev"], splits["test"])
            self.callbacks.call("on_fit_end", self, metrics)
            return metrics
        finally:
            self.callbacks.call("on_teardown", self)
            self.writer.wait()

    def train_epoch(self, loader, epoch: int) -> None:
        """One pass over the training batches, from `state.batch` on (a mid-epoch resume leaves out those already
        trained on). With N processes, each round trains N batches at once, one per process."""
        self.network.train()
        state, accum, world_size = self.state, self.settings.grad_accum, self.processes.world_size
        start_epoch(loader, epoch, skip=state.batch)
        if state.batch == 0:
            state.epoch_lrs = list(self.scheduler.get_last_lr())
        rounds = 0
        for batch in loader:
            if state.batch >= self.batches_per_epoch:
                break
            rounds += 1  # checkpoints fall between steps, so a resumed epoch starts a window afresh too
            done = min(state.batch + world_size, self.batches_per_epoch)
            update = rounds % accum == 0 or done == self.batches_per_epoch
            place = {"step": state.step + 1, "epoch": epoch, "batch": state.batch + 1, "rows": batch.get("index")}
            self.step(batch, update=update, place=place)
            state.batch, state.epoch_examples = done, state.epoch_examples + batch["input_ids"].shape[0]
            if update:
                if state.step % self.settings.log_every == 0:
                    self.read_losses()
                self.callbacks.call("on_step_end", self)
        self.read_losses()

    def step(self, batch: dict, update: bool = True, place: dict | None = None) -> None:
        """Forward and backward on one batch; with `update`, clip, step the optimiser and the schedule. Reads nothing
        back from the device: the loss goes to `self.meter`; a batch whose loss is not finite in some process makes
        every process skip the optimiser step of its window, on the device."""
        batch = self._to_device(batch)
        with self.processes.no_sync(self.network, accumulating=not update):
            with autocast(self.device, self.settings.precision):
                output = self.loss_function(batch)
            finite_here = torch.isfinite(output.loss.detach())
            finite = self.processes.finite_everywhere(finite_here)
            self.meter.add(output, finite_here, finite, place or {})
            loss = output.loss / self.settings.grad_accum
            if self.scaler.is_enabled():  # fp16: make the gradients non-finite too, so that the scaler skips it
                loss = loss * torch.where(finite, 1.0, math.nan)
            self.scaler.scale(loss).backward()
            self._window_finite = finite if self._window_finite is None else self._window_finite & finite
        if update:
            self._update()

    def evaluate(self, examples: list) -> tuple[dict, list]:
        """The metric's figures and the predicted spans on `examples`. With N processes, each predicts every Nth
        batch of the one-process evaluation and the shares are gathered: the figures are the one-process figures."""
        processes = self.processes
        share = self.tagger.predict_split(examples, rank=processes.rank, world_size=processes.world_size)
        shares = processes.gather([None if found is None else found.spans for found in share])
        predictions = [next(spans for spans in column if spans is not None) for column in zip(*shares)]
        return self.metric.score([example.spans for example in examples], predictions), predictions

    # -- reading the losses back ---------------------------------------------------------------------------
    def read_losses(self) -> None:
        """Transfer the losses recorded since the last read (one copy from the device) into `state`; count the
        skipped batches, or stop the run at the first non-finite one under `on_nonfinite = "stop"`."""
        batches = self.meter.read()
        state = self.state
        for batch in batches:
            if batch.finite:
                state.epoch_loss, state.epoch_batches = state.epoch_loss + batch.loss, state.epoch_batches + 1
                for key, value in batch.terms.items():
                    state.epoch_terms[key] = state.epoch_terms.get(key, 0.0) + value
            else:
                self._nonfinite(batch)
        if batches:
            self.callbacks.call("on_log", self, {"step": state.step, "loss": state.epoch_loss / max(state.epoch_batches, 1),
                                                 "lr": self.scheduler.get_last_lr()[0]})

    def _nonfinite(self, batch: BatchLoss) -> None:
        """A batch whose loss was NaN or infinite in some process: skipped on the device already; count it, or stop
        naming the batch (its examples, in the process where it was not finite) and the last good checkpoint."""
        rows = batch.place.get("rows")
        ids = [self.parts.splits["train"][row].id for row in rows.tolist()] if rows is not None else []
        shares = self.processes.gather(None if batch.finite_here else (batch.loss, ids))
        rank, (value, ids) = next((rank, share) for rank, share in enumerate(shares) if share is not None)
        if self.settings.on_nonfinite == "skip":
            self.state.epoch_skipped += self.processes.world_size
            self.state.skipped += self.processes.world_size
            self.console.print(f"skipped a batch: the loss is {value} at {self._where(batch, rank, ids)}")
            return
        self.writer.wait()  # the checkpoint named below is on disk
        self.run.set_status("diverged")
        last = (f"the last good checkpoint is {self.run.checkpoint_path}, saved {self.last_checkpoint}"
                if self.last_checkpoint else "there is no checkpoint yet")
        raise distributed.everywhere(DivergedError(
            f"the loss is {value} at {self._where(batch, rank, ids)}; {last}; lower train.lr, or set "
            f"train.on_nonfinite = \"skip\" to skip such batches"))

    def _where(self, batch: BatchLoss, rank: int, ids: list[str]) -> str:
        place = batch.place
        shown = ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
        return (f"step {place.get('step')} (epoch {place.get('epoch')}, batch {place.get('batch', 0) + rank} of "
                f"{self.batches_per_epoch}), on examples {shown}")

    # -- saving and stopping (called by the callbacks) -----------------------------------------------------
    def save_best(self, dev_predictions: list) -> None:
        """The current weights as the run's best (written in the background) and their dev predictions."""
        if self.processes.is_main:
            weights = HostCopy(self.model.state_dict())
            self.writer.submit(lambda: self.run.save_weights(weights.get()))
        self.run.save_predictions("dev", self.parts.splits["dev"], dev_predictions)

    def save_checkpoint(self) -> None:
        """A resumable checkpoint, written in the background from a host copy: rank 0 writes the module's own
        weights (not DDP's) and the optimiser state, the same in every process; the epoch's sums over all processes;
        and every process's RNG state. Tensors and plain values only, so that `--resume` loads it with
        `weights_only=True` (`RunDir.load_checkpoint`)."""
        self.read_losses()
        state = asdict(self.state)
        state.update(best_score=float(state["best_score"]))  # a metric may score in NumPy's float64
        loss, examples, batches = self.processes.total(self.state.epoch_loss, self.state.epoch_examples,
                                                       self.state.epoch_batches)
        state.update(epoch_loss=loss, epoch_examples=int(examples), epoch_batches=int(batches))
        terms = self.processes.total(*(self.state.epoch_terms.get(key, 0.0) for key in LOSS_TERMS))
        state.update(epoch_terms=dict(zip(LOSS_TERMS, terms)))
        rngs = self.processes.gather(rng_state())
        if self.processes.is_main:
            checkpoint = HostCopy({
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "state": state, "rng": rngs[0], "processes": len(rngs), **({"rngs": rngs} if len(rngs) > 1 else {}),
            })
            self.writer.submit(lambda: self.run.save_checkpoint(checkpoint.get()))
        self.last_checkpoint = f"after {self.position()}"

    def stop_if_requested(self, saved: bool = False) -> None:
        """Under a SIGINT or SIGTERM (see `interrupts`) to any process: save a checkpoint unless one was just saved,
        and stop (every process, at the same step) once it is on disk."""
        number = self.processes.largest(interrupts.requested() or 0)
        if not number:
            return
        if not saved:
            self.save_checkpoint()
        self.writer.wait()
        self.run.set_status("interrupted")
        self.processes.barrier()  # no process exits (and makes torchrun stop the others) before rank 0 has written
        name = signal.Signals(number).name
        raise distributed.everywhere(RunInterrupted(f"{name}: stopped after {self.position()} and saved "
                                                    f"{self.run.checkpoint_path}; continue with --resume", number))

    def position(self) -> str:
        position = f"epoch {self.state.epoch}"
        if self.state.batch:
            position += f", batch {self.state.batch} of {self.batches_per_epoch} of epoch {self.state.epoch + 1}"
        return f"{position} (step {self.state.step})"

    # -- the parts of fit ----------------------------------------------------------------------------------
    def prepare(self, train: list, resume: bool = False):
        """Everything before the first epoch: the training loader (returned), the probe of the components, the plan
        of the epochs, the optimiser; the checkpoint's state where the run resumes. `fit` calls it; a benchmark that
        drives `step` itself calls it first."""
        loader = self._train_loader(train)
        self._probe(loader)
        world_size = self.processes.world_size
        self.batches_per_epoch = loader.batch_sampler.total  # over all processes
        if self.settings.max_steps_per_epoch:
            limit = self.settings.max_steps_per_epoch * self.settings.grad_accum * world_size
            self.batches_per_epoch = min(self.batches_per_epoch, limit)
        steps_per_epoch = math.ceil(math.ceil(self.batches_per_epoch / world_size) / self.settings.grad_accum)
        self.optimizer, self.scheduler = make_optimizer(self.model, self.settings, steps_per_epoch, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.settings.precision == "fp16")
        if resume and self.run.checkpoint_path.exists():
            self._load_checkpoint()
            self.run.keep_log_until(self.state.epoch)
            self.console.print(f"resuming after {self.position()} (best dev epoch {self.state.best_epoch})")
        return loader

    def _run_epoch(self, loader, dev: list, epoch: int) -> None:
        from mmlabel.threads import use_threads

        use_threads(self.settings.threads)  # this process's share, as other runs start or end
        self.epoch_started = time.perf_counter()
        self.callbacks.call("on_epoch_start", self, epoch)
        self.train_epoch(loader, epoch)
        self.callbacks.call("on_epoch_trained", self, epoch)
        figures, predictions = self.evaluate(dev)
        record = self._epoch_record(epoch, figures)
        self.callbacks.call("on_evaluate", self, epoch, figures, predictions, record)
        self.state.finish_epoch(epoch)
        self.callbacks.call("on_epoch_end", self, epoch, record)

    def _epoch_record(self, epoch: int, dev_figures: dict) -> dict:
        """The epoch's log.jsonl line (callbacks add to it): its mean loss and terms over all processes, learning
        rates, dev figures, speed, and what the images did."""
        state = self.state
        sums = self.processes.total(state.epoch_loss, state.epoch_examples, state.epoch_batches,
                                    *(state.epoch_terms.get(key, 0.0) for key in LOSS_TERMS))
        loss, examples, batches, terms = sums[0], sums[1], max(sums[2], 1), dict(zip(LOSS_TERMS, sums[3:]))
        seconds = time.perf_counter() - self.epoch_started
        record = {"epoch": epoch, "step": state.step, "train_loss": loss / batches,
                  "terms": {key: terms[key] / batches for key in LOSS_TERMS[:3]},
                  "weighted_terms": {key[len("weighted_"):]: terms[key] / batches for key in LOSS_TERMS[3:]},
                  **self._learning_rates(state.epoch_lrs), "dev": _headline(dev_figures),
                  "skipped_batches": state.epoch_skipped, "seconds": round(seconds, 2),
                  "train_examples_per_s": round(examples / seconds, 2)}
        if self.parts.images is not None:  # blank images included: what data.missing_image = "blank" stood in for
            record["images"] = self.parts.images.counts()
        if self.settings.compile:
            record["compiled_graphs"] = compiled_graphs()
        return record

    def _finish(self, dev: list, test: list) -> dict:
        self.writer.wait()  # the best weights are on disk
        self.processes.barrier()  # rank 0 has written them
        self.run.load_model_weights(self.model)
        dev_figures, _ = self.evaluate(dev)
        tested = {}
        if self.evaluate_test:
            test_figures, test_predictions = self.evaluate(test)
            self.run.save_predictions("test", test, test_predictions)
            tested = {"test": test_figures}
        metrics = {"dev": dev_figures, **tested, "best_epoch": self.state.best_epoch,
                   "epochs": self.state.epoch, "stopped_early": self.state.stopped_early,
                   "skipped_batches": self.state.skipped}
        self.run.save_metrics(metrics)
        return metrics

    def _train_loader(self, train: list):
        parts = self.parts
        dataset = TaggingDataset(train, parts.scheme, parts.images, parts.features, parts.text)
        collate = Collator.for_encoder(self.model.text_encoder, parts.recipe.data.max_tokens)
        if self.settings.compile:
            pad_id = getattr(self.model.text_encoder, "pad_token_id", None) or 0
            collate = BucketedCollator(collate, self.settings.compile_bucket, pad_id)
        return make_loader(dataset, collate, self.settings.batch_size, shuffle=True, seed=self.settings.seed,
                           workers=parts.workers, rank=self.processes.rank, world_size=self.processes.world_size)

    def _probe(self, loader) -> None:
        """Check what each component returns on the first training examples, before any step (`contracts`); with
        several processes, find the parameters the loss leaves out and wrap the model in DDP."""
        from mmlabel.probe import check_model_outputs

        items = [loader.dataset[index] for index in range(min(len(loader.dataset), 4))]
        batch = self._to_device(loader.collate_fn(items)) if items else None
        if batch is not None:
            with autocast(self.device, self.settings.precision):
                check_model_outputs(self.model, batch)
        if self.processes.enabled:
            unused = []
            if batch is not None:
                with autocast(self.device, self.settings.precision):
                    unused = distributed.unused_parameters(self.model, batch)
            if unused:
                self.console.print(f"{len(unused)} parameters get no gradient ({', '.join(unused[:3])}"
                                   f"{', ...' if len(unused) > 3 else ''}): DDP looks for them every step")
            self.network = self.processes.wrap(self.model, self.device, unused)
        self.loss_function = self.network
        if self.settings.compile:
            self.loss_function = compile_loss(self.network, self.settings.compile_backend)

    def _update(self) -> None:
        """The optimiser step of the accumulated gradients, skipped on the device where a batch of the window was
        not finite; the schedule keeps its length either way."""
        self.scaler.unscale_(self.optimizer)
        if self.settings.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
        if self.scaler.is_enabled():  # fp16: the scaler finds the non-finite gradients itself
            self.scaler.step(self.optimizer)
            self.scaler.update()
        elif fused_available(self.device):
            self.optimizer.found_inf = (~self._window_finite).float()  # read by the fused kernel, on the device
            self.optimizer.step()
        elif bool(self._window_finite):  # a host read, on devices without the fused AdamW
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.state.step += 1
        self._window_finite = None

    def _learning_rates(self, at_start: list[float]) -> dict[str, float]:
        """The encoders' learning rate at the epoch's first step and after its last (and the heads', where
        `train.head_lr` gives them their own)."""
        at_end = self.scheduler.get_last_lr()
        at_start = at_start or at_end
        rates = {"lr_start": at_start[0], "lr": at_end[0]}
        if self.settings.head_lr is not None:
            rates.update(head_lr_start=at_start[-1], head_lr=at_end[-1])
        return rates

    def _to_device(self, batch: dict) -> dict:
        return {key: value.to(self.device, non_blocking=True) for key, value in batch.items() if key != "index"}

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
        self.last_checkpoint = f"after {self.position()}"


def _headline(figures: dict) -> dict:
    """The scalar figures of a metric's result, for the log."""
    return {key: value for key, value in figures.items() if isinstance(value, (int, float))}
