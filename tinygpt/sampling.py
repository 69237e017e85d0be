"""Choosing the next token from a vector of logits: the filters every LM sampler uses, in plain numpy.

    logits --repetition penalty--> --temperature--> --top-k--> --top-p--> softmax --> draw one id

The order is Hugging Face's: the repetition penalty acts on raw logits, temperature rescales them, then top-k and
top-p remove the unlikely tail. Temperature 0 means greedy decoding (argmax after the repetition penalty).
Each filter takes and returns a 1-D float32 array; removed tokens get -inf. Everything here is deterministic
given the `numpy.random.Generator`, so the same seed gives the same tokens.
"""
from collections.abc import Iterable

import numpy as np

from tinygpt.errors import TinyGPTError


def validate_sampling(temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                      repetition_penalty: float = 1.0) -> None:
    """Raise TinyGPTError (one line) for a sampling setting outside its range."""
    if not np.isfinite(temperature) or temperature < 0:
        raise TinyGPTError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if isinstance(top_k, bool) or int(top_k) != top_k or top_k < 0:
        raise TinyGPTError(f"top-k must be an integer >= 0 (0 = off), got {top_k}")
    if not 0.0 < top_p <= 1.0:
        raise TinyGPTError(f"top-p must be in (0, 1] (1 = off), got {top_p}")
    if not np.isfinite(repetition_penalty) or repetition_penalty <= 0:
        raise TinyGPTError(f"repetition penalty must be > 0 (1 = off), got {repetition_penalty}")


def apply_repetition_penalty(logits: np.ndarray, context: Iterable[int], penalty: float) -> np.ndarray:
    """Make tokens already in `context` less likely (CTRL / Hugging Face rule, penalty > 1 penalises).

    A positive logit is divided by the penalty and a negative one multiplied, so the token always moves towards
    "less likely" whatever its sign. Each distinct token is penalised once, however often it appeared.
    """
    logits = np.array(logits, dtype=np.float32)
    if penalty == 1.0:
        return logits
    seen = np.unique(np.fromiter(context, dtype=np.int64))
    if seen.size == 0:
        return logits
    chosen = logits[seen]
    logits[seen] = np.where(chosen > 0, chosen / penalty, chosen * penalty).astype(np.float32)
    return logits


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Divide logits by the temperature (> 0): below 1 sharpens the distribution, above 1 flattens it."""
    return (np.asarray(logits, dtype=np.float32) / np.float32(temperature)).astype(np.float32)


def _order_by_likelihood(logits: np.ndarray) -> np.ndarray:
    """Token ids from most to least likely; ties go to the smaller id, so filters are deterministic."""
    return np.argsort(-logits, kind="stable")


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """Keep exactly the k most likely tokens (ties broken by the smaller id); k = 0 or k >= vocab keeps all."""
    logits = np.array(logits, dtype=np.float32)
    if k <= 0 or k >= logits.size:
        return logits
    filtered = np.full_like(logits, -np.inf)
    keep = _order_by_likelihood(logits)[:k]
    filtered[keep] = logits[keep]
    return filtered


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits (float32; -inf logits get probability 0)."""
    logits = np.asarray(logits, dtype=np.float32)
    exp = np.exp(logits - logits.max())
    return (exp / exp.sum()).astype(np.float32)


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    """Nucleus sampling: keep the smallest set of most likely tokens whose total probability reaches p.

    A token is kept when the probability of all more likely tokens is still below p, so the most likely token is
    always kept and p = 1 keeps every token with non-zero probability.
    """
    logits = np.array(logits, dtype=np.float32)
    if p >= 1.0:
        return logits
    order = _order_by_likelihood(logits)
    probs = softmax(logits)[order].astype(np.float64)  # sums in float64 so rounding cannot add a token
    mass_before = np.cumsum(probs) - probs
    drop = order[mass_before >= p]
    logits[drop] = -np.inf
    return logits


def filter_logits(logits: np.ndarray, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                  repetition_penalty: float = 1.0, context: Iterable[int] = ()) -> np.ndarray:
    """All filters in order (temperature must be > 0 here): the logits `sample_next` draws from."""
    logits = apply_repetition_penalty(logits, context, repetition_penalty)
    logits = apply_temperature(logits, temperature)
    logits = top_k_filter(logits, top_k)
    return top_p_filter(logits, top_p)


def sample_next(logits, rng: np.random.Generator, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                repetition_penalty: float = 1.0, context: Iterable[int] = ()) -> int:
    """The next token id drawn from 1-D `logits` after the filters; temperature 0 returns the argmax.

    `context` holds the token ids the repetition penalty applies to (the prompt and the tokens generated so far).
    One uniform number is drawn from `rng` per sampled token (none when greedy).
    """
    validate_sampling(temperature, top_k, top_p, repetition_penalty)
    logits = np.asarray(logits, dtype=np.float32).reshape(-1)
    if temperature == 0:
        return int(np.argmax(apply_repetition_penalty(logits, context, repetition_penalty)))
    probs = softmax(filter_logits(logits, temperature, top_k, top_p, repetition_penalty, context))
    cumulative = np.cumsum(probs, dtype=np.float64)
    # inverse-CDF draw: side="right" skips tokens with zero probability (their cumulative sum does not grow)
    token = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return min(token, int(np.flatnonzero(probs)[-1]))
