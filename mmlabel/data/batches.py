"""Batches: examples become padded tensors. Words are tokenised once per run by the text encoder (`TokenRows`) and
only padded here (an encoder without `pad_token_id` tokenises each batch); photos come as uint8 pixels from the image
store, normalised later by the encoder on the device (an encoder without `pixel_transform` gets its float
`transform`'s pixels, decoded every time).

Each batch is padded to its own longest sequence; `word_mask` is False on padding words and on words the
`max_tokens` limit cut off (those are predicted O and still count against recall)."""
import os
import random
from typing import Callable

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mmlabel.data.example import Example
from mmlabel.data.token_rows import TokenRows, pad_rows


class TaggingDataset(Dataset):
    """Examples with their gold tag ids, their token rows where `text` keeps them, and, where the model has an image
    encoder, their pixels (`pixels`: an `ImageStore` or `DecodedImages`) or the cached states of a frozen encoder
    (`features`: an `ImageFeatureCache`)."""

    def __init__(self, examples: list[Example], scheme, pixels=None, features=None, text: TokenRows | None = None):
        self.examples = examples
        self.scheme = scheme
        self.pixels = pixels
        self.features = features
        self.text = text
        self.tag_index = {tag: index for index, tag in enumerate(scheme.tags)}
        if text is not None:
            # here, once, not in every batch of every epoch
            text.fill([example.tokens for example in examples], [example.context for example in examples])

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict:
        example = self.examples[index]
        item = {
            "index": index,
            "words": example.tokens,
            "tags": [self.tag_index[tag] for tag in self.scheme.encode(example.spans, len(example.tokens))],
            "context": example.context,
        }
        if self.text is not None:
            item["token_row"] = self.text.row(example.tokens, example.context)
        if self.features is not None:
            item["image_states"], item["image_mask"] = self.features.get(example.image)
        elif self.pixels is not None:
            item["pixel_values"] = self.pixels.get(example.image)  # (3, H, W), uint8 from the store
        return item


class Collator:
    """Pads a list of dataset items into one batch dict of tensors: their kept token rows (with `pad_token_id`), or
    their words through `tokenize`. Checks on the CPU, once per batch, that `word_mask` is a prefix of each row (the
    contract of `tokenize`; the CRF relies on it), naming the text encoder (`who`) where it is not."""

    def __init__(self, tokenize: Callable, max_tokens: int, pad_token_id: int | None = None, who: str | None = None):
        self.tokenize = tokenize
        self.max_tokens = max_tokens
        self.pad_token_id = pad_token_id
        self.who = who or _describe_text_encoder(getattr(tokenize, "__self__", None))

    @classmethod
    def for_encoder(cls, text_encoder, max_tokens: int) -> "Collator":
        return cls(text_encoder.tokenize, max_tokens, getattr(text_encoder, "pad_token_id", None),
                   _describe_text_encoder(text_encoder))

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        if "token_row" in items[0]:
            if self.pad_token_id is None:
                raise ValueError("token rows need the text encoder's pad_token_id: use Collator.for_encoder")
            batch = pad_rows([item["token_row"] for item in items], self.pad_token_id)
        else:
            words = [item["words"] for item in items]
            contexts = [item.get("context") for item in items]
            batch = dict(self.tokenize(words, self.max_tokens, contexts=contexts) if any(contexts)
                         else self.tokenize(words, self.max_tokens))
        check_word_mask(batch["word_mask"], self.who)
        words = batch["word_mask"].shape[1]
        tags = torch.zeros(len(items), words, dtype=torch.long)  # (batch, words)
        for row, item in enumerate(items):
            kept = item["tags"][:words]
            tags[row, : len(kept)] = torch.tensor(kept, dtype=torch.long)
        batch["tags"] = tags
        batch["index"] = torch.tensor([item["index"] for item in items], dtype=torch.long)
        for key in ("pixel_values", "image_states", "image_mask"):
            if key in items[0]:
                batch[key] = torch.stack([item[key] for item in items])
        return batch


def check_word_mask(word_mask: torch.Tensor, who: str) -> None:
    """A `ComponentError` where a real word follows a padding or cut-off word in some row of `word_mask`
    (batch, words) bool: the tag decoding reads real words as a prefix of each row."""
    from mmlabel.errors import ComponentError

    mask = word_mask.bool()
    broken = (mask[:, 1:] & ~mask[:, :-1]).any(1)  # (batch,)
    if bool(broken.any()):
        row = int(broken.nonzero()[0])
        raise ComponentError(f"{who}: `tokenize` gave a word_mask that is not a prefix of row {row} "
                             f"({mask[row].int().tolist()}): the contract is real words first, then padding and "
                             f"cut-off words")


