"""The `Tokenizer`: a byte-level BPE with tiktoken's special-token rules, trainable, saveable, exportable.

Ids: 0..255 are the 256 single bytes, then one id per merge in the order the merges were learned (merge i makes
id 256 + i), then the special tokens. A tokenizer loaded from a tiktoken ranks file keeps that file's ids
exactly (its first 256 ranks are the single bytes, in the file's own order), so its ids equal tiktoken's.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

import regex

import numpy as np

from bpe.encoder import ByteTable, ChunkEncoder
from bpe.errors import TokenizerError
from bpe.patterns import ascii_regex, pattern_name, resolve_pattern

IDENTITY_BYTES = tuple(range(256))
DECODE_NUMPY_MIN = 512  # from this many ids on, decoding goes through numpy


class Tokenizer:
    """A byte-level BPE tokenizer: every string and every byte sequence encodes, nothing is unknown."""

    def __init__(self, merges: Iterable[tuple[int, int]] = (), pattern: str = "gpt4",
                 special_tokens: Mapping[str, int] | Iterable[str] = (), byte_ids: Iterable[int] = IDENTITY_BYTES):
        """Build a tokenizer from its merges (merge i joins ids (left, right) into id 256 + i).

        `special_tokens` is a list of strings (they get the ids after the merges, in order) or a dict
        string -> id. `byte_ids[b]` is the id of byte b: the identity unless the tokenizer came from tiktoken.
        """
        self.pattern = resolve_pattern(pattern)
        self._regex = regex.compile(self.pattern)
        self._ascii_regex = ascii_regex(self.pattern)
        self._named_pattern = pattern_name(self.pattern) is not None
        self._merges = [(int(left), int(right)) for left, right in merges]
        self._byte_ids = [int(i) for i in byte_ids]
        if sorted(self._byte_ids) != list(range(256)):
            raise TokenizerError("byte_ids must give each of the 256 bytes a different id in 0..255")
        token_bytes = [b""] * 256
        for byte, token in enumerate(self._byte_ids):
            token_bytes[token] = bytes([byte])
        for i, (left, right) in enumerate(self._merges):
            if not (0 <= left < 256 + i and 0 <= right < 256 + i):
                raise TokenizerError(f"merge {i} ({left}, {right}) uses an id that does not exist before id {256 + i}")
            token_bytes.append(token_bytes[left] + token_bytes[right])
        if len(set(self._merges)) != len(self._merges):
            raise TokenizerError("the same pair is merged twice: each merge must join a different pair")
        self._special_tokens = self._number_specials(special_tokens, len(token_bytes))
        self._decoder = dict(enumerate(token_bytes))
        for text, token in self._special_tokens.items():
            self._decoder[token] = text.encode("utf-8")
        self._byte_table = None  # built by the first long decode
        self._encoder = ChunkEncoder(self._merges, self._byte_ids, token_bytes)

    @staticmethod
    def _number_specials(special_tokens, first_free: int) -> dict[str, int]:
        if isinstance(special_tokens, Mapping):
            specials = {str(text): int(token) for text, token in special_tokens.items()}
        else:
            specials = {}
            for text in special_tokens:
                if text in specials:
                    raise TokenizerError(f"special token {text!r} is given twice")
                specials[text] = first_free + len(specials)
        for text, token in specials.items():
            if not isinstance(text, str) or not text:
                raise TokenizerError(f"special tokens must be non-empty strings, got {text!r}")
            if token < first_free:
                raise TokenizerError(f"special token {text!r} has id {token}, which a byte or merge already uses "
                                     f"(special ids start at {first_free})")
        if len(set(specials.values())) != len(specials):
            raise TokenizerError("two special tokens have the same id")
        return specials

    # ---- training ----------------------------------------------------------------------------------------

    @classmethod
    def train(cls, text_or_iterable: str | Iterable[str], vocab_size: int, pattern: str = "gpt4",
              special_tokens: Iterable[str] = (), progress=None) -> Tokenizer:
        """Learn merges from a text, or from an iterable of text blocks (read in pieces: a file bigger than memory).

        `vocab_size` counts every id (256 bytes + merges + special tokens): it is the model's embedding size.
        Special-token strings in the corpus are never merged into chunks. `progress(done, total)` is called now
        and then while merging.
        """
        from bpe.pretokenize import count_chunks
        from bpe.train import train_merges

        pattern = resolve_pattern(pattern)
        specials = list(special_tokens)
        cls._number_specials(specials, 256)  # checks the strings
        smallest = 256 + len(specials)
        if not isinstance(vocab_size, int) or vocab_size < smallest:
            raise TokenizerError(f"vocab_size {vocab_size} is too small: it must be at least {smallest} "
                                 f"(256 bytes + {len(specials)} special tokens)")
        if isinstance(text_or_iterable, (bytes, bytearray)):
            raise TokenizerError("train expects text (str) or an iterable of str, not bytes: decode it first")
        texts = [text_or_iterable] if isinstance(text_or_iterable, str) else text_or_iterable
        counts = count_chunks(texts, pattern, specials)
        if not counts:
            raise TokenizerError("the training corpus is empty: give it some text")
        wanted = vocab_size - smallest
        merges = train_merges(counts, wanted, progress)
        if len(merges) < wanted:
            raise TokenizerError(f"vocab_size {vocab_size} is more than this corpus can make: it supports only "
                                 f"{len(merges)} merges, so ask for vocab_size {smallest + len(merges)} or less")
        return cls(merges, pattern, specials)

    # ---- what it holds -----------------------------------------------------------------------------------

    @property
    def merges(self) -> list[tuple[int, int]]:
        """The merges in order: merges[i] = (left id, right id) makes id 256 + i."""
        return list(self._merges)

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special-token string -> id."""
        return dict(self._special_tokens)

    @property
    def byte_ids(self) -> list[int]:
        """byte_ids[b] is the id of the single byte b (the identity except for tiktoken's files)."""
        return list(self._byte_ids)

    @property
    def vocab_size(self) -> int:
        """The number of ids, special tokens included (the highest id + 1): the embedding size of a model."""
        return max([255 + len(self._merges), *self._special_tokens.values()]) + 1

    def token_bytes(self, token: int) -> bytes:
        """The bytes of one id (a special token's UTF-8 string for a special id)."""
        try:
            return self._decoder[token]
        except (KeyError, TypeError):
            raise TokenizerError(f"token id {token!r} is not in this tokenizer (ids go from 0 to "
                                 f"{self.vocab_size - 1})") from None

    def prepare(self) -> "Tokenizer":
        """Build the tables that long encodes and decodes use now, instead of in the first such call.

        They take 0.02-1 s (more for bigger vocabularies), so a tokenizer loaded only to decode a few ids never
        pays for them; call this before timing, or before forking worker processes that should share them.
        """
        self._encoder.prepare()
        if self._byte_table is None:
            self._byte_table = ByteTable(self._decoder)
        return self

    def __repr__(self) -> str:
        return (f"Tokenizer(vocab_size={self.vocab_size}, merges={len(self._merges)}, "
                f"special_tokens={len(self._special_tokens)})")

    # ---- encoding ----------------------------------------------------------------------------------------

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode text, treating special-token strings as plain text."""
        return self._encode_ordinary_many([text])[0]

    def encode(self, text: str, allowed_special: str | Iterable[str] = frozenset(),
               disallowed_special: str | Iterable[str] = "all") -> list[int]:
        """Encode text with tiktoken's rules for special tokens.

        A special-token string in `allowed_special` ("all" or a set) becomes its single id. One in
        `disallowed_special` (by default every special token not allowed) raises ValueError, so text from users
        cannot inject control tokens; `disallowed_special=()` encodes such strings as ordinary text.
        """
        return self.encode_batch([text], allowed_special, disallowed_special)[0]

    def encode_batch(self, texts: Iterable[str], allowed_special: str | Iterable[str] = frozenset(),
                     disallowed_special: str | Iterable[str] = "all") -> list[list[int]]:
        """Encode each text like `encode`; new chunks of all texts are merged together (faster than a loop)."""
        texts = list(texts)
        allowed = self._allowed(allowed_special)
        disallowed = self._disallowed(disallowed_special, allowed)
        if disallowed:
            finder = _special_regex(disallowed)
            for text in texts:
                self._check_text(text)
                found = finder.search(text)
                if found:
                    raise TokenizerError(
                        f"Encountered text corresponding to disallowed special token {found.group()!r}. "
                        f"If you want this text to be encoded as a special token, pass it to `allowed_special`, "
                        f"e.g. `allowed_special={{{found.group()!r}, ...}}`; to encode it as normal text, pass "
                        f"`disallowed_special=()` (or remove it from `disallowed_special`).")
        if not allowed:
            return self._encode_ordinary_many(texts)
        splitter = _special_regex(allowed)
        pieces, layout = [], []  # layout: per text, a list of piece indexes (int) and special ids (tuple)
        for text in texts:
            self._check_text(text)
            parts, start = [], 0
            for found in splitter.finditer(text):
                parts.append(len(pieces))
                pieces.append(text[start:found.start()])
                parts.append((self._special_tokens[found.group()],))
                start = found.end()
            parts.append(len(pieces))
            pieces.append(text[start:])
            layout.append(parts)
        encoded = self._encode_ordinary_many(pieces)
        results = []
        for parts in layout:
            ids = []
            for part in parts:
                ids += part if isinstance(part, tuple) else encoded[part]
            results.append(ids)
        return results

    def _encode_ordinary_many(self, texts: list[str]) -> list[list[int]]:
        split = self._split
        for text in texts:
            self._check_text(text)
        try:
            return self._encoder.encode_texts(texts, [split(text) for text in texts])
        except UnicodeEncodeError:  # lone surrogates: replace them with U+FFFD, as tiktoken does
            texts = [_fix_surrogates(text) for text in texts]
            return self._encoder.encode_texts(texts, [split(text) for text in texts])

    def _split(self, text: str) -> list[str]:
        if self._ascii_regex is not None and text.isascii():
            return self._ascii_regex.findall(text)
        if self._regex.groups:  # findall would return the groups, not the whole matches
            return [m.group() for m in self._regex.finditer(text) if m.group()]
        chunks = self._regex.findall(text)
        return chunks if self._named_pattern else [chunk for chunk in chunks if chunk]  # a custom regex may match ""

    @staticmethod
    def _check_text(text) -> None:
        if not isinstance(text, str):
            raise TokenizerError(f"encode expects a str, got {type(text).__name__}")

    def _allowed(self, allowed_special) -> frozenset[str]:
        if allowed_special == "all":
            return frozenset(self._special_tokens)
        allowed = frozenset([allowed_special] if isinstance(allowed_special, str) else allowed_special)
        return frozenset(allowed & self._special_tokens.keys())  # like tiktoken, names that are not special are ignored

    def _disallowed(self, disallowed_special, allowed: frozenset[str]) -> frozenset[str]:
        if disallowed_special == "all":
            return frozenset(self._special_tokens) - allowed
        return frozenset([disallowed_special] if isinstance(disallowed_special, str) else disallowed_special)

    # ---- decoding ----------------------------------------------------------------------------------------

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes the ids stand for (a list, any iterable of ints, or a numpy integer array)."""
        if not isinstance(ids, (list, tuple)) and not hasattr(ids, "dtype"):
            ids = list(ids)
        if len(ids) >= DECODE_NUMPY_MIN:  # long: gather from one packed buffer with numpy
            array = np.asarray(ids) if hasattr(ids, "dtype") else np.fromiter(ids, dtype=np.int64, count=len(ids))
            if self._byte_table is None:
                self._byte_table = ByteTable(self._decoder)
            data = self._byte_table.join(array) if array.dtype.kind in "iu" else None
            if data is not None:
                return data
        try:
            return b"".join(map(self._decoder.__getitem__, ids))
        except (KeyError, TypeError):
            for token in ids:
                self.token_bytes(token)  # raises, naming the bad id
            raise

    def decode(self, ids: Iterable[int]) -> str:
        """The text the ids stand for; bytes that are not valid UTF-8 (a cut character) become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ---- files -------------------------------------------------------------------------------------------

    def save(self, path) -> None:
        """Write the tokenizer to one human-readable, versioned JSON file (atomically)."""
        from bpe.formats import save_json
        save_json(self, path)

    @classmethod
    def load(cls, path) -> Tokenizer:
        """Read a tokenizer written by `save`; a bad file raises TokenizerError naming the file and the problem."""
        from bpe.formats import load_json
        return load_json(path)

    @classmethod
    def from_tiktoken(cls, path, pattern: str = "cl100k", special_tokens: Mapping[str, int] | None = None) -> Tokenizer:
        """Load a tiktoken ranks file (e.g. cl100k_base.tiktoken); ids equal tiktoken's ids.

        `special_tokens` maps each special string to its id (tiktoken keeps them outside the file), e.g.
        {"<|endoftext|>": 100257}.
        """
        from bpe.formats import load_tiktoken
        return load_tiktoken(path, pattern, special_tokens or {})

    def save_tiktoken(self, path) -> None:
        """Write a ranks file that `tiktoken.load.load_tiktoken_bpe` reads (special tokens are not part of it)."""
        from bpe.formats import save_tiktoken
        save_tiktoken(self, path)

    def save_huggingface(self, path) -> None:
        """Write a tokenizer.json that `tokenizers.Tokenizer.from_file` loads and that gives the same ids."""
        from bpe.formats import save_huggingface
        save_huggingface(self, path)


@lru_cache(maxsize=64)
def _special_regex(specials: frozenset[str]) -> regex.Pattern:
    """A regex that finds any of the special strings (the longest one where two start at the same place)."""
    return regex.compile("|".join(regex.escape(s) for s in sorted(specials, key=lambda s: (-len(s), s))))


def _fix_surrogates(text: str) -> str:
    """Replace lone surrogates with U+FFFD and join surrogate pairs, exactly as tiktoken does."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
