"""tinygpt.data: cached tokenization, train/val split on line boundaries, docs mode, batches, bits per byte."""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinygpt.data import DOC_SEPARATOR, TokenDataset, bits_per_byte, prepare_dataset, split_text
from tinygpt.errors import TinyGPTError

from conftest import shared_file


class ByteTokenizer:
    """A tiny stand-in with the bpe.Tokenizer surface the data pipeline uses: one id per byte, then specials."""

    def __init__(self, special_tokens=(DOC_SEPARATOR,), extra_vocab=0):
        self.special_tokens = {s: 256 + extra_vocab + i for i, s in enumerate(special_tokens)}
        self.vocab_size = 256 + extra_vocab + len(self.special_tokens)
        self.calls = 0

    def encode_ordinary(self, text):
        self.calls += 1
        return list(text.encode("utf-8"))

    def encode_batch(self, texts, allowed_special=set(), disallowed_special="all"):
        assert not allowed_special and disallowed_special == ()  # the data pipeline encodes plain text
        return [self.encode_ordinary(t) for t in texts]

    def decode_bytes(self, ids):
        inverse = {v: k.encode() for k, v in self.special_tokens.items()}
        return b"".join(inverse[i] if i in inverse else bytes([i]) for i in ids)

    def save(self, path):
        with open(path, "w") as f:
            json.dump({"specials": self.special_tokens, "vocab": self.vocab_size}, f)


def real_tokenizer(text, vocab_size=300):
    """A trained bpe.Tokenizer, or skip while the bpe library is not there yet."""
    bpe = pytest.importorskip("bpe")
    if not hasattr(bpe, "Tokenizer"):
        pytest.skip("bpe.Tokenizer not available yet")
    return bpe.Tokenizer.train(text, vocab_size=vocab_size, special_tokens=[DOC_SEPARATOR])


def as_bytes(tokens):
    """The bytes behind ByteTokenizer ids (no specials)."""
    return bytes(np.asarray(tokens).tolist())


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(200))


def test_split_is_on_a_line_boundary_and_covers_the_text(tmp_path):
    ds = prepare_dataset([write(tmp_path, "a.txt", TEXT)], ByteTokenizer(), cache_dir=tmp_path / "cache")
    train_text = as_bytes(ds.train).decode()
    val_text = as_bytes(ds.val[1:]).decode()
    assert train_text + val_text == TEXT
    assert train_text.endswith("\n") and val_text.startswith("line ")
    assert ds.val[0] == ds.train[-1]  # the last train token is the context of the first val target
    assert abs(len(val_text) / len(TEXT) - 0.1) < 0.01
    assert ds.train_bytes == len(train_text.encode()) and ds.val_bytes == len(val_text.encode())
    assert ds.n_targets("val") == len(val_text.encode())


def test_second_call_loads_the_token_file_from_cache(tmp_path):
    path = write(tmp_path, "a.txt", TEXT)
    tok = ByteTokenizer()
    first = prepare_dataset([path], tok, cache_dir=tmp_path / "cache")
    calls = tok.calls
    second = prepare_dataset([path], tok, cache_dir=tmp_path / "cache")
    assert not first.from_cache and second.from_cache
    assert tok.calls == calls  # nothing was tokenized again
    assert isinstance(second.tokens, np.memmap)
    np.testing.assert_array_equal(first.tokens, second.tokens)
    assert (second.train_bytes, second.val_bytes) == (first.train_bytes, first.val_bytes)
    # a different corpus, tokenizer, mode or split is a different cache entry
    path.write_text(TEXT + "one more line\n")
    assert not prepare_dataset([path], tok, cache_dir=tmp_path / "cache").from_cache
    assert not prepare_dataset([path], ByteTokenizer(extra_vocab=1), cache_dir=tmp_path / "cache").from_cache
    assert not prepare_dataset([path], tok, cache_dir=tmp_path / "cache", val_fraction=0.2).from_cache
    assert not prepare_dataset([path], tok, cache_dir=tmp_path / "cache", docs=True).from_cache


