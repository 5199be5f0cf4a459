"""Raw posts into words, the way the Twitter-2015/2017 benchmarks' sentences were split, with character offsets.

The benchmarks' sentences split punctuation marks and symbols off as tokens of their own (`@ user :`, `# hashtag`,
`he ' s`, `2014 - 15`, `. . .`, one token per emoji code point); the two releases differ in numbers and emoticons:

- `twitter` (Twitter-2017's way, and the default): numbers with separators (`16,000`, `10.9`) and emoticons (`:)`,
  `:-(`, `<3`) stay whole;
- `twitter2015` (Twitter-2015's way): those are split too (`16 , 000`, `: )`);
- `whitespace`: split on white space alone (mmlabel before 0.2).

Both Twitter tokenizers keep a URL whole: the benchmarks mostly dropped URLs, or cut them into `https : t . co XXX`,
which tells a tagger nothing. `tests/test_tokenize.py` measures the agreement with the benchmarks' own tokens.
"""
import re
from typing import NamedTuple

TOKENIZERS = ("twitter", "twitter2015", "whitespace")
DEFAULT_TOKENIZER = "twitter"

# A URL runs to the next space, less closing punctuation that follows it in a sentence.
_URL = r"(?:https?://|www\.)\S+?(?=[.,;:!?)\]'\"’”]*(?:\s|$))"
_NUMBER = r"\d+(?:[.,]\d+)+"
# Standing alone: `1:3` and `word:D` are not emoticons.
_EMOTICON = r"(?<!\w)(?:[:;=][-'^]?[)(\]\[DPpOo/\\|3*]|<3+|\^_*\^)(?!\w)"
# A word: letters, digits and underscores (user names keep theirs); everything else that is not a space is a token
# of one character.
_PATTERNS = {
    "twitter": re.compile(rf"{_URL}|{_EMOTICON}|{_NUMBER}|\w+|\S"),
    "twitter2015": re.compile(rf"{_URL}|\w+|\S"),
    "whitespace": re.compile(r"\S+"),
}


class Token(NamedTuple):
    """A word of a raw text and where it is: `text == raw[start:end]`."""

    text: str
    start: int
    end: int


def tokenize(text: str, tokenizer: str = DEFAULT_TOKENIZER) -> list[Token]:
    """The words of `text` with their character offsets, split by `tokenizer` (one of `TOKENIZERS`)."""
    if tokenizer not in _PATTERNS:
        raise ValueError(f"tokenizer must be one of {TOKENIZERS}, not {tokenizer!r}")
    pattern = _PATTERNS[tokenizer]
    return [Token(match.group(), match.start(), match.end()) for match in pattern.finditer(text)]


def words(text: str, tokenizer: str = DEFAULT_TOKENIZER) -> list[str]:
    """The words of `text` alone."""
    return [token.text for token in tokenize(text, tokenizer)]
