"""The Tokenizer's contract: ids layout, training errors, tiktoken's special-token rules, round trips."""
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

import bpe
from bpe.encoder import ChunkEncoder
from bpe_helpers import SAMPLE_TEXT, small_tokenizer


def test_ids_layout_bytes_then_merges_then_specials():
    tok = small_tokenizer()
    assert tok.vocab_size == 400
    assert len(tok.merges) == 400 - 256 - 2
    assert tok.special_tokens == {"<|endoftext|>": 398, "<|pad|>": 399}
    assert [tok.token_bytes(i) for i in range(256)] == [bytes([i]) for i in range(256)]
    for i, (left, right) in enumerate(tok.merges):
        assert tok.token_bytes(256 + i) == tok.token_bytes(left) + tok.token_bytes(right)
    assert tok.token_bytes(398) == b"<|endoftext|>"
    assert tok.pattern == bpe.PATTERNS["gpt4"]


def test_train_accepts_an_iterable_of_blocks_like_one_string():
    blocks = [SAMPLE_TEXT[i:i + 777] for i in range(0, len(SAMPLE_TEXT), 777)]
    assert bpe.Tokenizer.train(iter(blocks), 400).merges == bpe.Tokenizer.train(SAMPLE_TEXT, 400).merges


def test_train_errors():
    with pytest.raises(bpe.TokenizerError, match=r"^vocab_size 257 is too small: it must be at least 258 "
                                                 r"\(256 bytes \+ 2 special tokens\)$"):
        bpe.Tokenizer.train("hello", 257, special_tokens=["<a>", "<b>"])
    with pytest.raises(bpe.TokenizerError, match=r"^the training corpus is empty: give it some text$"):
        bpe.Tokenizer.train("", 300)
    with pytest.raises(bpe.TokenizerError, match=r"^the training corpus is empty"):
        bpe.Tokenizer.train(iter([]), 300)
    # "ab ab ab" has the chunks "ab" and " ab": merges a+b, " "+a... at most 3 merges
    with pytest.raises(bpe.TokenizerError) as e:
        bpe.Tokenizer.train("ab ab ab", 300)
    assert str(e.value).startswith("vocab_size 300 is more than this corpus can make: it supports only ")
    n = int(str(e.value).split("supports only ")[1].split()[0])
    assert str(e.value).endswith(f"so ask for vocab_size {256 + n} or less")
    assert len(bpe.Tokenizer.train("ab ab ab", 256 + n).merges) == n
    with pytest.raises(bpe.TokenizerError, match="not bytes"):
        bpe.Tokenizer.train(b"bytes", 300)


def test_vocab_size_exactly_bytes_and_specials_is_allowed():
    tok = bpe.Tokenizer.train("hello", 257, special_tokens=["<s>"])
    assert tok.merges == [] and tok.vocab_size == 257
    assert tok.encode("hello<s>", allowed_special="all") == [*b"hello", 256]


def test_special_tokens_follow_tiktoken_rules():
    tok = small_tokenizer()
    text = "hi <|endoftext|> there <|pad|>"
    with pytest.raises(ValueError, match=r"^Encountered text corresponding to disallowed special token "
                                         r"'<\|endoftext\|>'\. If you want this text to be encoded as a special "
                                         r"token, pass it to `allowed_special`"):
        tok.encode(text)
    with pytest.raises(bpe.TokenizerError, match="disallowed special token '<\\|pad\\|>'"):
        tok.encode(text, allowed_special={"<|endoftext|>"})
    ids = tok.encode(text, allowed_special="all")
    assert ids.count(398) == 1 and ids.count(399) == 1
    assert ids == tok.encode(text, allowed_special={"<|endoftext|>", "<|pad|>"})
    assert tok.decode(ids) == text
    # one allowed, the other plain text
    mixed = tok.encode(text, allowed_special={"<|endoftext|>"}, disallowed_special=())
    assert 398 in mixed and 399 not in mixed and tok.decode(mixed) == text
    # disallowed_special=() : every special string is ordinary text, like encode_ordinary
    assert tok.encode(text, disallowed_special=()) == tok.encode_ordinary(text)
    assert 398 not in tok.encode_ordinary(text)
    # a custom disallowed set raises even for a string that is not special
    with pytest.raises(ValueError, match="disallowed special token 'there'"):
        tok.encode(text, allowed_special="all", disallowed_special={"there"})
    # text without special strings encodes the same either way
    assert tok.encode("plain text") == tok.encode_ordinary("plain text")


def test_encode_batch_matches_encode():
    tok = small_tokenizer()
    texts = ["a <|endoftext|> b", "", "宋江道", SAMPLE_TEXT[:500]]
    assert tok.encode_batch(texts, allowed_special="all") == [tok.encode(t, allowed_special="all") for t in texts]
    assert tok.encode_batch(texts[1:]) == [tok.encode(t) for t in texts[1:]]
    with pytest.raises(ValueError, match="disallowed special token"):
        tok.encode_batch(texts)


def test_lone_surrogates_become_replacement_character():
    tok = small_tokenizer()
    assert tok.decode(tok.encode("a\ud800b")) == "a\ufffdb"
    assert tok.encode("a\ud800b") == tok.encode("a\ufffdb")
    assert tok.decode(tok.encode("\ud83d\ude00")) == "😀"  # a surrogate pair joins, as in tiktoken


