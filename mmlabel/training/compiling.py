"""`train.compile = true`: the training loss compiled by `torch.compile`, with sequence lengths bucketed so that an
epoch does not recompile.

A compiled graph is specialised to its input shapes. Batches of tweets have every length, so each batch's tokens and
words are padded up to a multiple of `train.compile_bucket` (`BucketedCollator`): the lengths fall into a few buckets,
the first epoch compiles one graph per bucket (and one more for a smaller last batch), and later epochs compile
nothing (`compiled_graphs` in log.jsonl stays flat). Padding changes no result: padded tokens are masked out of
attention and padded words out of every loss. Evaluation runs the model uncompiled.
"""
import torch
import torch.nn.functional as F

# Padding values of each batch entry that carries a length: tokens (input_ids: the pad id, given), words.
TOKEN_KEYS = {"attention_mask": 0}
WORD_KEYS = {"first_subword_index": 0, "word_mask": False, "tags": 0}


class BucketedCollator:
    """A collator whose batches have token and word lengths padded up to a multiple of `multiple` (picklable, for
    data-loader workers)."""

    def __init__(self, collate, multiple: int, pad_id: int):
        self.collate, self.multiple, self.pad_id = collate, multiple, pad_id

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.collate(items)
        tokens = -batch["input_ids"].shape[1] % self.multiple
        words = -batch["word_mask"].shape[1] % self.multiple
        batch["input_ids"] = F.pad(batch["input_ids"], (0, tokens), value=self.pad_id)
        for key, value in TOKEN_KEYS.items():
            batch[key] = F.pad(batch[key], (0, tokens), value=value)
        for key, value in WORD_KEYS.items():
            batch[key] = F.pad(batch[key], (0, words), value=value)
        return batch


def compile_loss(network: torch.nn.Module, backend: str = "inductor"):
    """The network's forward (the training loss) compiled for static shapes; the bucket count bounds the graphs,
    so the recompile limit is raised well above it."""
    import torch._dynamo

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    return torch.compile(network, backend=backend, dynamic=False)


def compiled_graphs() -> int:
    """Graphs compiled so far in this process (torch.compile's own count)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])