def test_corrupt_cache_is_rebuilt_not_trusted(tmp_path):
    path = write(tmp_path, "a.txt", TEXT)
    first = prepare_dataset([path], ByteTokenizer(), cache_dir=tmp_path / "cache")
    npy = first.cache_path
    npy.write_bytes(npy.read_bytes()[:-10])  # truncated token file
    again = prepare_dataset([path], ByteTokenizer(), cache_dir=tmp_path / "cache")
    assert not again.from_cache
    np.testing.assert_array_equal(first.tokens, again.tokens)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.suffix == ".tmp"]


def test_dtype_follows_vocab_size(tmp_path):
    path = write(tmp_path, "a.txt", TEXT)
    assert prepare_dataset([path], ByteTokenizer(), cache_dir=tmp_path).tokens.dtype == np.uint16
    big = ByteTokenizer(extra_vocab=70000)
    ds = prepare_dataset([path], big, cache_dir=tmp_path, docs=True)
    assert ds.tokens.dtype == np.uint32 and ds.tokens.max() == big.special_tokens[DOC_SEPARATOR]


def test_docs_mode_frames_every_document_with_the_separator(tmp_path):
    names = [f"name{i}" for i in range(50)]
    # blank lines are not documents; CRLF endings and special-token text inside a document are plain text
    text = "\r\n".join(names[:25]) + "\r\n\n" + "\n".join(names[25:-1]) + f"\n{DOC_SEPARATOR}x\n"
    tok = ByteTokenizer()
    ds = prepare_dataset([write(tmp_path, "names.txt", text)], tok, cache_dir=tmp_path, docs=True)
    sep = tok.special_tokens[DOC_SEPARATOR]
    assert ds.train[0] == sep and ds.train[-1] == sep and ds.val[0] == sep and ds.val[-1] == sep
    docs, current = [], []
    for i in np.asarray(ds.tokens[1:]).tolist():
        if i == sep:
            docs.append(bytes(current).decode())
            current = []
        else:
            current.append(i)
    assert docs == names[:-1] + [DOC_SEPARATOR + "x"]  # the literal separator text stays plain text
    assert int((np.asarray(ds.tokens) == sep).sum()) == len(names) + 1
    # bytes: each document plus its newline, which the separator stands for
    assert ds.train_bytes + ds.val_bytes == sum(len(d) + 1 for d in names[:-1]) + len(DOC_SEPARATOR) + 2
    assert ds.val_bytes == ds.n_targets("val")  # byte tokenizer: one target per byte (the SEP for the newline)


def test_docs_mode_needs_the_separator_token(tmp_path):
    path = write(tmp_path, "names.txt", "ann\nbob\n")
    with pytest.raises(TinyGPTError, match=r"^docs mode needs the special token <\|endoftext\|> in the tokenizer"):
        prepare_dataset([path], ByteTokenizer(special_tokens=()), cache_dir=tmp_path, docs=True)
    with pytest.raises(TinyGPTError, match="needs at least 2 documents"):
        prepare_dataset([write(tmp_path, "one.txt", "ann\n\n")], ByteTokenizer(), cache_dir=tmp_path, docs=True)


def test_plain_mode_treats_special_token_strings_as_text(tmp_path):
    text = TEXT + f"a {DOC_SEPARATOR} inside the text\n"
    ds = prepare_dataset([write(tmp_path, "a.txt", text)], ByteTokenizer(), cache_dir=tmp_path)
    assert as_bytes(ds.tokens).decode() == text


def test_several_files_never_run_into_each_other(tmp_path):
    a, b = write(tmp_path, "a.txt", "first file without newline"), write(tmp_path, "b.txt", TEXT)
    ds = prepare_dataset([a, b], ByteTokenizer(), cache_dir=tmp_path)
    assert as_bytes(ds.tokens).decode() == "first file without newline\n" + TEXT


