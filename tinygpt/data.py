"""Token data for training: tokenize a corpus once into a cached token file, split it, sample batches.

    ds = prepare_dataset(resolve_corpus("names"), tokenizer, docs=True)
    x, y = ds.get_batch("train", batch_size=32, block_size=64, rng=np.random.default_rng(0))

Layout: `ds.tokens` is one 1-D array, the train text's tokens followed by the val text's tokens;
`ds.train` is its first part and `ds.val` the rest *plus the last train token*, which serves as context for the
first val token. So in both splits every token after the first is a target, and `ds.val_bytes` counts exactly
the UTF-8 bytes of the text those targets encode: bits per byte over `ds.eval_batches("val", ...)` is exact.

Docs mode (one document per line, like names): every document is framed by DOC_SEPARATOR,
`SEP doc SEP doc ... SEP`, so the model sees where each document starts and learns to end it. A document's
bytes count its line's newline too, which the separator stands for.
"""
import hashlib
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from bpe.atomic import atomic_path, atomic_write_text
from tinygpt.errors import TinyGPTError

DOC_SEPARATOR = "<|endoftext|>"
CACHE_VERSION = 1
BLOCK_CHARS = 1 << 20   # tokenize plain text in blocks of about this many characters,
BLOCKS_PER_BATCH = 8    # this many blocks per encode_batch call
DOCS_PER_BATCH = 4096   # tokenize documents this many at a time
# Plain text is cut into blocks only at a newline followed by a non-space character: the GPT-2/GPT-4/o200k
# pre-split patterns always end a chunk there, so blockwise tokenization equals whole-text tokenization.
SAFE_CUT = re.compile(r"\n(?=\S)")


def cache_root() -> Path:
    """The folder for tinygpt's caches (tokens, compiled kernels): $TINYGPT_CACHE_DIR, else ~/.cache/tinygpt."""
    root = os.environ.get("TINYGPT_CACHE_DIR")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "tinygpt"


def token_cache_dir() -> Path:
    """Where token files are cached: $TINYGPT_CACHE_DIR/tokens, else ~/.cache/tinygpt/tokens."""
    return cache_root() / "tokens"


def bits_per_byte(mean_loss_nats: float, n_tokens: int, n_bytes: int) -> float:
    """Total bits the model spends on a text divided by its UTF-8 bytes: comparable across tokenizers."""
    return mean_loss_nats * n_tokens / (math.log(2) * n_bytes)


