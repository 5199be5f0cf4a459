"""Tiny word tokenizers trained on a few sentences, saved in a Hugging Face model family's own format, so that
tests, the quickstart and benchmarks run with no download: `train_word_tokenizer(sentences, directory, "roberta")`."""
from pathlib import Path
from typing import Iterable, Literal

Family = Literal["bert", "roberta", "albert", "electra"]
FAMILIES: tuple[str, ...] = ("bert", "roberta", "albert", "electra")


def train_word_tokenizer(
    sentences: Iterable[str | list[str]],
    directory: str | Path,
    family: Family = "bert",
    vocab_size: int = 1000,
):
    """Train a small tokenizer of `family`'s kind (WordPiece for BERT and ELECTRA, byte-level BPE for RoBERTa,
    Unigram for ALBERT) on `sentences` (strings or lists of words), save it to `directory` with the family's
    tokenizer class, and return the loaded tokenizer. `AutoTokenizer.from_pretrained(directory)` reloads it, and
    a text encoder with `init = "random"` and `tokenizer = directory` uses it."""
    from transformers import AlbertTokenizer, BertTokenizer, ElectraTokenizer, RobertaTokenizer

    if family not in FAMILIES:
        raise ValueError(f"unknown tokenizer family {family!r}; families: {', '.join(FAMILIES)}")
    texts = [" ".join(s) if isinstance(s, (list, tuple)) else s for s in sentences]
    backend, specials = _train_backend(texts, family, vocab_size)
    tokenizer_class = {
        "bert": BertTokenizer, "electra": ElectraTokenizer, "roberta": RobertaTokenizer, "albert": AlbertTokenizer,
    }[family]
    extra = {"add_prefix_space": True} if family == "roberta" else {}
    tokenizer = tokenizer_class(tokenizer_object=backend, **specials, **extra)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(directory)
    return tokenizer


def _train_backend(texts: list[str], family: str, vocab_size: int):
    """The `tokenizers.Tokenizer` of the family, trained on `texts`, and its special tokens by role."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    if family in ("bert", "electra"):
        specials = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                    "mask_token": "[MASK]"}
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(specials.values()),
                                              show_progress=False)
    elif family == "roberta":
        # RoBERTa's own order: <s>=0, <pad>=1, </s>=2, <unk>=3 (its position ids count from the pad id).
        specials = {"bos_token": "<s>", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>",
                    "mask_token": "<mask>", "cls_token": "<s>", "sep_token": "</s>"}
        tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    else:  # albert: a SentencePiece-style unigram model over "▁"-prefixed words
        specials = {"pad_token": "<pad>", "unk_token": "<unk>", "cls_token": "[CLS]", "sep_token": "[SEP]",
                    "mask_token": "[MASK]", "bos_token": "[CLS]", "eos_token": "[SEP]"}
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.normalizer = normalizers.Lowercase()
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, unk_token="<unk>",
                                          special_tokens=["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"],
                                          show_progress=False)
    if family in ("bert", "electra"):
        tokenizer = _train_wordpiece(tokenizer, texts, vocab_size, list(specials.values()))
    else:
        tokenizer.train_from_iterator(texts, trainer=trainer)
    cls, sep = specials["cls_token"], specials["sep_token"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B {sep}",
        special_tokens=[(cls, tokenizer.token_to_id(cls)), (sep, tokenizer.token_to_id(sep))],
    )
    return tokenizer, specials


def _train_wordpiece(tokenizer, texts: list[str], vocab_size: int, specials: list[str]):
    """WordPiece trained deterministically. The trainer numbers the `##` continuation pieces in hash-map order, and
    breaks ties between equally frequent merges by those numbers, so two trainings on the same text learn different
    vocabularies (huggingface/tokenizers#1794) and a run could not be repeated. Giving every continuation piece a
    fixed number up front, as a special token of the trainer, removes that; the pieces are then ordinary vocabulary
    again in the tokenizer returned."""
    from tokenizers import Tokenizer, models, trainers

    characters = sorted({character for text in texts
                         for word, _ in tokenizer.pre_tokenizer.pre_tokenize_str(tokenizer.normalizer.normalize_str(text))
                         for character in word})
    pieces = [f"##{character}" for character in characters]
    # its progress bar would go to stdout, which a `--json` command keeps for its result
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=[*specials, *pieces], show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    trained = Tokenizer(models.WordPiece(vocab=tokenizer.get_vocab(with_added_tokens=False), unk_token="[UNK]"))
    trained.normalizer, trained.pre_tokenizer, trained.decoder = (
        tokenizer.normalizer, tokenizer.pre_tokenizer, tokenizer.decoder)
    trained.add_special_tokens(specials)
    return trained