def test_get_batch_windows_are_consecutive_tokens_and_deterministic(tmp_path):
    ds = prepare_dataset([write(tmp_path, "a.txt", TEXT)], ByteTokenizer(), cache_dir=tmp_path)
    x, y = ds.get_batch("train", 4, 16, np.random.default_rng(0))
    assert x.shape == y.shape == (4, 16) and x.dtype == y.dtype == np.int32
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    train = as_bytes(ds.train)
    for row_x, row_y in zip(x, y):
        assert bytes(row_x.tolist()) + bytes(row_y[-1:].tolist()) in train
    # the same generator state gives the same batch: a trainer that saves the rng state resumes exactly
    rng = np.random.default_rng(1)
    rng.integers(0, 10)
    state = rng.bit_generator.state
    first = ds.get_batch("val", 3, 8, rng)
    rng2 = np.random.default_rng()
    rng2.bit_generator.state = state
    second = ds.get_batch("val", 3, 8, rng2)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_block_size_larger_than_a_split_is_one_clear_line(tmp_path):
    ds = prepare_dataset([write(tmp_path, "a.txt", TEXT)], ByteTokenizer(), cache_dir=tmp_path)
    n = len(ds.val)
    ds.get_batch("val", 2, n - 1, np.random.default_rng(0))  # exactly fits
    message = (f"corpus too small for block_size {n}: it has {n} tokens in the val split; "
               f"use a smaller --block-size or a bigger corpus")
    with pytest.raises(TinyGPTError) as err:
        ds.get_batch("val", 2, n, np.random.default_rng(0))
    assert str(err.value) == message
    with pytest.raises(TinyGPTError) as err:
        ds.check_block_size(n)
    assert str(err.value) == message
    with pytest.raises(TinyGPTError, match="unknown split 'test'"):
        ds.get_batch("test", 2, 4, np.random.default_rng(0))


def test_eval_batches_cover_every_val_target_exactly_once(tmp_path):
    ds = prepare_dataset([write(tmp_path, "a.txt", TEXT)], ByteTokenizer(), cache_dir=tmp_path)
    targets, shapes = [], set()
    for x, y in ds.eval_batches("val", batch_size=3, block_size=50):
        shapes.add(x.shape)
        for row_x, row_y in zip(x, y):
            keep = row_y >= 0
            np.testing.assert_array_equal(row_x[1:][keep[1:]], row_y[:-1][keep[1:]])
            targets += row_y[keep].tolist()
    assert shapes == {(3, 50)}  # fixed shapes: one compiled eval step
    assert targets == np.asarray(ds.val[1:]).tolist()
    assert len(targets) == ds.n_targets("val")


def test_bits_per_byte():
    # a uniform guess over 256 byte values costs 8 bits per byte
    assert bits_per_byte(math.log(256), 1000, 1000) == pytest.approx(8.0)
    # the same total loss spread over half as many tokens of the same text is the same bpb
    assert bits_per_byte(2 * math.log(256), 500, 1000) == pytest.approx(8.0)


@pytest.mark.parametrize("text, fraction, expected", [
    ("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n", 0.1, ("a\nb\nc\nd\ne\nf\ng\nh\ni\n", "j\n")),
    ("aaaa\nb\n", 0.5, ("aaaa\n", "b\n")),
    ("one single line without a newline", 0.5, ("one single line ", "without a newline")),
])
def test_split_text(text, fraction, expected):
    assert split_text(text, fraction) == expected


@pytest.mark.parametrize("text, fraction, message", [
    ("x\n", 0.1, "corpus too small to split"),
    ("abc", 1.5, "val_fraction must be between 0 and 1"),
])
def test_bad_split_input(tmp_path, text, fraction, message):
    with pytest.raises(TinyGPTError, match=message):
        prepare_dataset([write(tmp_path, "a.txt", text)], ByteTokenizer(), cache_dir=tmp_path, val_fraction=fraction)


