"""Long runs of one character encode correctly and in linear time (ratios, never absolute times)."""
import time

import pytest

from bpe_helpers import cl100k, small_tokenizer, tiktoken_cl100k

CHARACTERS = ["a", "0", " ", "\n", "^", "\U0001F600", "中"]


def _encode_time(tok, text: str) -> float:
    tok._encoder.cache.clear()
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        tok.encode_ordinary(text)
        best = min(best, time.process_time() - start)
    return best


@pytest.mark.parametrize("char", CHARACTERS)
def test_long_runs_round_trip_and_scale_linearly(char):
    tok = small_tokenizer()
    small, big = 50_000, 400_000
    text = char * big
    assert tok.decode(tok.encode_ordinary(text)) == text
    # 8x the input may take at most 8 * 2.5 = 20x the time (a quadratic encoder takes 64x)
    ratio = _encode_time(tok, char * big) / max(_encode_time(tok, char * small), 1e-3)
    assert ratio < 20, f"{char!r}: 8x longer input took {ratio:.1f}x longer"


@pytest.mark.parametrize("char", CHARACTERS)
def test_long_runs_match_tiktoken_with_cl100k(char):
    tok, enc = cl100k(), tiktoken_cl100k()
    for n in (1, 2, 3, 1000, 3001):  # tiktoken itself is quadratic on these: keep them short
        assert tok.encode_ordinary(char * n) == enc.encode_ordinary(char * n)


def test_cl100k_long_runs_scale_linearly():
    tok = cl100k()
    for char in CHARACTERS:
        ratio = _encode_time(tok, char * 400_000) / max(_encode_time(tok, char * 50_000), 1e-3)
        assert ratio < 20, f"{char!r}: 8x longer input took {ratio:.1f}x longer"
