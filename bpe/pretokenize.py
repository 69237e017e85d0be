"""Pre-splitting: cut text into regex chunks and count the unique ones.

BPE never merges across a chunk boundary, so training only needs each unique chunk and how often it occurs.
`count_chunks` streams over text blocks (a file read piece by piece) and keeps only those counts, plus a short
carried tail: the last few chunks of a block are split again together with the next block, so the counts are
exactly those of the whole text, wherever the blocks were cut.
"""
from collections import Counter
from typing import Iterable, Iterator

import regex

from bpe.errors import TokenizerError
from bpe.patterns import PATTERNS, ascii_regex, resolve_pattern

# Chunks ending within this many characters of a block's end are carried into the next block and split again,
# because the regex may have decided them by looking ahead past the end (e.g. `'ll` vs `'` + `ll`, `\s++$`).
CARRY_CHARS = 16
# Text is split about PIECE_CHARS characters at a time: the list of chunks of a whole file would take far more
# memory than the counts, and one line at a time would spend more on the bookkeeping than on the splitting.
PIECE_CHARS = 1 << 16


def split_chunks(text: str, compiled_regex: regex.Pattern, ascii_compiled=None) -> list[str]:
    """Split `text` into the regex's matches, in order (characters no alternative matches are dropped).

    `ascii_compiled`, the same pattern for `re` (see `ascii_regex`), splits pure-ASCII text about twice as fast.
    """
    if ascii_compiled is not None and text.isascii():
        return ascii_compiled.findall(text)
    if compiled_regex.groups:  # findall would return the groups, not the whole matches
        return [m.group() for m in compiled_regex.finditer(text)]
    return compiled_regex.findall(text)


def fix_surrogates(text: str) -> str:
    """Replace lone surrogates with U+FFFD and join surrogate pairs, as tiktoken does, so the text is valid UTF-8."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def special_splitter(special_tokens: Iterable[str]) -> regex.Pattern | None:
    """A regex matching any of the special-token strings (longest first), or None when there are none."""
    specials = sorted(set(special_tokens), key=len, reverse=True)
    if not specials:
        return None
    return regex.compile("|".join(regex.escape(s) for s in specials))


def count_chunks(texts: Iterable[str], pattern: str, special_tokens: Iterable[str] = ()) -> dict[bytes, int]:
    """Count the UTF-8 bytes of every pre-split chunk over an iterable of text blocks.

    `pattern` is a pattern name ("gpt4", ...) or a regex. Special-token strings are cut out of the text first, so
    no chunk contains or straddles one. Blocks may be cut anywhere, even inside a word or a special token: the
    result equals counting the concatenated text (for any regex that decides a chunk by looking at most
    CARRY_CHARS characters past its end, as the named patterns do).
    """
    if isinstance(texts, str):
        texts = (texts,)
    pattern = resolve_pattern(pattern)
    compiled = regex.compile(pattern)
    fast = ascii_regex(pattern)
    covers_all = pattern in PATTERNS.values()  # the named patterns match every character: chunks tile the text
    special_tokens = tuple(special_tokens)
    specials = special_splitter(special_tokens)
    carry_chars = max([CARRY_CHARS] + [len(s) for s in special_tokens])
    counts: Counter[str] = Counter()
    carry = ""
    waiting: list[str] = []  # blocks read but not split yet
    waiting_chars = 0
    for block in _pieces(texts):
        # A long carry (one huge chunk, such as a run of a single letter) waits for at least as much new text,
        # so every character is split again only a few times: linear time.
        waiting.append(block)
        waiting_chars += len(block)
        if waiting_chars < len(carry):
            continue
        text = carry + "".join(waiting)
        waiting, waiting_chars = [], 0
        # a surrogate pair may be cut by the block boundary: keep a trailing high surrogate for the next block
        held = text[-1] if text and "\ud800" <= text[-1] <= "\udbff" else ""
        text = fix_surrogates(text[:-1] if held else text)
        if specials is not None:
            *closed, text = specials.split(text)  # only the part after the last special token stays open
            for part in closed:
                counts.update(split_chunks(part, compiled, fast))
        chunks = split_chunks(text, compiled, fast)
        keep, tail_chars = _split_off_tail(text, chunks, compiled, carry_chars, covers_all)
        counts.update(chunks[:keep])
        carry = text[len(text) - tail_chars:] + held if tail_chars else held
    carry += "".join(waiting)
    if carry:
        text = fix_surrogates(carry)
        parts = specials.split(text) if specials is not None else [text]
        for part in parts:
            counts.update(split_chunks(part, compiled, fast))
    return {chunk.encode("utf-8"): n for chunk, n in counts.items()}


def _pieces(texts: Iterable[str]) -> Iterator[str]:
    """The text blocks regrouped into pieces of about PIECE_CHARS characters: short blocks (lines of a file) are
    joined, so each costs little, and long ones are cut, so the list of chunks of one piece stays small."""
    short: list[str] = []
    short_chars = 0
    for block in texts:
        if not isinstance(block, str):
            raise TokenizerError(f"text blocks must be str, got {type(block).__name__}: decode bytes to text first")
        if len(block) <= PIECE_CHARS:
            short.append(block)
            short_chars += len(block)
            if short_chars >= PIECE_CHARS:
                yield "".join(short)
                short, short_chars = [], 0
            continue
        if short:
            yield "".join(short)
            short, short_chars = [], 0
        for start in range(0, len(block), PIECE_CHARS):
            yield block[start:start + PIECE_CHARS]
    if short:
        yield "".join(short)


def _split_off_tail(text: str, chunks: list[str], compiled: regex.Pattern, carry_chars: int,
                    covers_all: bool) -> tuple[int, int]:
    """How many leading chunks are final, and how many trailing characters of `text` to carry to the next block."""
    if not covers_all and sum(map(len, chunks)) != len(text):  # some characters are skipped: find where chunks end
        ends = [m.end() for m in compiled.finditer(text)]
        keep = len(ends)
        while keep and ends[keep - 1] > len(text) - carry_chars:
            keep -= 1
        return keep, len(text) - (ends[keep - 1] if keep else 0)
    keep, tail = len(chunks), 0
    while keep and tail < carry_chars:
        keep -= 1
        tail += len(chunks[keep])
    return keep, tail
