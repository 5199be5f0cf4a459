"""Text tokenised once per run: batches padded from the kept rows equal what the text encoder's `tokenize` gives for
the whole batch, for BERT's and RoBERTa's tokenizers, with truncation at `max_tokens` and words the tokenizer maps to
nothing; the collator's check that `word_mask` is a prefix of each row."""
import pytest
import torch

from mmlabel.data.batches import Collator, TaggingDataset
from mmlabel.data.example import Example
from mmlabel.data.token_rows import TokenRows
from mmlabel.errors import ComponentError
from mmlabel.registry import build

SENTENCES = [
    ["RT", "@user", ":", "Great", "game", "by", "Messi", "at", "Barcelona", "tonight", "!"],
    ["Obama", "visits", "New", "York"],
    ["zero", "\u200b", "width", "\x07", "bell"],  # words some tokenizers map to nothing
    ["the", "cat", "sat", "on", "the", "mat", "and", "looked", "at", "the", "camera", "again", "and", "again",
     "unbelievably", "photogenic"],  # cut off at max_tokens
    ["ok"],
    ["Obama", "visits", "New", "York"],  # a sentence twice
    ["I", "love", "London", "Bridge", "🌉", "at", "night"],
]
MAX_TOKENS = 12


@pytest.fixture(scope="module", params=["bert", "roberta"])
def encoder(request, tmp_path_factory):
    from mmlabel.text_encoders.tokenizer import train_word_tokenizer

    directory = tmp_path_factory.mktemp(request.param)
    train_word_tokenizer([" ".join(words) for words in SENTENCES], directory, request.param, vocab_size=400)
    return build("text_encoder", {"name": "hf", "init": "random", "model_type": request.param, "tokenizer": str(directory),
        "config_overrides": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                             "intermediate_size": 32}})


def dataset_of(encoder, counting=None):
    scheme = build("tag_scheme", "bio", labels=["POS"])
    examples = [Example(str(index), words, None, []) for index, words in enumerate(SENTENCES)]
    rows = TokenRows.for_encoder(encoder, MAX_TOKENS)
    if counting is not None:
        rows.tokenize = counting
    return TaggingDataset(examples, scheme, text=rows)


@pytest.mark.parametrize("indices", [[0, 1, 2], [3], [4, 3, 2, 1, 0], [1, 5], list(range(len(SENTENCES)))])
def test_batches_padded_from_kept_rows_equal_tokenize_on_the_batch(encoder, indices):
    dataset = dataset_of(encoder)
    batch = Collator.for_encoder(encoder, MAX_TOKENS)([dataset[index] for index in indices])
    expected = encoder.tokenize([SENTENCES[index] for index in indices], MAX_TOKENS)
    for key, value in expected.items():
        assert batch[key].dtype == value.dtype and torch.equal(batch[key], value), key
    if 3 in indices:  # the long sentence is cut: some of its words have no token
        assert batch["input_ids"].shape[1] == MAX_TOKENS and not batch["word_mask"][indices.index(3)].all()
    padding = batch["attention_mask"] == 0  # shorter rows are padded with the tokenizer's pad id
    assert (batch["input_ids"][padding] == encoder.tokenizer.pad_token_id).all()
    if indices == [0, 1, 2]:
        assert padding.any()


def test_each_sentence_is_tokenised_once_however_many_epochs_read_it(encoder):
    calls = []
    dataset = dataset_of(encoder, counting=lambda words, max_tokens: calls.append(len(words))
                         or encoder.tokenize(words, max_tokens))
    collate = Collator.for_encoder(encoder, MAX_TOKENS)
    for _ in range(3):  # epochs
        for start in range(0, len(dataset), 3):
            collate([dataset[index] for index in range(start, min(start + 3, len(dataset)))])
    assert calls == [len(SENTENCES) - 1]  # one call, for the distinct sentences, when the dataset was made
    assert encoder.pad_token_id == encoder.tokenizer.pad_token_id


def test_an_encoder_without_pad_token_id_is_asked_to_tokenise_every_batch(encoder):
    class Plain:
        def __init__(self):
            self.calls = 0

        def tokenize(self, words, max_tokens):
            self.calls += 1
            return encoder.tokenize(words, max_tokens)

    plain = Plain()
    assert TokenRows.for_encoder(plain, MAX_TOKENS) is None
    scheme = build("tag_scheme", "bio", labels=["POS"])
    dataset = TaggingDataset([Example("1", SENTENCES[1], None, [])], scheme, text=None)
    batch = Collator.for_encoder(plain, MAX_TOKENS)([dataset[0]])
    assert plain.calls == 1 and torch.equal(batch["input_ids"], encoder.tokenize([SENTENCES[1]], MAX_TOKENS)["input_ids"])


class Holes:
    """A text encoder whose `tokenize` breaks the contract: a real word after a padding one."""

    def __init__(self, encoder):
        self.encoder = encoder

    def tokenize(self, words, max_tokens):
        batch = self.encoder.tokenize(words, max_tokens)
        batch["word_mask"][0, 1] = False
        return batch


def test_a_word_mask_that_is_not_a_prefix_is_one_line_naming_the_text_encoder(encoder):
    scheme = build("tag_scheme", "bio", labels=["POS"])
    dataset = TaggingDataset([Example("1", SENTENCES[1], None, [])], scheme)
    holes = Holes(encoder)
    with pytest.raises(ComponentError) as error:
        Collator(holes.tokenize, 40, who="text_encoder 'hf' (plugin mmlabel.text_encoders)")([dataset[0]])
    message = str(error.value)
    assert message.startswith("text_encoder 'hf' (plugin mmlabel.text_encoders): `tokenize` gave a word_mask that is "
                              "not a prefix of row 0 ([1, 0, 1, 1])") and "\n" not in message
    with pytest.raises(ComponentError, match=r"^text_encoder Holes: `tokenize` gave a word_mask"):
        Collator.for_encoder(holes, 40)([dataset[0]])  # named by its class where no registry built it
    assert Collator(holes.tokenize, 40).who == "text_encoder Holes"
