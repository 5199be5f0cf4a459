"""The loss of every training batch, kept on the device and read back in one transfer every few steps: on a GPU each
read stops the host from queueing work ahead, so `Trainer.step` never reads."""
from dataclasses import dataclass

import torch

# The loss's parts, raw and as weighted into the loss (mmlabel.model.ModelOutput), logged as each epoch's means.
LOSS_TERMS = ("crf", "text", "align", "weighted_crf", "weighted_text", "weighted_align")


@dataclass
class BatchLoss:
    """One batch's figures as read back: its loss and LOSS_TERMS, whether its loss was finite in this process and in
    every process (a batch non-finite anywhere is skipped everywhere), and where it was."""

    loss: float
    terms: dict[str, float]
    finite_here: bool
    finite: bool
    place: dict


class LossMeter:
    """Per-batch (loss, terms, finite flags) rows stacked on the device; `read` transfers them all at once."""

    def __init__(self):
        self._rows: list[torch.Tensor] = []  # each (len(LOSS_TERMS) + 3,) float32 on the device
        self._places: list[dict] = []  # where each row's batch was: step, epoch, batch position, example rows

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, output, finite_here: torch.Tensor, finite: torch.Tensor, place: dict) -> None:
        """Record a batch's `ModelOutput` with its 0-d bool finite flags (this process, every process)."""
        terms = [output.losses[key] for key in LOSS_TERMS[:3]] + [output.weighted_losses[key] for key in LOSS_TERMS[:3]]
        values = [output.loss.detach(), *terms, finite_here, finite]
        self._rows.append(torch.stack([value.float() for value in values]))
        self._places.append(place)

    def read(self) -> list[BatchLoss]:
        """Every batch recorded since the last read, in order (one transfer), and forget them."""
        if not self._rows:
            return []
        rows = torch.stack(self._rows).tolist()
        places = self._places
        self._rows, self._places = [], []
        return [BatchLoss(row[0], dict(zip(LOSS_TERMS, row[1:-2])), bool(row[-2]), bool(row[-1]), place)
                for row, place in zip(rows, places)]
