"""Equality with tiktoken: cl100k_base from the shared corpora, and our own trained ranks run through tiktoken."""
import pytest
from hypothesis import given, settings, strategies as st

import bpe
from bpe_helpers import CL100K_SPECIALS, SAMPLE_TEXT, cl100k, small_tokenizer, tiktoken_cl100k, tiktoken_for
from conftest import shared_file


def test_cl100k_ids_are_tiktoken_ids():
    tok = cl100k()
    assert tok.vocab_size == 100277
    assert tok.special_tokens == CL100K_SPECIALS
    assert tok.byte_ids != list(range(256))  # cl100k's single bytes are not in byte order...
    assert tok.token_bytes(tok.byte_ids[ord("!")]) == b"!"  # ...and keep tiktoken's ids
    enc = tiktoken_cl100k()
    assert all(tok.token_bytes(i) == enc.decode_single_token_bytes(i) for i in range(0, 100256, 97))


@pytest.mark.parametrize("name", ["tinyshakespeare.txt", "shuihu.txt", "names.txt"])
def test_cl100k_encodes_the_shared_corpora_like_tiktoken(name):
    tok, enc = cl100k(), tiktoken_cl100k()
    text = shared_file(name).read_text(encoding="utf-8")[:400_000]
    ids = tok.encode_ordinary(text)
    assert ids == enc.encode_ordinary(text)
    assert tok.decode(ids) == text


def test_cl100k_special_tokens_like_tiktoken():
    tok, enc = cl100k(), tiktoken_cl100k()
    text = "<|fim_prefix|>def f():<|fim_suffix|> return 1<|fim_middle|><|endoftext|>hi<|endofprompt|>"
    assert tok.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")
    allowed = {"<|endoftext|>", "<|fim_prefix|>"}
    assert tok.encode(text, allowed_special=allowed, disallowed_special=()) == \
        enc.encode(text, allowed_special=allowed, disallowed_special=())
    assert tok.encode(text, disallowed_special=()) == enc.encode(text, disallowed_special=())
    with pytest.raises(ValueError):
        enc.encode(text)
    with pytest.raises(ValueError, match="disallowed special token '<\\|fim_prefix\\|>'"):
        tok.encode(text)


# Code points unassigned in Python's Unicode tables are left out: the `regex` module and tiktoken's Rust regex
# ship different Unicode versions, so a newly assigned letter may pre-split differently (not an encoder matter).
ASSIGNED = st.characters(blacklist_categories=("Cs", "Cn"))
SPECIAL_OR_TEXT = st.lists(st.one_of(st.text(ASSIGNED, max_size=30), st.sampled_from(list(CL100K_SPECIALS))),
                           max_size=8)


@settings(max_examples=200, deadline=None)
@given(SPECIAL_OR_TEXT)
def test_cl100k_equals_tiktoken_on_any_text(parts):
    tok, enc = cl100k(), tiktoken_cl100k()
    text = "".join(parts)
    assert tok.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")
    assert tok.encode_ordinary(text) == enc.encode_ordinary(text)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x4FFF), min_size=20), min_size=5))
def test_cl100k_equals_tiktoken_on_long_chinese_runs(parts):
    """Long unique Chinese chunks take the numpy path."""
    tok, enc = cl100k(), tiktoken_cl100k()
    text = "，".join(parts) * 3
    assert tok.encode_ordinary(text) == enc.encode_ordinary(text)


def test_trained_ranks_read_by_tiktoken_give_our_ids(tmp_path):
    from tiktoken.load import load_tiktoken_bpe
    tok = small_tokenizer()
    path = tmp_path / "small.tiktoken"
    tok.save_tiktoken(path)
    ranks = load_tiktoken_bpe(str(path))
    assert ranks == {tok.token_bytes(i): i for i in range(256 + len(tok.merges))}
    enc = tiktoken_for(tok)
    text = SAMPLE_TEXT + "<|endoftext|> unseen words: 夜深人静 zyxwv 12345"
    assert tok.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")
    # and back: the ranks file gives the same tokenizer
    again = bpe.Tokenizer.from_tiktoken(path, pattern="gpt4", special_tokens=tok.special_tokens)
    assert again.merges == tok.merges and again.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")


@pytest.mark.parametrize("name", ["tinyshakespeare.txt", "shuihu.txt"])
def test_vocab_trained_on_the_corpus_encodes_like_tiktoken(name):
    text = shared_file(name).read_text(encoding="utf-8")[:300_000]
    tok = bpe.Tokenizer.train(text, 1024)
    assert tok.encode_ordinary(text) == tiktoken_for(tok).encode_ordinary(text)


def test_merge_recovery_takes_the_last_two_pieces_of_bpe():
    """BPE on "abcd" merges "bc" first, so the token is "abc"+"d", not "ab"+"cd" (whose larger rank is smaller)."""
    from bpe.formats import _last_two_pieces
    ranks = {bytes([b]): b for b in range(256)}
    ranks.update({b"bc": 256, b"ab": 257, b"cd": 258, b"abc": 259, b"abcd": 260})
    assert _last_two_pieces(b"abcd", ranks, 260) == [b"abc", b"d"]


def test_bad_ranks_files(tmp_path):
    bad = tmp_path / "bad.tiktoken"
    bad.write_text("YQ== 0\nnot-base64! 1\n")
    with pytest.raises(bpe.TokenizerError, match=r"^.*bad.tiktoken is not a tiktoken ranks file: line 2 is not "
                                                 r"'<base64 token> <rank>': 'not-base64! 1'$"):
        bpe.Tokenizer.from_tiktoken(bad)
    bad.write_text("YQ== 0\nYg== 2\n")
    with pytest.raises(bpe.TokenizerError, match=r"the ranks must be 0\.\.1 without gaps or repeats$"):
        bpe.Tokenizer.from_tiktoken(bad)
    bad.write_text("YQ== 0\nYg== 1\n")
    with pytest.raises(bpe.TokenizerError, match=r"ranks 0\.\.255 must be the 256 single bytes"):
        bpe.Tokenizer.from_tiktoken(bad)
    with pytest.raises(bpe.TokenizerError, match=r"missing.tiktoken: no such file"):
        bpe.Tokenizer.from_tiktoken(tmp_path / "missing.tiktoken")


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=ASSIGNED, max_size=300))
def test_cl100k_whole_text_numpy_path_equals_tiktoken(text):
    tok, enc = cl100k(), tiktoken_cl100k()
    assert tok._encoder.encode_text_numpy(text, tok._split(text)) == enc.encode_ordinary(text)
