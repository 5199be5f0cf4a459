"""Pairing predictions with gold sentences by example id, so that a metric sees both in the same order."""
from mmlabel.data.example import Example, Span
from mmlabel.errors import DataError


def align_predictions(gold: list[Example], predicted: list[Example], where: str = "predictions") -> tuple[list[list[Span]], list[list[Span]]]:
    """(gold spans, predicted spans) per gold sentence; every gold id needs exactly one prediction of the same length."""
    by_id: dict[str, Example] = {}
    for example in predicted:
        if example.id in by_id:
            raise DataError(f"example id {example.id!r} is predicted twice", where)
        by_id[example.id] = example
    missing = [example.id for example in gold if example.id not in by_id]
    if missing:
        raise DataError(f"{len(missing)} of {len(gold)} gold sentences have no prediction (first: {missing[0]!r})", where)
    gold_ids = {example.id for example in gold}
    extra = [example_id for example_id in by_id if example_id not in gold_ids]
    if extra:
        raise DataError(f"{len(extra)} predictions have ids not in the gold data (first: {extra[0]!r})", where)
    for example in gold:
        if len(by_id[example.id].tokens) != len(example.tokens):
            raise DataError(f"prediction {example.id!r} has {len(by_id[example.id].tokens)} words, "
                            f"the gold sentence {len(example.tokens)}", where)
    return [example.spans for example in gold], [by_id[example.id].spans for example in gold]
