"""Show what a tokenizer does: text with token boundaries marked, statistics over a corpus, ids parsed from text.

These are the library side of `bpe show`, `bpe stats`, `bpe decode` and the summary of `bpe train`.
"""
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from bpe.errors import TokenizerError
from bpe.textio import complete_utf8_prefix

# Pastel 256-colour backgrounds with black text, cycled per token as tiktokenizer does.
PALETTE = (153, 223, 193, 225, 159, 217, 229, 183)
RESET = "\x1b[0m"


def token_segments(tokenizer, ids: Iterable[int]) -> list[tuple[str, list[int]]]:
    """Group `ids` into (text, ids) segments, one per token, as far as characters allow.

    A token may end inside a multi-byte character (a rare Chinese character is often two or three byte tokens);
    such tokens are kept together in one segment with the tokens that complete the character.
    """
    segments, buf, seg_ids = [], b"", []
    for i in ids:
        buf += tokenizer.token_bytes(i)
        seg_ids.append(i)
        if complete_utf8_prefix(buf) < len(buf):
            continue  # wait for the rest of the character
        segments.append((buf.decode("utf-8", errors="replace"), seg_ids))
        buf, seg_ids = b"", []
    if seg_ids:
        segments.append((buf.decode("utf-8", errors="replace"), seg_ids))
    return segments


def render_segments(segments: list[tuple[str, list[int]]], color: bool = True, separator: str = "|") -> str:
    """The text of `segments` with boundaries shown: cycling background colours, or `separator` when plain.

    In colour a newline is shown as "↵" followed by the line break.
    """
    if not color:
        return separator.join(text for text, _ in segments)
    out = []
    for n, (text, _) in enumerate(segments):
        start = f"\x1b[30;48;5;{PALETTE[n % len(PALETTE)]}m"
        # A newline shows as a coloured "↵" (else a newline token would be invisible); the colour is closed
        # before the line break so the background does not run to the edge of the terminal.
        out.append(start + text.replace("\n", "↵" + RESET + "\n" + start) + RESET)
    return "".join(out)


def token_label(tokenizer, token_id: int) -> str:
    """A readable one-line label for a token: its text in quotes, or its bytes when they are not UTF-8."""
    data = tokenizer.token_bytes(token_id)
    try:
        return json.dumps(data.decode("utf-8"), ensure_ascii=False)
    except UnicodeDecodeError:
        return repr(data)


@dataclass
class TextStats:
    """How a tokenizer cuts a text: counts of tokens, bytes, characters and of each token id."""
    tokens: int = 0
    bytes: int = 0
    chars: int = 0
    counts: Counter = field(default_factory=Counter)

    @property
    def bytes_per_token(self) -> float:
        return self.bytes / self.tokens if self.tokens else 0.0

    @property
    def chars_per_token(self) -> float:
        return self.chars / self.tokens if self.tokens else 0.0

    def add(self, text: str, ids: list[int]) -> None:
        """Account for one more piece of text and its ids."""
        self.tokens += len(ids)
        self.bytes += len(text.encode("utf-8", errors="replace"))
        self.chars += len(text)
        self.counts.update(ids)


def text_stats(tokenizer, texts: Iterable[str]) -> TextStats:
    """Encode each text (special-token strings count as the special tokens) and gather `TextStats`."""
    stats = TextStats()
    for text in [texts] if isinstance(texts, str) else texts:
        stats.add(text, tokenizer.encode(text, allowed_special="all"))
    return stats


_ID_SEPARATORS = re.compile(r"[\s,\[\]]+")


def parse_ids(words: Iterable[str], vocab_size: int) -> list[int]:
    """Token ids from command-line words: "1 2 3", "1,2,3" and "[1, 2, 3]" (the JSON `bpe encode` prints) all work.

    Anything that is not an integer in 0..vocab_size-1 is a one-line `TokenizerError` naming it.
    """
    ids = []
    for word in words:
        for part in _ID_SEPARATORS.split(word):
            if not part:
                continue
            if not re.fullmatch(r"[+-]?\d+", part):
                raise TokenizerError(f"not a token id: {part!r}; pass integers like `bpe decode -t tok.json 72 101`")
            value = int(part)
            if not 0 <= value < vocab_size:
                raise TokenizerError(f"token id {value} is out of range: this tokenizer has ids 0..{vocab_size - 1}")
            ids.append(value)
    return ids
