"""Text from a trained model: the token loop, the KV cache, UTF-8-safe streaming and stop strings.

    prompt --encode--> ids --model--> logits --sample_next--> id --token bytes--> Utf8Stream --> text pieces

`generate(...)` yields the new text piece by piece as it is produced. Pieces are never empty; one may hold less
than its token (bytes of an unfinished character, or a possible stop string, are held back) or more (held-back
text released).

The context window. The model sees at most block_size tokens, at positions 0..block_size-1. When the text
grows past that, the window shifts forward by `context_shift` tokens (a quarter of block_size by default) rather
than one token at a time, the way llama.cpp shifts its context: the cached path then re-reads the shorter window
once (one batched prefill) and goes on one position per token. `context_start` is the single rule both paths
use, so the KV-cache path and the no-cache path see the same tokens and give the same text for the same seed.
`context_shift=1` is nanoGPT's "crop to the last block_size tokens" at every step.
"""
from __future__ import annotations

import codecs
import re
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from tinygrad import Context, TinyJit, UOp, nn

from tinygpt.data import DOC_SEPARATOR as SEPARATOR  # the document separator, also the BOS of a docs-mode model
from tinygpt.errors import TinyGPTError
from tinygpt.jit_inputs import JitInput, to_numpy
from tinygpt.sampling import sample_next, validate_sampling


# Defaults of generate() and of the CLI, after llama.cpp's: a little below temperature 1, top-k 40, top-p 0.95.
DEFAULT_MAX_NEW_TOKENS = 200
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_K = 40
DEFAULT_TOP_P = 0.95
DEFAULT_REPETITION_PENALTY = 1.0


class Utf8Stream:
    """Turn a stream of byte chunks into text, holding back the bytes of a character not yet complete.

    Byte-level BPE tokens can end in the middle of a multi-byte character (a Chinese character is 3 bytes and may
    be split across two tokens). `feed` returns only whole characters, so a character that the next token
    completes is never printed as U+FFFD; bytes that can never become valid UTF-8 are replaced at once, and
    `flush` replaces whatever incomplete bytes remain at the end.
    """

    def __init__(self):
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        """The text completed by these bytes (possibly empty)."""
        return self._decoder.decode(data, final=False)

    def flush(self) -> str:
        """Whatever is still held back, with U+FFFD for an unfinished character; the stream starts afresh."""
        return self._decoder.decode(b"", final=True)


@dataclass
class GenerationStats:
    """Counts and timings of one generation (seconds; the first token includes prompt processing)."""
    prompt_tokens: int = 0
    new_tokens: int = 0
    first_token_s: float = 0.0
    total_s: float = 0.0
    stop_reason: str = ""  # "length", "stop" (a stop string), "separator" (the model ended the document)

    @property
    def tokens_per_s(self) -> float:
        """New tokens per second over the whole generation, prompt processing included."""
        return self.new_tokens / self.total_s if self.total_s > 0 else 0.0

    @property
    def decode_tokens_per_s(self) -> float:
        """Tokens per second after the first one: the steady speed of the token loop."""
        steady = self.total_s - self.first_token_s
        return (self.new_tokens - 1) / steady if self.new_tokens > 1 and steady > 0 else 0.0

    def summary(self) -> str:
        """One line for stderr, e.g. "12 prompt + 100 new tokens, first token 0.41 s, 85.3 tokens/s"."""
        return (f"{self.prompt_tokens} prompt + {self.new_tokens} new tokens, first token {self.first_token_s:.2f} s, "
                f"{self.decode_tokens_per_s:.1f} tokens/s after it, {self.tokens_per_s:.1f} tokens/s overall "
                f"(stopped: {self.stop_reason})")