def test_decode_never_raises_on_cut_utf8_and_decode_bytes_is_exact():
    tok = small_tokenizer()
    ids = tok.encode("宋江")
    data = tok.decode_bytes(ids)
    assert data == "宋江".encode()
    cut = [byte for byte in data[:4]]  # raw byte ids: 宋 plus the first byte of 江
    assert tok.decode(cut) == "宋\ufffd"
    with pytest.raises(bpe.TokenizerError, match=r"^token id 400 is not in this tokenizer \(ids go from 0 to 399\)$"):
        tok.decode([1, 400])
    with pytest.raises(bpe.TokenizerError, match="token id -1 is not in this tokenizer"):
        tok.decode([-1] * 1000)  # the numpy path too
    with pytest.raises(bpe.TokenizerError, match="token id 700"):
        tok.token_bytes(700)


def test_encode_rejects_non_text():
    with pytest.raises(bpe.TokenizerError, match="encode expects a str, got bytes"):
        small_tokenizer().encode(b"abc")


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_round_trip_of_any_text(text):
    tok = small_tokenizer()
    fixed = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    assert tok.decode(tok.encode_ordinary(text)) == fixed
    assert tok.decode(tok.encode(text, allowed_special="all")) == fixed


@settings(max_examples=100, deadline=None)
@given(st.binary())
def test_round_trip_of_any_bytes(data):
    tok = small_tokenizer()
    text = data.decode("utf-8", errors="replace")
    assert tok.decode_bytes(tok.encode_ordinary(text)) == text.encode("utf-8")
    # every byte sequence is decodable from its byte ids too
    assert tok.decode_bytes(list(data)) == data


def _encoders():
    tok = small_tokenizer()
    return tok, tok._encoder


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=30))
def test_numpy_batch_merge_equals_the_plain_loop(chunks):
    """The vectorised merge (long or many new chunks) gives exactly the minbpe-style loop's ids."""
    tok, enc = _encoders()
    datas = [c.encode("utf-8", "replace") for c in chunks]
    import numpy as np
    lens = np.array([len(d) for d in datas])
    raw = np.frombuffer(b"".join(datas), dtype=np.uint8)
    tokens, counts = enc.merge_numpy(raw, np.cumsum(lens) - lens)
    ids = tokens.tolist()
    got, at = [], 0
    for n in counts.tolist():
        got.append(ids[at:at + n])
        at += n
    assert got == [enc.merge_python(d) for d in datas]


def test_long_and_many_chunks_take_the_numpy_paths_and_agree():
    tok = small_tokenizer()
    fresh = bpe.Tokenizer(tok.merges, tok.pattern)
    text = SAMPLE_TEXT * 3  # > 4096 chunks, mostly repeated: cache path with a numpy batch
    plain = ChunkEncoder(tok.merges, list(range(256)), [tok.token_bytes(i) for i in range(256 + len(tok.merges))])
    expected = []
    for chunk in fresh._split(text):
        expected += plain.merge_python(chunk.encode())
    assert fresh.encode_ordinary(text) == expected
    fresh._encoder.cache.clear()
    assert fresh._encoder.encode_text_numpy(text, fresh._split(text)) == expected


def test_import_bpe_does_not_import_tinygrad():
    code = "import sys, bpe; bpe.Tokenizer.train('hello world', 260); print('tinygrad' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_whole_text_numpy_path_equals_the_plain_loop(text):
    """The path for long, mostly-new text (code points, precomputed character merges, walls) is exact."""
    tok = small_tokenizer()
    enc = tok._encoder
    chunks = tok._split(text)
    expected = []
    for chunk in chunks:
        whole = enc.whole_token.get(chunk)
        expected += [whole] if whole is not None else enc.merge_python(chunk.encode())
    assert enc.encode_text_numpy(text, chunks) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=60), st.sampled_from(["gpt2", "gpt4", "o200k"]))
def test_ascii_fast_split_equals_the_unicode_pattern(text, name):
    import regex
    from bpe.patterns import ascii_regex
    assert ascii_regex(bpe.PATTERNS[name]).findall(text) == regex.compile(bpe.PATTERNS[name]).findall(text)


def test_custom_pattern_with_empty_matches_and_groups():
    """A custom regex may match "" or have groups: text it does not match is dropped, as in training."""
    import regex
    for pattern in (r"\w*", r"(\w+)|\s+|."):
        tok = bpe.Tokenizer.train(SAMPLE_TEXT, 300, pattern=pattern)
        text = SAMPLE_TEXT * 30  # long enough for the numpy paths
        kept = "".join(m.group() for m in regex.finditer(pattern, text))
        ids = tok.encode_ordinary(text)
        assert tok.decode(ids) == kept
        assert ids == [i for chunk in tok._split(text) for i in tok.encode_ordinary(chunk)]


def test_a_full_cache_restarts_without_changing_ids(monkeypatch):
    import bpe.encoder
    tok = small_tokenizer()
    expected = [tok.encode_ordinary(line) for line in SAMPLE_TEXT.splitlines()]
    fresh = bpe.Tokenizer(tok.merges, tok.pattern)
    monkeypatch.setattr(bpe.encoder, "CACHE_LIMIT", 8)
    assert [fresh.encode_ordinary(line) for line in SAMPLE_TEXT.splitlines()] == expected
    assert len(fresh._encoder.cache) <= 8 + max(len(fresh._split(line)) for line in SAMPLE_TEXT.splitlines())
    assert fresh.encode_batch(SAMPLE_TEXT.splitlines()) == expected


def test_encode_batch_mixes_cached_and_whole_text_paths():
    tok = small_tokenizer()
    big_chinese = "宋江道：「兄弟，你且住。」林冲听了" * 600  # > 4096 chunks, all repeated: cache path
    unique = "".join(chr(0x4E00 + (i * 7919) % 20000) + ("，" if i % 3 else " ") for i in range(9000))  # new chunks
    texts = ["short one", big_chinese, unique, ""]
    assert tok.encode_batch(texts) == [bpe.Tokenizer(tok.merges, tok.pattern).encode_ordinary(t) for t in texts]
