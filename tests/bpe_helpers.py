"""Shared helpers for the bpe tests: a small trained tokenizer, cl100k from the shared corpora, tiktoken oracles."""
from functools import lru_cache

import pytest

import bpe
from conftest import shared_file

CL100K_SPECIALS = {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                   "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}

# A small mixed corpus (English, Chinese, digits, emoji, whitespace runs): enough to learn a few hundred merges.
SAMPLE_TEXT = (
    "The quick brown fox jumps over the lazy dog. It's 2024; we've 1234567 numbers and   spaces.\n"
    "Hello, world! hello WORLD... <html> </html> {\"key\": [1, 2, 3]}\n\n\t tabs\ttoo\r\n"
    "宋江道：「兄弟，你且住。」林冲听了，便道：「小人自有分晓。」 水浒传 第一回 张天师祈禳瘟疫 洪太尉误走妖魔\n"
    "emoji 😀😀 🎉 café naïve Ωμέγα привет мир\n"
) * 20


@lru_cache(maxsize=None)
def small_tokenizer(vocab_size: int = 400, specials: tuple[str, ...] = ("<|endoftext|>", "<|pad|>")) -> bpe.Tokenizer:
    """A tokenizer trained on SAMPLE_TEXT (cached: tests must not modify it)."""
    return bpe.Tokenizer.train(SAMPLE_TEXT, vocab_size, special_tokens=specials)


@lru_cache(maxsize=None)
def _cl100k() -> bpe.Tokenizer:
    return bpe.Tokenizer.from_tiktoken(shared_file("cl100k_base.tiktoken"), special_tokens=CL100K_SPECIALS)


def cl100k() -> bpe.Tokenizer:
    """cl100k_base loaded from the shared corpora (skips when absent)."""
    shared_file("cl100k_base.tiktoken")
    return _cl100k()


@lru_cache(maxsize=None)
def _tiktoken_cl100k():
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import load_tiktoken_bpe
    ranks = load_tiktoken_bpe(str(shared_file("cl100k_base.tiktoken")))
    return tiktoken.Encoding("cl100k_local", pat_str=bpe.PATTERNS["cl100k"], mergeable_ranks=ranks,
                             special_tokens=CL100K_SPECIALS)


def tiktoken_cl100k():
    """tiktoken's Encoding for the same cl100k ranks file (skips without tiktoken or the file)."""
    pytest.importorskip("tiktoken")
    shared_file("cl100k_base.tiktoken")
    return _tiktoken_cl100k()


def tiktoken_for(tok: bpe.Tokenizer):
    """A tiktoken Encoding with the same ranks, pattern and special tokens as `tok`."""
    tiktoken = pytest.importorskip("tiktoken")
    ranks = {tok.token_bytes(i): i for i in range(256 + len(tok.merges))}
    return tiktoken.Encoding("ours", pat_str=tok.pattern, mergeable_ranks=ranks, special_tokens=tok.special_tokens)