def _describe_text_encoder(encoder) -> str:
    from mmlabel.contracts import describe

    return describe("text_encoder", encoder) if encoder is not None else "text_encoder"


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of similar sentence length (less padding), in a random order of batches each epoch."""

    def __init__(self, lengths: list[int], batch_size: int, shuffle: bool, seed: int = 0):
        self.lengths = lengths
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """The order is a function of (seed, epoch) alone; `skip` leaves out the first batches of it (a mid-epoch
        resume: those were trained on before the checkpoint)."""
        self.epoch = epoch
        self.skip = skip

    def __iter__(self):
        return iter(self.epoch_batches()[self.skip:])

    def epoch_batches(self) -> list[list[int]]:
        """Every batch of the epoch, in the epoch's order (`skip` aside)."""
        generator = random.Random(self.seed * 100_003 + self.epoch)
        order = list(range(len(self.lengths)))
        if self.shuffle:
            generator.shuffle(order)
            # sort within windows of 50 batches: similar lengths together, still a different mix every epoch
            window = self.batch_size * 50
            order = [i for start in range(0, len(order), window)
                     for i in sorted(order[start:start + window], key=self.lengths.__getitem__)]
        else:
            order.sort(key=self.lengths.__getitem__)
        batches = [order[start:start + self.batch_size] for start in range(0, len(order), self.batch_size)]
        if self.shuffle:
            generator.shuffle(batches)
        return batches

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    total = property(__len__)  # the batches of a whole epoch, as `ShardedBatchSampler.total`


class ShardedBatchSampler(Sampler[list[int]]):
    """One process's share of a `LengthBucketSampler`'s batches (data-parallel training): batches `rank`,
    `rank + world_size`, ... of the epoch's order, each batch whole, so the length bucketing is kept and the shares of
    the processes are disjoint and together hold every batch. With `pad`, the order is first padded with the epoch's
    first batches to a multiple of `world_size`, so that every process gets the same number of batches (DDP steps
    all processes together); at most `world_size - 1` batches are then seen twice in the epoch."""

    def __init__(self, base: LengthBucketSampler, rank: int = 0, world_size: int = 1, pad: bool = True):
        self.base = base
        self.rank = rank
        self.world_size = world_size
        self.pad = pad

    seed = property(lambda self: self.base.seed)
    total = property(lambda self: len(self.base))  # the batches of a whole epoch, over all processes

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """The order of `epoch`, without its first `skip` batches: `skip` counts batches of the whole order, over all
        processes, so that a checkpoint written by N processes resumes with M."""
        self.base.set_epoch(epoch, skip)

    def __iter__(self):
        epoch = self.base.epoch_batches()
        batches = epoch[self.base.skip:]
        if self.pad and batches:  # with the epoch's first batches, as the uninterrupted epoch is padded
            batches += [epoch[i % len(epoch)] for i in range(-len(batches) % self.world_size)]
        return iter(batches[self.rank::self.world_size])

    def __len__(self) -> int:
        remaining = max(self.total - self.base.skip, 0)
        if self.pad:
            return -(-remaining // self.world_size)
        return len(range(self.rank, remaining, self.world_size))


def make_loader(dataset: TaggingDataset, collate: Collator, batch_size: int, shuffle: bool, seed: int,
                workers: int = 0, rank: int = 0, world_size: int = 1, pad: bool = True) -> DataLoader:
    """A loader over length-bucketed batches; `workers` > 0 gathers and pads them in worker processes (see
    `loader_workers`). With `world_size` > 1, the batches of process `rank` alone (`ShardedBatchSampler`)."""
    sampler = LengthBucketSampler([len(example.tokens) for example in dataset.examples], batch_size, shuffle, seed)
    if world_size > 1:
        sampler = ShardedBatchSampler(sampler, rank, world_size, pad)
    # A generator of its own: otherwise each pass over the loader draws its workers' base seed from the global RNG,
    # and a run resumed from a checkpoint's RNG state would draw once more than the uninterrupted run did.
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
                      pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0,
                      generator=torch.Generator().manual_seed(seed))


def start_epoch(loader: DataLoader, epoch: int, skip: int = 0) -> None:
    """Set the loader's batch order and its workers' seeds for `epoch`, leaving out the first `skip` batches."""
    loader.batch_sampler.set_epoch(epoch, skip)
    loader.generator.manual_seed(loader.batch_sampler.seed * 100_003 + epoch)


def loader_workers(setting: int | str, device: torch.device | str) -> int:
    """Data-loader worker processes for `train.workers`: a number as given; "auto": none on a CPU, where the loop
    only reads stored pixels and pads, and a worker would take cores from the model's threads (docs/performance.md);
    beside an accelerator, the cores this process may use divided among the processes of this machine (torchrun's
    LOCAL_WORLD_SIZE), less one for the process itself, between 1 and 8."""
    if setting != "auto":
        return int(setting)
    if torch.device(device).type == "cpu":
        return 0
    from mmlabel.threads import available_cores

    processes = max(int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1), 1)
    return max(1, min(8, available_cores() // processes - 1))
