"""The word CRF before and after it became our own (pytorch-crf's likelihood and a Python-backtracking Viterbi, against
`mmlabel.fusion.crf.WordCRF`): milliseconds per NLL + backward and per decode, alternated in one process on the same
batch, and the ratio old / new.

    OMP_NUM_THREADS=1 python benchmarks/crf_speed.py [--batch 16 --words 40 --tags 5 --repeats 50 --device cpu]

Needs pytorch-crf (the `dev` extra). The batch is ragged (lengths from 1 to `--words`), as real batches are.
"""
import argparse
import statistics
import time

import torch
import torchcrf

from mmlabel.fusion.crf import WordCRF


class OldWordCRF(torch.nn.Module):
    """WordCRF as it was (commit 25ffc21): pytorch-crf for the likelihood, Viterbi backtracked in Python."""

    def __init__(self, num_tags: int):
        super().__init__()
        self.crf = torchcrf.CRF(num_tags, batch_first=True)

    def neg_log_likelihood(self, emissions, tags, word_mask):
        emissions, mask, has_words = _old_prepare(emissions, word_mask)
        tags = tags.masked_fill(~mask, 0).clamp(min=0)
        return -self.crf(emissions, tags, mask=mask, reduction="none").masked_fill(~has_words, 0.0)

    def decode(self, emissions, word_mask):
        emissions, mask, has_words = _old_prepare(emissions, word_mask)
        start, transitions, end = self.crf.start_transitions, self.crf.transitions, self.crf.end_transitions
        allowed = torch.ones_like(transitions, dtype=torch.bool)  # constrained decoding, as WordCRF's default
        start, transitions, end = (start.masked_fill(~allowed[0], -1e4), transitions.masked_fill(~allowed, -1e4),
                                   end.masked_fill(~allowed[0], -1e4))
        score = start + emissions[:, 0]
        backpointers = []
        for position in range(1, emissions.shape[1]):
            best, previous = (score[:, :, None] + transitions[None] + emissions[:, position, None, :]).max(dim=1)
            score = torch.where(mask[:, position, None], best, score)
            backpointers.append(previous)
        score = score + end
        lengths, last_tags = mask.sum(1).tolist(), score.argmax(1).tolist()
        backpointers = torch.stack(backpointers, 1).tolist() if backpointers else []
        paths = []
        for row, (length, tag) in enumerate(zip(lengths, last_tags)):
            path = [tag]
            for position in range(length - 1, 0, -1):
                tag = backpointers[row][position - 1][tag]
                path.append(tag)
            paths.append(path[::-1])
        return [path if keep else [] for path, keep in zip(paths, has_words.tolist())]


def _old_prepare(emissions, word_mask):
    mask = word_mask.bool()
    if (mask[:, 1:] & ~mask[:, :-1]).any():
        raise ValueError("word_mask must be contiguous")
    has_words = mask[:, 0].clone()
    mask = mask.clone()
    mask[:, 0] = True
    return emissions.float(), mask, has_words


def timed(function, device: torch.device) -> float:
    """Seconds of one call, the device's queue drained before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--words", type=int, default=40)
    parser.add_argument("--tags", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    arguments = parser.parse_args()
    device = torch.device(arguments.device)
    torch.manual_seed(0)
    new = WordCRF(arguments.tags).to(device)
    old = OldWordCRF(arguments.tags).to(device)
    old.load_state_dict(new.state_dict())
    lengths = torch.randint(1, arguments.words + 1, (arguments.batch,))
    lengths[0] = arguments.words
    mask = (torch.arange(arguments.words)[None] < lengths[:, None]).to(device)
    emissions = torch.randn(arguments.batch, arguments.words, arguments.tags, device=device, requires_grad=True)
    tags = torch.randint(0, arguments.tags, mask.shape, device=device).masked_fill(~mask, -100)
    assert old.decode(emissions.detach(), mask) == new.decode(emissions.detach(), mask)
    assert torch.allclose(old.neg_log_likelihood(emissions, tags, mask), new.neg_log_likelihood(emissions, tags, mask),
                          atol=1e-4)
    work = {
        "nll + backward": {name: (lambda crf=crf: crf.neg_log_likelihood(emissions, tags, mask).sum().backward())
                           for name, crf in (("old", old), ("new", new))},
        "decode": {name: (lambda crf=crf: crf.decode(emissions.detach(), mask)) for name, crf in (("old", old),
                                                                                                  ("new", new))},
    }
    print(f"batch {arguments.batch} x {arguments.words} words x {arguments.tags} tags on {device}, "
          f"{arguments.repeats} repeats, median ms")
    for task, versions in work.items():
        for function in versions.values():  # warm-up
            function()
        seconds = {name: [] for name in versions}
        for _ in range(arguments.repeats):  # alternated, so that both see the same load
            for name, function in versions.items():
                seconds[name].append(timed(function, device))
        old_ms, new_ms = (1000 * statistics.median(seconds[name]) for name in ("old", "new"))
        print(f"{task:15s} old {old_ms:8.3f}  new {new_ms:8.3f}  old/new {old_ms / new_ms:5.2f}")


if __name__ == "__main__":
    main()
