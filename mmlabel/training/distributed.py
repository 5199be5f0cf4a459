"""Data-parallel training with `torch.distributed` and DistributedDataParallel, in the processes `torchrun` starts.

torchrun sets WORLD_SIZE, RANK, LOCAL_RANK and the rendezvous address in every process it starts. Where WORLD_SIZE
is absent or 1, `current()` is a single process and every method below is the identity or a no-op, so training is
exactly the single-process training. Otherwise the processes form a group (gloo on CPU; on GPUs NCCL for CUDA
tensors, with gloo beside it for the small CPU tensors and objects of the bookkeeping below), each process trains on
its share of the batches (`batches.ShardedBatchSampler`), and DDP averages the gradients, so that the weights and the
optimiser state are the same in every process. Rank 0 alone writes into the run directory and prints
(`FollowerRunDir` for the others); the decisions that must be the same everywhere (stop on a signal, skip a
non-finite batch, keep a better epoch) are taken together or taken on rank 0 and broadcast. See docs/distributed.md."""
import atexit
import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import torch

from mmlabel.run_dir import RunDir


@dataclass(frozen=True)
class Distributed:
    """This process's place among the run's processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, name: str) -> torch.device:
        """The recipe's `train.device`, with each process of a GPU run on the GPU of its LOCAL_RANK."""
        from mmlabel.device import resolve_device

        device = resolve_device(name)
        if self.enabled and device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        return device

    # -- collectives (all processes call them, in the same order) -------------------------------------------
    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def broadcast(self, value):
        """Rank 0's `value`, in every process."""
        if not self.enabled:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value) -> list:
        """Every process's `value`, by rank, in every process."""
        if not self.enabled:
            return [value]
        values = [None] * self.world_size
        torch.distributed.all_gather_object(values, value)
        return values

    def total(self, *numbers: float) -> list[float]:
        """Each of `numbers` summed over the processes (float64, so that counts stay exact)."""
        if not self.enabled:
            return list(numbers)
        summed = torch.tensor(numbers, dtype=torch.float64)
        torch.distributed.all_reduce(summed)
        return summed.tolist()

    def largest(self, number: int) -> int:
        """The largest of every process's `number` (a signal number, 0 for none: any process's request counts)."""
        if not self.enabled:
            return number
        value = torch.tensor([number], dtype=torch.int64)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
        return int(value.item())

    def finite_everywhere(self, finite: torch.Tensor) -> torch.Tensor:
        """A 0-d bool flag on the device, True where it is True in every process: a collective on the device (NCCL
        queues it, the host does not wait), so that every process skips a batch together or none does."""
        if not self.enabled:
            return finite
        flag = finite.to(torch.int32)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        return flag.bool()

    def main_first(self, function: Callable[[], None], local: bool = False) -> None:
        """Run `function` on rank 0 (with `local`, on each machine's local rank 0) while the others wait; a toolkit
        error there is raised in every process, printed by rank 0 only."""
        from mmlabel.errors import MMLabelError

        leader = self.local_rank == 0 if local else self.is_main
        if not self.enabled:
            function()
            return
        error = None
        if leader:
            try:
                function()
            except MMLabelError as raised:
                error = raised
        errors = [e for e in self.gather(error) if e is not None]
        if errors:
            raise everywhere(error or errors[0])

    # -- the model ------------------------------------------------------------------------------------------
    def wrap(self, model: torch.nn.Module, device: torch.device, unused: list[str] = ()) -> torch.nn.Module:
        """DistributedDataParallel around `model` (the module itself in one process); checkpoints and saved weights
        are always the module's own state_dict, so that a run resumes with any number of processes.

        `unused`: names of trainable parameters the loss does not reach on some process (`unused_parameters`).
        Only then does DDP search the graph for them every step (`find_unused_parameters`); otherwise it would wait
        for their gradients forever."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        find_unused = any(self.gather(bool(unused)))
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                       find_unused_parameters=find_unused)

    def no_sync(self, network: torch.nn.Module, accumulating: bool):
        """Inside a gradient-accumulation window, no all-reduce: the gradients add up locally and the window's last
        backward pass averages their sum."""
        if self.enabled and accumulating:
            return network.no_sync()
        return nullcontext()


class FollowerRunDir(RunDir):
    """The run directory as processes other than rank 0 see it: they read (the checkpoint, the best weights) but
    never write."""

    def _nothing(self, *args, **kwargs) -> None:
        return None

    start = set_status = save_tags = save_architecture = save_model = save_weights = _nothing
    save_checkpoint = log = keep_log_until = save_metrics = save_predictions = _nothing


def run_dir(path, processes: "Distributed") -> RunDir:
    return RunDir(path) if processes.is_main else FollowerRunDir(path)


def everywhere(error: Exception) -> Exception:
    """`error`, marked as raised by every process at the same point: `mmlabel.cli` prints it in rank 0 only, and
    lets the processes wait for each other before they exit (`finish`)."""
    error.everywhere = True
    return error


_current: Distributed | None = None


def current() -> Distributed:
    """The processes of this run: what `start` set up, else one process."""
    return _current or Distributed()


def start(device_name: str = "auto") -> Distributed:
    """Join the process group torchrun described in the environment (once; later calls return the same)."""
    global _current
    if _current is not None:
        return _current
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        _current = Distributed()
        return _current
    _current = Distributed(rank=int(os.environ["RANK"]), world_size=world_size,
                           local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                           local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", world_size)))
    device = _current.device(device_name)
    if not torch.distributed.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend, rank=_current.rank, world_size=world_size)
        atexit.register(finish, wait=False)
    return _current


def finish(wait: bool = True) -> None:
    """Leave the process group; with `wait`, once every process got here: no process exits before rank 0 has
    written and printed everything (torchrun stops every worker as soon as one exits with an error). Only for a
    point every process reaches: an error raised in one process alone must exit at once, not wait for the others."""
    global _current
    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return
    if wait:
        try:
            torch.distributed.barrier()
        except RuntimeError:  # a peer is gone already: nothing left to wait for
            pass
    torch.distributed.destroy_process_group()
    _current = None


def unused_parameters(model: torch.nn.Module, batch: dict) -> list[str]:
    """Names of the trainable parameters that get no gradient from `model(batch).loss` (one forward and backward
    pass in eval mode, so no random number is drawn; the gradients are dropped again). The built-in components use
    all of theirs; a loss weight of 0 or a plugin may leave some out."""
    was_training = model.training
    model.eval()
    try:
        model(batch).loss.backward()
        unused = [name for name, parameter in model.named_parameters()
                  if parameter.requires_grad and parameter.grad is None]
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return unused