class TokenDataset:
    """A tokenized corpus split into train and val token arrays (numpy, possibly memory-mapped)."""

    def __init__(self, tokens: np.ndarray, n_train: int, train_bytes: int, val_bytes: int, vocab_size: int,
                 docs: bool = False, cache_path: Path | None = None, from_cache: bool = False):
        self.tokens = tokens
        self.train = tokens[:n_train]
        self.val = tokens[n_train - 1:]  # starts with the last train token: context for the first val target
        self.train_bytes, self.val_bytes = train_bytes, val_bytes
        self.vocab_size, self.docs = vocab_size, docs
        self.cache_path, self.from_cache = cache_path, from_cache

    def __repr__(self) -> str:
        return (f"TokenDataset(train={len(self.train)} tokens/{self.train_bytes} bytes, "
                f"val={len(self.val)} tokens/{self.val_bytes} bytes, vocab={self.vocab_size}, docs={self.docs})")

    def split(self, name: str) -> np.ndarray:
        """The token array of split "train" or "val"."""
        if name not in ("train", "val"):
            raise TinyGPTError(f"unknown split {name!r}; use 'train' or 'val'")
        return self.train if name == "train" else self.val

    def n_targets(self, split: str) -> int:
        """How many tokens of the split are predicted (all but its first)."""
        return len(self.split(split)) - 1

    def n_bytes(self, split: str) -> int:
        """UTF-8 bytes of the text behind the split's targets."""
        return self.train_bytes if self.split(split) is self.train else self.val_bytes

    def check_block_size(self, block_size: int) -> None:
        """One clear line if a split cannot hold one window of block_size + 1 tokens."""
        for name in ("train", "val"):
            n = len(self.split(name))
            if block_size + 1 > n:
                raise TinyGPTError(f"corpus too small for block_size {block_size}: it has {n} tokens in the "
                                   f"{name} split; use a smaller --block-size or a bigger corpus")

    def get_batch(self, split: str, batch_size: int, block_size: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """`batch_size` random windows of block_size + 1 tokens -> inputs x and next-token targets y, int32 (B, T).

        All randomness comes from `rng`, so saving its state (rng.bit_generator.state) resumes exactly.
        """
        data = self.split(split)
        if block_size < 1 or batch_size < 1:
            raise TinyGPTError(f"batch_size and block_size must be at least 1 (got {batch_size}, {block_size})")
        if block_size + 1 > len(data):
            raise TinyGPTError(f"corpus too small for block_size {block_size}: it has {len(data)} tokens in the "
                               f"{split} split; use a smaller --block-size or a bigger corpus")
        starts = rng.integers(0, len(data) - block_size, size=batch_size)
        windows = np.asarray(data[starts[:, None] + np.arange(block_size + 1)], dtype=np.int32)
        return windows[:, :-1], windows[:, 1:]

    def eval_batches(self, split: str, batch_size: int, block_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Consecutive windows covering every target of the split once, as fixed-shape int32 (B, T) batches.

        Padding (the tail of the last window, the unused rows of the last batch) has x = 0 and y = -1: sum the
        per-token loss where y >= 0 (e.g. tinygrad's sparse_categorical_crossentropy(..., reduction="sum") gives
        0 for target -1) and divide by n_targets(split); bits_per_byte(that, n_targets, n_bytes(split)).
        """
        data = self.split(split)
        starts = range(0, len(data) - 1, block_size)
        for first in range(0, len(starts), batch_size):
            x = np.zeros((batch_size, block_size), dtype=np.int32)
            y = np.full((batch_size, block_size), -1, dtype=np.int32)
            for row, start in enumerate(starts[first:first + batch_size]):
                window = np.asarray(data[start:start + block_size + 1], dtype=np.int32)
                x[row, :len(window) - 1], y[row, :len(window) - 1] = window[:-1], window[1:]
            yield x, y


def prepare_dataset(paths, tokenizer, cache_dir=None, docs: bool = False, val_fraction: float = 0.1,
                    progress=None) -> TokenDataset:
    """Tokenize the corpus files (once: the token file is cached by corpus and tokenizer hashes) and split them.

    The last `val_fraction` of the text, cut at a line (document) boundary, is the validation split.
    docs=True: each non-blank line is a document framed by DOC_SEPARATOR (the tokenizer must have it).
    Otherwise special-token strings in the text are plain text. `progress(done_chars, total_chars)` is
    called while tokenizing.
    """
    paths = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    if not paths:
        raise TinyGPTError("no corpus files given")
    if not 0 < val_fraction < 1:
        raise TinyGPTError(f"val_fraction must be between 0 and 1 (got {val_fraction})")
    if docs and DOC_SEPARATOR not in tokenizer.special_tokens:
        raise TinyGPTError(f"docs mode needs the special token {DOC_SEPARATOR} in the tokenizer; train one with "
                           f"--special '{DOC_SEPARATOR}' (or drop --docs)")
    texts, file_hashes = _read_texts(paths)
    key = _cache_key(file_hashes, tokenizer, docs, val_fraction)
    folder = Path(cache_dir) if cache_dir is not None else token_cache_dir()
    cached = _load_cached(folder, key)
    if cached is not None:
        return cached
    text = "".join(t if t.endswith("\n") else t + "\n" for t in texts)  # files never run into each other
    del texts
    dtype = np.uint16 if tokenizer.vocab_size <= 65536 else np.uint32
    if docs:
        tokens, n_train, train_bytes, val_bytes = _tokenize_docs(text, tokenizer, val_fraction, dtype, progress)
    else:
        tokens, n_train, train_bytes, val_bytes = _tokenize_text(text, tokenizer, val_fraction, dtype, progress)
    meta = dict(version=CACHE_VERSION, n_tokens=len(tokens), n_train=n_train, train_bytes=train_bytes,
                val_bytes=val_bytes, vocab_size=tokenizer.vocab_size, docs=docs, val_fraction=val_fraction,
                dtype=np.dtype(dtype).name, sources=[str(p) for p in paths])
    cache_path = _save_cached(folder, key, tokens, meta)
    return TokenDataset(tokens, n_train, train_bytes, val_bytes, tokenizer.vocab_size, docs, cache_path)


# --- reading and splitting ---------------------------------------------------------------------------------

def _read_texts(paths: list[Path]) -> tuple[list[str], list[str]]:
    texts, hashes = [], []
    for path in paths:
        try:
            data = path.read_bytes()
        except IsADirectoryError:
            raise TinyGPTError(f"corpus {path} is a directory; pass the text files in it") from None
        except OSError as e:
            raise TinyGPTError(f"cannot read corpus {path} ({e.strerror or e})") from None
        try:
            texts.append(data.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise TinyGPTError(f"corpus {path} is not UTF-8 text (invalid byte at offset {e.start}); "
                               f"convert it to UTF-8 first") from None
        hashes.append(hashlib.sha256(data).hexdigest())
    if not any(t.strip() for t in texts):
        raise TinyGPTError(f"corpus {', '.join(map(str, paths))} is empty; a corpus needs some text")
    return texts, hashes


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """Cut `text` into (train, val) at the first line boundary after (1 - val_fraction) of it.

    Falls back to the last line boundary before that point, and to a cut inside the line for one-line texts.
    """
    target = int(len(text) * (1 - val_fraction))
    after = text.find("\n", target)
    if after != -1 and text[after + 1:].strip():
        cut = after + 1
    else:
        before = text.rfind("\n", 0, target)
        cut = before + 1 if before != -1 and text[:before + 1].strip() else target
    train, val = text[:cut], text[cut:]
    if not train.strip() or not val.strip():
        raise TinyGPTError(f"corpus too small to split into train and val ({len(text)} characters); "
                           f"use a bigger corpus")
    return train, val


def _tokenize_text(text, tokenizer, val_fraction, dtype, progress):
    train_text, val_text = split_text(text, val_fraction)
    train_blocks, val_blocks = list(_blocks(train_text)), list(_blocks(val_text))
    encoded = _encode_blocks(train_blocks + val_blocks, tokenizer, dtype, progress)
    n_train = sum(len(ids) for ids in encoded[:len(train_blocks)])
    if n_train < 1 or n_train == sum(map(len, encoded)):
        raise TinyGPTError("corpus too small to split into train and val; use a bigger corpus")
    return (np.concatenate(encoded), n_train,
            len(train_text.encode("utf-8")), len(val_text.encode("utf-8")))


def _encode_blocks(blocks: list[str], tokenizer, dtype, progress) -> list[np.ndarray]:
    """Token ids of each block, encoded BLOCKS_PER_BATCH at a time; progress(done_chars, total_chars)."""
    total, done, encoded = sum(map(len, blocks)), 0, []
    for i in range(0, len(blocks), BLOCKS_PER_BATCH):
        batch = blocks[i:i + BLOCKS_PER_BATCH]
        encoded += [np.asarray(ids, dtype=dtype) for ids in _encode_ordinary_batch(tokenizer, batch)]
        done += sum(map(len, batch))
        if progress is not None:
            progress(done, total)
    return encoded


def _blocks(text: str) -> Iterator[str]:
    """Consecutive pieces of about BLOCK_CHARS characters, cut only where tokenization is unaffected."""
    start = 0
    while start < len(text):
        cut = SAFE_CUT.search(text, start + BLOCK_CHARS) if len(text) - start > BLOCK_CHARS else None
        end = cut.end() if cut else len(text)
        yield text[start:end]
        start = end


def _tokenize_docs(text, tokenizer, val_fraction, dtype, progress):
    documents = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    if len(documents) < 2:
        raise TinyGPTError(f"docs mode needs at least 2 documents (non-blank lines) to split into train and val; "
                           f"the corpus has {len(documents)}")
    sizes = np.array([len(d.encode("utf-8")) + 1 for d in documents], dtype=np.int64)  # +1: the newline
    ends = np.cumsum(sizes)
    n_train_docs = int(np.searchsorted(ends, ends[-1] * (1 - val_fraction)) + 1)
    n_train_docs = min(max(n_train_docs, 1), len(documents) - 1)
    sep = tokenizer.special_tokens[DOC_SEPARATOR]
    pieces = [np.array([sep], dtype=dtype)]
    for i in range(0, len(documents), DOCS_PER_BATCH):
        batch = documents[i:i + DOCS_PER_BATCH]
        ids = []
        for doc_ids in _encode_ordinary_batch(tokenizer, batch):
            ids += doc_ids
            ids.append(sep)
        pieces.append(np.asarray(ids, dtype=dtype))
        if progress is not None:
            progress(int(ends[i + len(batch) - 1]), int(ends[-1]))
    tokens = np.concatenate(pieces)
    # n_train: the leading SEP plus every train document and its closing SEP
    n_train = 1 + _count_tokens_of_first(tokens[1:], sep, n_train_docs)
    return tokens, n_train, int(ends[n_train_docs - 1]), int(ends[-1] - ends[n_train_docs - 1])


def _count_tokens_of_first(tokens: np.ndarray, sep: int, n_docs: int) -> int:
    """Tokens up to and including the n_docs-th separator."""
    return int(np.flatnonzero(tokens == sep)[n_docs - 1]) + 1


def _encode_ordinary_batch(tokenizer, texts: list[str]) -> list[list[int]]:
    """Encode texts with special-token strings as plain text, batched when the tokenizer can."""
    batch = getattr(tokenizer, "encode_batch", None)
    if batch is not None:
        return batch(texts, allowed_special=set(), disallowed_special=())
    return [tokenizer.encode_ordinary(t) for t in texts]


# --- the token cache ---------------------------------------------------------------------------------------

def _cache_key(file_hashes, tokenizer, docs, val_fraction) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save(os.path.join(tmp, "tokenizer.json"))
        tokenizer_hash = hashlib.sha256(Path(tmp, "tokenizer.json").read_bytes()).hexdigest()
    what = dict(version=CACHE_VERSION, files=file_hashes, tokenizer=tokenizer_hash, docs=docs,
                val_fraction=val_fraction)
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:32]


def _load_cached(folder: Path, key: str) -> TokenDataset | None:
    """The cached dataset, or None when it is missing or does not match its metadata (then it is rebuilt)."""
    meta_path, tokens_path = folder / f"{key}.json", folder / f"{key}.npy"
    try:
        meta = json.loads(meta_path.read_text())
        tokens = np.load(tokens_path, mmap_mode="r")
        if (meta.get("version") != CACHE_VERSION or tokens.ndim != 1 or len(tokens) != meta["n_tokens"]
                or tokens.dtype.name != meta["dtype"]):
            return None
        return TokenDataset(tokens, meta["n_train"], meta["train_bytes"], meta["val_bytes"], meta["vocab_size"],
                            meta["docs"], tokens_path, from_cache=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save_cached(folder: Path, key: str, tokens: np.ndarray, meta: dict) -> Path | None:
    """Write the token file, then its metadata (written last, it marks the cache entry complete)."""
    tokens_path = folder / f"{key}.npy"
    try:
        with atomic_path(tokens_path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, tokens)
        atomic_write_text(folder / f"{key}.json", json.dumps(meta, indent=1))
    except OSError as e:
        print(f"warning: could not cache tokens in {folder} ({e.strerror or e}); they stay in memory",
              file=sys.stderr)
        return None
    return tokens_path
