"""BPE training: chunk counting (streaming, specials, surrogates) and merges equal to a naive trainer and rustbpe."""
import contextlib
import os
import subprocess
import sys
from collections import Counter

import pytest
import regex
from hypothesis import given, settings, strategies as st

import bpe.pretokenize
import bpe.train
from bpe.patterns import GPT2_PATTERN, GPT4_PATTERN, ascii_regex, resolve_pattern
from bpe.pretokenize import count_chunks, split_chunks
from bpe.train import train_merges
from conftest import REPO, shared_file
from naive_bpe import naive_train_merges

SAMPLE = """First Citizen:
Before we proceed any further, hear me speak.  Aaaa aaa aa a!!  We'll   see; they're 1234567 numbers\t\r\n
  indented\n\n\nabababab abab ab  a  ...---...  你好世界，你好！ 😀😀 éé
"""


@pytest.fixture(params=["python", "bulk", "default"])
def merge_path(request, monkeypatch):
    """Run a test with every merge done chunk by chunk, with every merge done in bulk, and with the default mix."""
    threshold = {"python": 10**9, "bulk": 1, "default": bpe.train.BULK_CHUNKS}[request.param]
    monkeypatch.setattr(bpe.train, "BULK_CHUNKS", threshold)
    return request.param


@contextlib.contextmanager
def pieces_of(chars: int):
    """Let count_chunks split the text `chars` characters at a time."""
    old, bpe.pretokenize.PIECE_CHARS = bpe.pretokenize.PIECE_CHARS, chars
    try:
        yield
    finally:
        bpe.pretokenize.PIECE_CHARS = old


def whole_text_counts(text: str, pattern: str) -> dict[bytes, int]:
    """Chunk counts of the text split in one go, the reference for the streaming counter."""
    return {chunk.encode("utf-8"): n for chunk, n in Counter(regex.findall(pattern, text)).items()}


# ---------------------------------------------------------------- pre-splitting

def test_split_chunks_is_the_regex_split():
    compiled = regex.compile(GPT4_PATTERN)
    assert split_chunks("Hello world's  end\n", compiled) == ["Hello", " world", "'s", " ", " end", "\n"]
    assert split_chunks("a1b", regex.compile(r"(\p{L})")) == ["a", "b"]  # groups do not change what is returned
    fast = ascii_regex(GPT4_PATTERN)  # pure-ASCII text goes through `re`; other text through `regex`
    for text in ("Hello world's  end\n", "Héllo wörld's  end\n"):
        assert split_chunks(text, compiled, fast) == regex.findall(GPT4_PATTERN, text)


def test_count_chunks_counts_utf8_chunks():
    assert count_chunks(["the cat the cat 你好"], "gpt4") == {b"the": 1, b" cat": 2, b" the": 1, " 你好".encode(): 1}


FRAGMENTS = ["'ll", "'ve", "'re", "'s", "'", "  ", "\n\n", " \n", "\r\n", "\t", "ab", "L", "123456", "!!", ".",
             "你好", "😀", "é"]


@pytest.mark.parametrize("blocks", [["we'l", "l go"], ["they'r", "e"], ["a  ", " b"], ["x\n ", "\n y"], ["12", "345"]])
def test_streaming_counts_at_tricky_cuts(blocks):
    with pieces_of(1):
        assert count_chunks(blocks, "gpt4") == whole_text_counts("".join(blocks), GPT4_PATTERN)


@settings(max_examples=150, deadline=None)
@given(text=st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join),
       cuts=st.lists(st.integers(0, 80), max_size=8),
       pattern=st.sampled_from([GPT4_PATTERN, GPT2_PATTERN, "o200k"]),
       piece_chars=st.sampled_from([1, 2, 5, 17, 1 << 16]))
def test_streaming_counts_equal_whole_text_counts(text, cuts, pattern, piece_chars):
    bounds = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    blocks = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    expected = whole_text_counts(text, resolve_pattern(pattern))
    with pieces_of(piece_chars):  # blocks are regrouped into pieces of this size: small ones cut the text more
        assert count_chunks(blocks, pattern) == expected
        assert count_chunks(iter(text), pattern) == expected  # one character per block


def test_streaming_counts_on_a_real_corpus_cut_into_blocks():
    text = shared_file("tinyshakespeare.txt").read_text(encoding="utf-8")[:60_000]
    blocks = [text[i:i + 777] for i in range(0, len(text), 777)]
    for piece_chars in (100, 1000, 1 << 16):
        with pieces_of(piece_chars):
            assert count_chunks(blocks, "gpt4") == whole_text_counts(text, GPT4_PATTERN)


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("ab <|>endoftx\n ")), max_size=60),
       cuts=st.lists(st.integers(0, 60), max_size=6))
