"""Callbacks: everything around the training loop that is not training, each a small class with the events it
needs, as transformers' `TrainerCallback` and Lightning's callbacks divide the work. The loop (`Trainer.fit`) calls
every callback's method for an event in list order: the built-ins first (`default_callbacks`), then the caller's.

    on_fit_start(trainer)                                 before the first epoch (after a resume: at its position)
    on_epoch_start(trainer, epoch)
    on_step_end(trainer)                                  after each optimiser step; never read the device here
    on_log(trainer, figures)                              every `train.log_every` steps: the loss figures read back
    on_epoch_trained(trainer, epoch)                      the epoch's batches are done; dev evaluation comes next
    on_evaluate(trainer, epoch, figures, predictions, record)   dev figures; `record` is the epoch's log.jsonl line
    on_epoch_end(trainer, epoch, record)                  the epoch is finished and selected; `record` is complete
    on_fit_end(trainer, metrics)                          the dev-selected model has been evaluated on test
    on_teardown(trainer)                                  last, always: also when the run stops with an error

A callback reads and writes `trainer.state` (a `TrainState`, saved in checkpoints) and may stop the run by setting
`trainer.state.stopped_early`. Every process of a data-parallel run calls the same callbacks in the same order; only
rank 0 writes files (`trainer.run` is a no-op elsewhere).
"""
import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Callback:
    """The base: every event does nothing."""

    def on_fit_start(self, trainer) -> None: ...
    def on_epoch_start(self, trainer, epoch: int) -> None: ...
    def on_step_end(self, trainer) -> None: ...
    def on_log(self, trainer, figures: dict) -> None: ...
    def on_epoch_trained(self, trainer, epoch: int) -> None: ...
    def on_evaluate(self, trainer, epoch: int, figures: dict, predictions: list, record: dict) -> None: ...
    def on_epoch_end(self, trainer, epoch: int, record: dict) -> None: ...
    def on_fit_end(self, trainer, metrics: dict) -> None: ...
    def on_teardown(self, trainer) -> None: ...


class CallbackList:
    """Callbacks called in order for each event."""

    def __init__(self, callbacks: list[Callback]):
        self.callbacks = list(callbacks)

    def call(self, event: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(*args)

    def find(self, kind: type) -> Callback | None:
        return next((callback for callback in self.callbacks if isinstance(callback, kind)), None)


def default_callbacks() -> list[Callback]:
    """The built-ins, in the order they must run: select the epoch, then stop early, show it, log it, save it."""
    return [BestEpoch(), EarlyStopping(), ProgressBar(), EpochLog(), Checkpointing()]


class BestEpoch(Callback):
    """Keeps the epoch with the best dev score (the metric's `main_key`; decided on rank 0): its weights
    (model.safetensors) and its dev predictions. The test split is never looked at here."""

    def on_evaluate(self, trainer, epoch, figures, predictions, record) -> None:
        state = trainer.state
        score = figures[trainer.metric.main_key]
        improved = trainer.processes.broadcast(score > state.best_score)
        if improved:
            state.best_score, state.best_epoch, state.bad_epochs = score, epoch, 0
            trainer.save_best(predictions)
        else:
            state.bad_epochs += 1
        record["best"] = improved


class EarlyStopping(Callback):
    """Stops after `train.patience` epochs without a better dev score."""

    def on_evaluate(self, trainer, epoch, figures, predictions, record) -> None:
        trainer.state.stopped_early = trainer.state.bad_epochs >= trainer.settings.patience


class ProgressBar(Callback):
    """A transient rich progress bar over the epoch's batches: examples per second at every step, the mean loss
    whenever it is read back (`on_log`). Only on a terminal: in a log file a bar is noise (a blank line per epoch),
    and `EpochLog`'s line says what the epoch did."""

    def __init__(self):
        self._progress: Progress | None = None
        self._task = None
        self._started, self._seen_at_start = 0.0, 0

    def on_epoch_start(self, trainer, epoch) -> None:
        if not trainer.console.is_terminal:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]:.2e}  {task.fields[speed]:.1f} ex/s"),
            TimeElapsedColumn(), console=trainer.console, transient=True)
        self._progress.start()
        self._task = self._progress.add_task(f"epoch {epoch}", total=trainer.batches_per_epoch,
                                             completed=trainer.state.batch, loss="-", lr=0.0, speed=0.0)
        self._started, self._seen_at_start = time.perf_counter(), trainer.state.epoch_examples

    def on_step_end(self, trainer) -> None:
        if self._progress is None:  # a step outside `fit`'s epochs
            return
        seen = trainer.state.epoch_examples - self._seen_at_start
        self._progress.update(self._task, completed=trainer.state.batch, lr=trainer.scheduler.get_last_lr()[0],
                              speed=seen / max(time.perf_counter() - self._started, 1e-9))

    def on_log(self, trainer, figures) -> None:
        if self._progress is not None:
            self._progress.update(self._task, loss=f"{figures['loss']:.4f}")

    def on_epoch_trained(self, trainer, epoch) -> None:
        self._close()

    def on_teardown(self, trainer) -> None:
        self._close()

    def _close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class EpochLog(Callback):
    """One line per epoch in log.jsonl and on the console: the loss and its weighted terms, learning rates, dev
    figures, whether the epoch is the best so far, its time (training and dev evaluation), speed and what the images
    did (the console line: loss, terms, dev score, best, time)."""

    def on_epoch_end(self, trainer, epoch, record) -> None:
        trainer.run.log(record)
        terms, raw = record["weighted_terms"], record["terms"]
        skipped = record["skipped_batches"]
        trainer.console.print(
            f"epoch {epoch}: loss {record['train_loss']:.4f} = crf {terms['crf']:.4f} + text {terms['text']:.4f} + "
            f"align {terms['align']:.4f} (raw {raw['crf']:.4f}, {raw['text']:.4f}, {raw['align']:.4f})  "
            f"dev {trainer.metric.main_key} {record['dev'][trainer.metric.main_key]:.2f}"
            f"{'  (best)' if record.get('best') else ''}  {record['seconds']:.1f} s"
            f"{f'  ({skipped} batches skipped: non-finite loss)' if skipped else ''}",
            soft_wrap=True)  # one line, however narrow the console


class Checkpointing(Callback):
    """Resumable checkpoints: at every epoch's end, every `train.checkpoint_every` optimiser steps inside epochs,
    and when SIGINT or SIGTERM asked the run to stop (`mmlabel.training.interrupts`): then, once the checkpoint is
    on disk, the run raises `RunInterrupted` (every process at the same step)."""

    def on_epoch_start(self, trainer, epoch: int) -> None:
        trainer.stop_if_requested()

    def on_step_end(self, trainer) -> None:
        every = trainer.settings.checkpoint_every
        due = bool(every and trainer.state.step % every == 0 and trainer.state.batch < trainer.batches_per_epoch)
        if due:
            trainer.save_checkpoint()
        trainer.stop_if_requested(saved=due)

    def on_epoch_end(self, trainer, epoch: int, record: dict) -> None:
        trainer.save_checkpoint()
        trainer.stop_if_requested(saved=True)
