"""The context channel's side file: free text per post (a caption, OCR text, object tags, retrieved passages,
generated knowledge), read beside the sentence by the text encoder (ITA, MoRe, PGIM: docs/model.md).

The file is JSON lines, one object per post: `{"image": "123.jpg", "context": "..."}` keyed by the post's photo, or
`{"id": "...", "context": "..."}` keyed by the post's id; the recipe names it and its key,
`data.context = {path = "contexts.jsonl", key = "image"}` (a relative path is read from the data root, as
`data.images`). `mmlabel data describe` writes such a file keyed by photo. A post with no entry has no context: the
text encoder reads its sentence alone, as without the channel. The file is read by `mmlabel.data.side_file`, which
the describers write with."""
from dataclasses import replace
from pathlib import Path

from mmlabel.data.side_file import read_side_file
from mmlabel.errors import DataError

NOT_THERE = ("no such context file (data.context.path): write it with `mmlabel data describe RECIPE --describer "
             "NAME`, or give the path of yours (docs/data.md, \"Context side file\")")


def context_path(setting: str, root: Path) -> Path:
    """`data.context.path`: relative to the data root unless absolute."""
    import os

    path = Path(os.path.expanduser(setting))
    return path if path.is_absolute() else Path(root) / path


def with_context(examples: list, contexts: dict[str, str], key: str) -> list:
    """The examples, each with the context of its photo (`key = "image"`) or id (`key = "id"`); None where the
    file has none."""
    return [replace(example, context=contexts.get(getattr(example, key)) or None) for example in examples]


def attach_context(splits: dict[str, list], source, root: Path) -> dict[str, list]:
    """The splits with the context of `source` (the recipe's `data.context`: `path` and `key`); a `DataError` where
    not one post has an entry (the wrong key, or a file for other data)."""
    path = context_path(source.path, root)
    contexts = read_side_file(path, source.key, missing=NOT_THERE)
    found = {split: with_context(examples, contexts, source.key) for split, examples in splits.items()}
    if contexts and not any(example.context for examples in found.values() for example in examples):
        raise DataError(f"not one post's {source.key} has an entry in this context file (data.context.key = "
                        f"{source.key!r}; its first entry is {next(iter(contexts))!r})", path)
    return found


def check_reads_context(text_encoder, examples: list) -> None:
    """A `ComponentError` where some example has context and the text encoder does not read any
    (`contracts.ContextTextEncoder`): its context would be dropped without a word."""
    from mmlabel.contracts import declares, describe
    from mmlabel.errors import ComponentError

    if not declares(text_encoder, "accepts_context") and any(example.context for example in examples):
        raise ComponentError(f"{describe('text_encoder', text_encoder)} does not read context text "
                             f"(`accepts_context`): leave out data.context and the posts' context, or use "
                             f"text_encoder 'hf'")
