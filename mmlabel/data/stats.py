"""Dataset statistics: the per-split figures `mmlabel data stats` prints, for sentiment (MABSA) and entity (NER) data."""
from collections import Counter

from mmlabel.data.example import SENTIMENTS, Example, is_sentiment_data, labels_of

SENTIMENT_COLUMNS = {"POS": "positive", "NEU": "neutral", "NEG": "negative"}


def split_stats(examples: list[Example], entity_types: list[str] | None = None) -> dict[str, int | float]:
    """The figures of one split. MABSA: sentences, aspects, positive, neutral, negative, multi_aspect,
    multi_sentiment, mean_length, max_length. NER (`entity_types` given): the spans are entities (entities,
    multi_entity), one count per type in place of the three sentiment columns, and multi_type (sentences with more
    than one entity type) in place of multi_sentiment."""
    label_counts = Counter(span.label for example in examples for span in example.spans)
    lengths = [len(example.tokens) for example in examples]
    multi_label = sum(1 for example in examples if len({span.label for span in example.spans}) > 1)
    spans = "aspect" if entity_types is None else "entity"
    figures: dict[str, int | float] = {"sentences": len(examples),
                                       ("aspects" if entity_types is None else "entities"): sum(label_counts.values())}
    if entity_types is None:
        figures.update({SENTIMENT_COLUMNS[label]: label_counts[label] for label in SENTIMENTS})
    else:
        figures.update({label: label_counts[label] for label in entity_types})
    figures[f"multi_{spans}"] = sum(1 for example in examples if len(example.spans) > 1)
    figures["multi_sentiment" if entity_types is None else "multi_type"] = multi_label
    figures["mean_length"] = round(sum(lengths) / len(lengths), 2) if lengths else 0.0
    figures["max_length"] = max(lengths, default=0)
    return figures


def dataset_stats(splits: dict[str, list[Example]]) -> dict[str, dict[str, int | float]]:
    """The figures of every split; entity-type columns when any span label is not a sentiment."""
    everything = [example for examples in splits.values() for example in examples]
    entity_types = None if is_sentiment_data(everything) else labels_of(everything)
    return {split: split_stats(examples, entity_types) for split, examples in splits.items()}


def same_text_other_image(examples: list[Example]) -> int:
    """How many examples share their words with an example that has a different image (kept apart, not merged)."""
    images_of_text: dict[tuple[str, ...], set] = {}
    for example in examples:
        images_of_text.setdefault(tuple(example.tokens), set()).add(example.image)
    return sum(1 for example in examples if len(images_of_text[tuple(example.tokens)]) > 1)
