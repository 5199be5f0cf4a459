"""The earth mover's distance between a sentence's token states and its image's patch states, DTCA's alignment loss
(Yu et al., "Dual-Encoder Transformers with Cross-modal Alignment for Multimodal Aspect-based Sentiment Analysis",
AACL 2022, Eq. 15), solved exactly.

Each side carries uniform mass over its real elements only (padding tokens and padded patches carry none). The cost
between a token and a patch (`cost`) is either the mean squared error between their L2-normalised vectors, Eq. 15 as
printed (|x - y|^2 / dim = 2 (1 - cos) / dim), or the cosine distance 1 - cos that the authors' code used: at
dim = 768 the two differ by a factor of 384 (docs/model.md, "Loss balance"). The transport
problem of each example is solved exactly by POT's network simplex (`ot.emd`) on the CPU; the costs are computed
on the model's device and only the (tokens, patches) matrices travel, without the device waiting: the model starts
the loss as soon as the encoders are done (`begin`) and joins it after the fusion head and the CRF. The distance is <plan, cost> with the optimal
plan held fixed: by the envelope theorem its gradient with respect to the cost is the plan, so autograd through the
cost alone gives the exact gradient. `solver = "sinkhorn"` keeps GeomLoss's near-exact approximation instead.
"""
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Callable

import numpy as np
import torch
from torch import nn

from mmlabel.alignment.base import check_sizes
from mmlabel.device import wait_for
from mmlabel.alignment.sinkhorn import SinkhornAlignment, unit_cost
from mmlabel.alignment.configs import EMDConfig
from mmlabel.configs import Configured


class EMDAlignment(Configured, nn.Module):
    """Earth mover's distance between token and patch states: exact (POT network simplex) or GeomLoss near-exact."""

    Config = EMDConfig

    def __init__(self, config: EMDConfig | None = None, **options):
        super().__init__(config, **options)
        self.approximation = None
        if self.config.solver == "sinkhorn":
            settings = SinkhornAlignment.Config(blur=self.config.blur, scaling=self.config.scaling,
                                                debias=self.config.debias, cost=self.config.cost)
            self.approximation = SinkhornAlignment(settings)

    def forward(
        self, text_states: torch.Tensor, text_mask: torch.Tensor, image_states: torch.Tensor, image_mask: torch.Tensor
    ) -> torch.Tensor:
        """(batch, tokens, dim), (batch, tokens) bool, (batch, patches, dim), (batch, patches) bool -> (batch,).
        An example without a real token or patch gets 0."""
        return self.begin(text_states, text_mask, image_states, image_mask)()

    def begin(
        self, text_states: torch.Tensor, text_mask: torch.Tensor, image_states: torch.Tensor, image_mask: torch.Tensor
    ) -> Callable[[], torch.Tensor]:
        """`forward`, started (`contracts.DeferredAlignmentLoss`): the costs are computed on the device now and copied
        to the host without waiting; POT solves them in worker threads while the caller goes on, and the returned
        function joins them: their plans travel back and meet the costs, which carry the gradient."""
        if self.approximation is not None:
            distances = self.approximation(text_states, text_mask, image_states, image_mask)
            return lambda: distances
        check_sizes(text_states, image_states)
        with torch.autocast(device_type=text_states.device.type, enabled=False):
            cost = unit_cost(text_states, image_states, self.config.cost)  # (batch, tokens, patches)
        plans = start_plans(cost.detach(), text_mask, image_mask, self.config.threads)

        def finish() -> torch.Tensor:
            with torch.autocast(device_type=cost.device.type, enabled=False):
                return (plans().to(cost.device, non_blocking=True) * cost).sum((1, 2))

        return finish


def optimal_plans(cost: torch.Tensor, text_mask: torch.Tensor, image_mask: torch.Tensor,
                  threads: int = 0) -> torch.Tensor:
    """(batch, tokens, patches) optimal transport plans between uniform masses on the real tokens and patches, zero
    on padding and for an example with no real token or patch (in the costs' dtype, on the CPU)."""
    return start_plans(cost, text_mask, image_mask, threads)()


@torch.compiler.disable  # host work: threads and numpy (a graph break under train.compile)
def start_plans(cost: torch.Tensor, text_mask: torch.Tensor, image_mask: torch.Tensor,
                threads: int = 0) -> Callable[[], torch.Tensor]:
    """`optimal_plans`, started: the costs and masks are copied to the host without blocking (pinned memory beside a
    GPU), each example's problem is solved by POT's network simplex in a pool of threads (the solver releases the
    GIL) once the copy has landed, and the returned function waits for the solutions alone, never for the device."""
    on_gpu = cost.device.type == "cuda"
    costs, text_masks, image_masks = (tensor.to("cpu", non_blocking=True) for tensor in (cost, text_mask, image_mask))
    copied = torch.cuda.Event() if on_gpu else None
    if copied is not None:
        copied.record()
    plans = torch.zeros(costs.shape, dtype=costs.dtype, pin_memory=on_gpu)

    def solve(row: int) -> None:
        if copied is not None:
            wait_for(copied)
        tokens = np.flatnonzero(text_masks[row].numpy())
        patches = np.flatnonzero(image_masks[row].numpy())
        if len(tokens) and len(patches):
            problem = costs[row].numpy().astype(np.float64)[np.ix_(tokens, patches)]
            plans[row].numpy()[np.ix_(tokens, patches)] = _solve_one(problem)

    workers = min(len(costs), threads or _cores())
    if workers > 1:
        pending = [_pool(workers).submit(solve, row) for row in range(len(costs))]
    else:
        pending = [_pool(1).submit(lambda: [solve(row) for row in range(len(costs))])]

    @torch.compiler.disable
    def result() -> torch.Tensor:
        for future in pending:
            future.result()
        return plans

    return result


def _solve_one(cost: np.ndarray) -> np.ndarray:
    import ot

    n, m = cost.shape
    return ot.emd(np.full(n, 1.0 / n), np.full(m, 1.0 / m), np.ascontiguousarray(cost), numItermax=10_000_000)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@lru_cache(maxsize=None)
def _pool(workers: int) -> ThreadPoolExecutor:
    """One pool per size for the process: threads are started once, not at every step."""
    return ThreadPoolExecutor(workers, thread_name_prefix="mmlabel-emd")