def test_special_tokens_are_cut_out_even_across_blocks(text, cuts):
    specials = ["<|endoftext|>", "<|x|>"]
    text = text.replace("e", "<|endoftext|>", 1).replace("x", "<|x|>", 1)
    bounds = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    blocks = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    expected = Counter()
    for part in regex.split(r"<\|endoftext\|>|<\|x\|>", text):
        expected.update(chunk.encode() for chunk in regex.findall(GPT4_PATTERN, part))
    with pieces_of(3):
        assert count_chunks(blocks, "gpt4", special_tokens=specials) == dict(expected)


def test_lone_surrogates_become_replacement_characters():
    with pieces_of(1):  # a pair cut by the block boundary stays whole
        counts = count_chunks(["a\ud800b", " \ud83d", "\ude00"], "gpt4")
    assert counts == whole_text_counts("a\ufffdb 😀", GPT4_PATTERN)


def test_bad_blocks_and_patterns_give_one_line_errors():
    from bpe.errors import TokenizerError
    with pytest.raises(TokenizerError, match="text blocks must be str, got bytes: decode bytes to text first"):
        count_chunks([b"abc"], "gpt4")
    with pytest.raises(TokenizerError, match="invalid pre-split regex"):
        count_chunks(["abc"], "(unclosed")


# ---------------------------------------------------------------- merges

def test_left_to_right_non_overlapping_merges(merge_path):
    assert train_merges({b"aaa": 1}, 10) == [(97, 97), (256, 97)]
    assert train_merges({b"aaaa": 1}, 10) == [(97, 97), (256, 256)]


def test_ties_go_to_the_smallest_pair_and_training_stops_when_no_pair_is_left(merge_path):
    assert train_merges({b"ba": 1, b"ab": 1, b"cd": 1}, 10) == [(97, 98), (98, 97), (99, 100)]
    assert train_merges({b"x": 5, b"": 3}, 10) == []
    assert train_merges({b"ab": 0}, 10) == []
    assert train_merges({b"abc": 2}, 0) == []


@pytest.mark.parametrize("text", [SAMPLE, SAMPLE * 3 + "zzzz" * 50, "ab" * 300 + " " + "a" * 301, "x" * 1000])
def test_merges_equal_the_naive_trainer(text, merge_path):
    counts = count_chunks([text], "gpt4")
    assert train_merges(counts, 400) == naive_train_merges(counts, 400)


@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("aab bcc你好 é\n")), max_size=200),
       num_merges=st.integers(0, 60), bulk=st.sampled_from([1, 3, 10**9]))
def test_merges_equal_the_naive_trainer_on_generated_text(text, num_merges, bulk):
    counts = count_chunks([text], "gpt4")
    old, bpe.train.BULK_CHUNKS = bpe.train.BULK_CHUNKS, bulk
    try:
        assert train_merges(counts, num_merges) == naive_train_merges(counts, num_merges)
    finally:
        bpe.train.BULK_CHUNKS = old


def test_one_repeated_character(merge_path):
    counts = count_chunks(["a" * 200_000], "gpt4")
    assert counts == {b"a" * 200_000: 1}
    merges = train_merges(counts, 100)
    assert merges == naive_train_merges(counts, 100)
    # 200000 = 0b110000110101000000: doubling merges, then the leftover tokens of each size join up
    assert merges[:17] == [(97, 97)] + [(256 + k, 256 + k) for k in range(16)]


def test_progress_is_reported():
    calls = []
    merges = train_merges(count_chunks([SAMPLE], "gpt4"), 50, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (len(merges), 50) and all(total == 50 for _, total in calls) and len(calls) >= 2


def test_training_does_not_depend_on_the_hash_seed():
    script = ("from bpe.pretokenize import count_chunks; from bpe.train import train_merges; import sys;"
              "text = open(sys.argv[1], encoding='utf-8').read();"
              "print(train_merges(count_chunks([text], 'gpt4'), 300))")
    outputs = set()
    for seed in ("0", "1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(REPO))
        result = subprocess.run([sys.executable, "-c", script, __file__], env=env, capture_output=True, text=True,
                                check=True)
        outputs.add(result.stdout)
    assert len(outputs) == 1


@pytest.mark.parametrize("corpus", ["tinyshakespeare.txt", "shuihu.txt"])
def test_merges_equal_rustbpe(corpus):
    rustbpe = pytest.importorskip("rustbpe")
    text = shared_file(corpus).read_text(encoding="utf-8")[:100_000]
    vocab_size = 2000
    reference = rustbpe.Tokenizer()
    reference.train_from_iterator(iter([text]), vocab_size, pattern=GPT4_PATTERN)
    expected = [token for token, _ in sorted(reference.get_mergeable_ranks(), key=lambda item: item[1])]
    token_bytes = [bytes([i]) for i in range(256)]
    for left, right in train_merges(count_chunks([text], "gpt4"), vocab_size - 256):
        token_bytes.append(token_bytes[left] + token_bytes[right])
    assert token_bytes == expected
