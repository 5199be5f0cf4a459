"""A fake alignment-loss plugin that injects faults into training at chosen forward calls: a NaN loss, or a signal
sent to the training process itself. Tests set `FAULTS` and register `FaultPlugin` for one test."""
import os

import torch
from torch import nn

from mmlabel.hookspecs import hookimpl
from mmlabel.registry import ComponentConfig

# Training forward calls (counted from 1 in each model; the trainer's no-grad probe of the components before the
# first step is not counted) at which to inject a fault; a signal is sent once, then forgotten.
FAULTS: dict = {"nan_at": set(), "signal_at": None, "signal": None}


class FaultyAlignment(nn.Module):
    """Squared distance between the mean token and mean patch states, with injected faults (a fake of the suite)."""

    class Config(ComponentConfig):
        """No options: faults are set in `FAULTS`."""

    def __init__(self, config=None):
        super().__init__()
        self.calls = 0

    def forward(self, text_states, text_mask, image_states, image_mask):
        self.calls += torch.is_grad_enabled()
        mask = text_mask.unsqueeze(-1).to(text_states.dtype)
        text_mean = (text_states * mask).sum(1) / mask.sum(1).clamp(min=1)  # (batch, hidden)
        loss = (text_mean - image_states.mean(1)).pow(2).mean(-1)  # (batch,)
        if self.calls in FAULTS["nan_at"]:
            loss = loss + float("nan")
        if self.calls == FAULTS["signal_at"]:
            FAULTS["signal_at"] = None
            os.kill(os.getpid(), FAULTS["signal"])
        return loss


class FaultPlugin:
    __name__ = "fault-plugin"

    @hookimpl
    def register_alignment_losses(self, register):
        register("fault", FaultyAlignment)