def context_start(n_tokens: int, block_size: int, context_shift: int) -> int:
    """Index of the first token the model sees when it predicts token number `n_tokens` (0-based).

    0 while everything fits; past block_size the window start jumps in steps of `context_shift`, so the window
    holds between block_size - context_shift + 1 and block_size tokens.
    """
    if n_tokens <= block_size:
        return 0
    return -(-(n_tokens - block_size) // context_shift) * context_shift


def _model_device(model) -> str:
    return nn.state.get_parameters(model)[0].device


class FullForward:
    """Next-token logits without a cache: run the whole window through `model(idx)` every step.

    The window is right-padded to block_size so every call has the same shape (tinygrad compiles once, TinyJit
    replays); causal attention means the padding never changes the logits at the real positions.
    """

    def __init__(self, model):
        self.model, self.block_size = model, model.config.block_size
        self.device = _model_device(model)
        self._forward = TinyJit(lambda idx: self.model(idx).realize())
        self._window = JitInput(self.device)

    def next_logits(self, window: Sequence[int]) -> np.ndarray:
        padded = np.zeros((1, self.block_size), dtype=np.int32)
        padded[0, :len(window)] = window
        with Context(TRAINING=0):  # no dropout, even when called from a training loop
            logits = to_numpy(self._forward(self._window(padded)))
        return logits[0, len(window) - 1]


class CachedForward:
    """Next-token logits with the model's KV cache: a new token at the end of the window costs one position.

    Two TinyJit-captured calls, each compiled once:
    - step: one token at a bound-Variable position (replayed at every position, as in tinygrad's llama example);
    - prefill: the whole window, right-padded to block_size, from position 0. It runs for a new prompt, after the
      window shifts, or when the window is not the cached one plus one token (a chat turn). The padding's keys
      and values land past the real tokens, where each later step overwrites its position before reading it.
    """

    def __init__(self, model):
        self.model, self.block_size = model, model.config.block_size
        self.device = _model_device(model)
        self.cached: list[int] = []  # tokens whose keys/values sit in the cache at positions 0..len-1
        self.model.reset_cache(batch_size=1)  # batch 1 from now on: the cache buffers (captured below) stay the same
        self._step = TinyJit(lambda idx, pos: self.model.forward_cached(idx, pos)[:, -1, :].realize())
        self._prefill = TinyJit(lambda idx: self.model.forward_cached(idx, 0).realize())
        self._token, self._window = JitInput(self.device), JitInput(self.device)

    def next_logits(self, window: Sequence[int]) -> np.ndarray:
        window = list(window)
        n = len(window)
        extends_cache = n > 1 and len(self.cached) == n - 1 and self.cached == window[:-1]
        self.cached = []  # until the call below finishes (an interrupted prefill leaves the cache unknown)
        if extends_cache:
            pos = UOp.variable("start_pos", 0, self.block_size - 1).bind(n - 1)
            logits = to_numpy(self._step(self._token(np.array([[window[-1]]], dtype=np.int32)), pos))[0]
        else:
            padded = np.zeros((1, self.block_size), dtype=np.int32)
            padded[0, :n] = window
            logits = to_numpy(self._prefill(self._window(padded)))[0, n - 1]
        self.cached = window
        return logits


_CACHED: "weakref.WeakKeyDictionary[object, CachedForward]" = weakref.WeakKeyDictionary()
_UNCACHED: "weakref.WeakKeyDictionary[object, FullForward]" = weakref.WeakKeyDictionary()


def forward_for(model, use_cache: bool):
    """The (reused) cached or uncached forward of a model: compiled kernels and JIT captures survive calls."""
    table, kind = (_CACHED, CachedForward) if use_cache else (_UNCACHED, FullForward)
    if model not in table:
        table[model] = kind(model)
    return table[model]


def encode_prompt(tokenizer, prompt: str | Sequence[int], allow_special: bool = False,
                  bos: bool | None = None) -> list[int]:
    """Prompt -> token ids the model starts from.

    Text: special-token text is plain text unless allow_special. bos: put the `<|endoftext|>` separator first,
    so the prompt reads as the start of a new document (a model trained on one name per line then completes a
    name); None = when the vocabulary has the separator. Token ids are used as given. An empty prompt starts from
    the separator (or a newline when the vocabulary has none).
    """
    separator = tokenizer.special_tokens.get(SEPARATOR)
    if isinstance(prompt, str):
        ids = tokenizer.encode(prompt, allowed_special="all") if allow_special else tokenizer.encode_ordinary(prompt)
        if separator is not None and bos is not False and ids and ids[0] != separator:
            ids = [separator, *ids]
    else:
        ids = [int(t) for t in prompt]
    if ids:
        return list(ids)
    if separator is not None:
        return [separator]
    return list(tokenizer.encode_ordinary("\n"))  # no separator in this vocabulary: start a new line


def run_starts_documents(run_dir) -> bool | None:
    """Whether a run was trained on documents framed by the separator (config.json's data.docs); None if unknown.

    Pass it as generate's `bos`: prompts of a docs-mode model start a new document, other models' do not.
    """
    from tinygpt.checkpoint import read_run_config
    docs = read_run_config(run_dir)[2].get("docs")
    return docs if isinstance(docs, bool) else None


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


def parse_escapes(text: str) -> str:
    """Turn the escapes \\n, \\t, \\r and \\\\ typed on a command line into the characters (for stop strings)."""
    return re.sub(r"\\([ntr\\])", lambda m: _ESCAPES[m.group(1)], text)


def special_text_in(tokenizer, prompt: str) -> list[str]:
    """The special tokens whose text appears in `prompt` (to warn that they are read as plain text)."""
    return [name for name in tokenizer.special_tokens if name in prompt]


class Generation(Iterator[str]):
    """An iterator of text pieces that also exposes `tokens` (the new ids) and `stats` (GenerationStats)."""

    def __init__(self, pieces: Iterator[str], stats: GenerationStats, tokens: list[int]):
        self._pieces, self.stats, self.tokens = pieces, stats, tokens

    def __iter__(self) -> "Generation":
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    @property
    def text(self) -> str:
        """Consume the rest and return all of the generated text."""
        return "".join(self)


@dataclass
class _StopMatcher:
    """Emit text as it comes, but hold back any tail that might be the start of a stop string."""
    stops: tuple[str, ...]
    pending: str = ""
    stopped: bool = field(default=False)

    def push(self, text: str) -> str:
        self.pending += text
        # (end, start) of each stop string's first occurrence: the text ends where a stop string first completes,
        # cut before the earliest-starting one completed there (so the result does not depend on token boundaries)
        hits = [(i + len(s), i) for s, i in ((s, self.pending.find(s)) for s in self.stops) if i >= 0]
        if hits:
            end = min(e for e, _ in hits)
            self.stopped = True
            out, self.pending = self.pending[:min(i for e, i in hits if e == end)], ""
            return out
        hold = max((k for s in self.stops for k in range(1, len(s)) if self.pending.endswith(s[:k])), default=0)
        out, self.pending = self.pending[:len(self.pending) - hold], self.pending[len(self.pending) - hold:]
        return out


def generate(model, tokenizer, prompt: str | Sequence[int] = "", max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
             temperature: float = DEFAULT_TEMPERATURE, top_k: int = DEFAULT_TOP_K, top_p: float = DEFAULT_TOP_P,
             repetition_penalty: float = DEFAULT_REPETITION_PENALTY,
             seed: int | np.random.Generator | None = None, stop: Sequence[str] = (), use_cache: bool = True,
             allow_special: bool = False, stop_at_separator: bool = True, bos: bool | None = None,
             context_shift: int | None = None) -> Generation:
    """Continue `prompt` with up to `max_new_tokens` tokens, yielding the new text in pieces as it is produced.

    prompt: text (special-token text is plain text unless allow_special) or token ids; empty starts from the
    `<|endoftext|>` separator when the vocabulary has it. bos: start text prompts with the separator (a new
    document; None = when the vocabulary has it, see `run_starts_documents`). temperature 0 is greedy; top_k 0 and top_p 1 are off.
    seed: an int (same seed, same device -> same text), a numpy Generator to continue, or None for fresh entropy.
    stop: strings that end generation (not included in the output). stop_at_separator: the model producing the
    separator token ends the document. use_cache: the KV cache (default); False runs the full window each step
    and gives the same tokens. The returned iterator has `.tokens` (new ids) and `.stats` (timings).
    """
    validate_sampling(temperature, top_k, top_p, repetition_penalty)
    if int(max_new_tokens) != max_new_tokens or max_new_tokens < 0:
        raise TinyGPTError(f"max-new-tokens must be an integer >= 0, got {max_new_tokens}")
    stop = tuple(s for s in ([stop] if isinstance(stop, str) else stop))
    if any(s == "" for s in stop):
        raise TinyGPTError("a stop string must not be empty")
    block_size = model.config.block_size
    context_shift = max(1, block_size // 4) if context_shift is None else int(context_shift)
    if not 1 <= context_shift <= block_size:
        raise TinyGPTError(f"context shift must be between 1 and block_size ({block_size}), got {context_shift}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    ids = encode_prompt(tokenizer, prompt, allow_special, bos)
    if max(ids) >= model.config.vocab_size:
        raise TinyGPTError(f"token id {max(ids)} is outside the model's vocabulary of {model.config.vocab_size}: "
                           f"the tokenizer does not belong to this model")
    separator = tokenizer.special_tokens.get(SEPARATOR) if stop_at_separator else None
    n_choices = min(model.config.vocab_size, tokenizer.vocab_size)  # a padded embedding's extra rows never win
    stats, new_tokens = GenerationStats(prompt_tokens=len(ids)), []
    forward = forward_for(model, use_cache)

    def pieces() -> Iterator[str]:
        start_time = time.perf_counter()  # the clock starts when the first piece is asked for
        stream, matcher = Utf8Stream(), _StopMatcher(stop)
        stats.stop_reason = "length"
        try:
            for _ in range(max_new_tokens):
                window = ids[context_start(len(ids), block_size, context_shift):]
                token = sample_next(forward.next_logits(window)[:n_choices], rng, temperature, top_k, top_p,
                                    repetition_penalty, context=window)
                if not new_tokens:
                    stats.first_token_s = time.perf_counter() - start_time
                if token == separator:
                    stats.stop_reason = "separator"
                    break
                ids.append(token)
                new_tokens.append(token)
                stats.new_tokens = len(new_tokens)
                piece = matcher.push(stream.feed(tokenizer.decode_bytes([token])))
                if piece:
                    yield piece
                if matcher.stopped:
                    stats.stop_reason = "stop"
                    return
            piece = matcher.push(stream.flush())
            piece += "" if matcher.stopped else matcher.pending
            if matcher.stopped:
                stats.stop_reason = "stop"
            if piece:
                yield piece
        finally:
            stats.total_s = time.perf_counter() - start_time

    return Generation(pieces(), stats, new_tokens)