def test_bad_corpus_files_are_one_clear_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"hello \xff world\n")
    with pytest.raises(TinyGPTError, match=r"^corpus .*bad.txt is not UTF-8 text \(invalid byte at offset 6\)"):
        prepare_dataset([bad], ByteTokenizer(), cache_dir=tmp_path)
    with pytest.raises(TinyGPTError, match=r"is empty"):
        prepare_dataset([write(tmp_path, "e.txt", " \n\n")], ByteTokenizer(), cache_dir=tmp_path)
    with pytest.raises(TinyGPTError, match=r"cannot read corpus"):
        prepare_dataset([tmp_path / "missing.txt"], ByteTokenizer(), cache_dir=tmp_path)


def test_blockwise_tokenization_equals_whole_text_tokenization(tmp_path, monkeypatch):
    import tinygpt.data as data
    text = "".join(f"Line {i}:  some words, \tpunctuation!!\n\n  indented {i}\n" for i in range(300))
    tok = real_tokenizer(text)
    monkeypatch.setattr(data, "BLOCK_CHARS", 500)  # many blocks
    ds = prepare_dataset([write(tmp_path, "a.txt", text)], tok, cache_dir=tmp_path, val_fraction=0.3)
    train_text, val_text = split_text(text, 0.3)
    assert np.asarray(ds.train).tolist() == tok.encode_ordinary(train_text)
    assert np.asarray(ds.val[1:]).tolist() == tok.encode_ordinary(val_text)


def test_names_corpus_in_docs_mode_with_a_real_tokenizer(tmp_path):
    path = shared_file("names.txt")
    text = path.read_text()
    tok = real_tokenizer(text[:20000], vocab_size=300)
    ds = prepare_dataset([path], tok, cache_dir=tmp_path, docs=True)
    # each name counts with its newline (names.txt has none after the last name)
    assert ds.train_bytes + ds.val_bytes == len(text.encode()) + (not text.endswith("\n"))
    assert abs(ds.val_bytes / len(text) - 0.1) < 0.01
    train_docs = tok.decode(np.asarray(ds.train).tolist()).split(DOC_SEPARATOR)[1:-1]
    val_docs = tok.decode(np.asarray(ds.val).tolist()).split(DOC_SEPARATOR)[1:-1]
    assert train_docs + val_docs == text.split()


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab \n水", min_size=2, max_size=60), st.floats(0.05, 0.95))
def test_split_text_keeps_every_character_and_cuts_after_a_newline(text, fraction):
    try:
        train, val = split_text(text, fraction)
    except TinyGPTError as e:
        assert str(e).startswith("corpus too small to split")
        return
    assert train + val == text and train.strip() and val.strip()
    if "\n" in text.strip():
        assert train.endswith("\n")


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 300), st.integers(1, 5), st.integers(1, 40))
def test_eval_batches_cover_each_target_once_for_any_shape(n_tokens, batch_size, block_size):
    ds = TokenDataset(np.arange(n_tokens + 5, dtype=np.uint16), 5, 10, 10, 1000)
    targets = [t for _, y in ds.eval_batches("val", batch_size, block_size) for t in y[y >= 0].tolist()]
    assert targets == list(range(5, n_tokens + 5)) == np.asarray(ds.val[1:]).tolist()


@pytest.mark.parametrize("docs", [False, True])
def test_progress_reports_characters_until_done(tmp_path, monkeypatch, docs):
    import tinygpt.data as data
    monkeypatch.setattr(data, "BLOCK_CHARS", 1000)
    monkeypatch.setattr(data, "DOCS_PER_BATCH", 30)
    monkeypatch.setattr(data, "BLOCKS_PER_BATCH", 1)
    calls = []
    prepare_dataset([write(tmp_path, "a.txt", TEXT)], ByteTokenizer(), cache_dir=tmp_path, docs=docs,
                    progress=lambda done, total: calls.append((done, total)))
    assert len(calls) > 3 and calls == sorted(calls) and calls[-1][0] == calls[-1][1]
