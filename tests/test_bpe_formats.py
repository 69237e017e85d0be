"""Files: save/load round trip, every bad tokenizer file with its message, Hugging Face export parity."""
import json

import pytest
from hypothesis import given, settings, strategies as st

import bpe
from bpe.formats import bytes_to_text, text_to_bytes
from bpe_helpers import SAMPLE_TEXT, cl100k, small_tokenizer

MIXED = SAMPLE_TEXT[:2000] + "<|endoftext|> unseen: 夜深人静 zyxwv 12345 \U0001F600\n\n  x"


@given(st.binary())
def test_readable_byte_strings_round_trip(data):
    assert text_to_bytes(bytes_to_text(data)) == data


def test_readable_byte_strings_look_like_text():
    assert bytes_to_text(" the".encode()) == " the"
    assert bytes_to_text("宋江".encode()) == "宋江"
    assert bytes_to_text(b"\xe5\xae") == "\\xe5\\xae"
    assert bytes_to_text(b"a\\b") == "a\\\\b"


def test_save_load_round_trip(tmp_path):
    tok = small_tokenizer()
    path = tmp_path / "tok.json"
    tok.save(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["format"] == "bpe-tokenizer" and doc["version"] == 1 and doc["pattern"] == tok.pattern
    assert doc["special_tokens"] == {"<|endoftext|>": 398, "<|pad|>": 399}
    assert all(isinstance(part, str) for pair in doc["merges"] for part in pair)  # readable strings
    loaded = bpe.Tokenizer.load(path)
    assert loaded.merges == tok.merges and loaded.special_tokens == tok.special_tokens
    assert loaded.encode(MIXED, allowed_special="all") == tok.encode(MIXED, allowed_special="all")
    assert [p.name for p in tmp_path.iterdir()] == ["tok.json"]  # no temporary file left behind


def test_save_load_cl100k_keeps_its_byte_order(tmp_path):
    tok = cl100k()
    path = tmp_path / "cl100k.json"
    tok.save(path)
    loaded = bpe.Tokenizer.load(path)
    assert loaded.byte_ids == tok.byte_ids and loaded.merges == tok.merges
    assert loaded.encode(MIXED, allowed_special="all") == tok.encode(MIXED, allowed_special="all")


def _saved(tmp_path):
    path = tmp_path / "tok.json"
    small_tokenizer().save(path)
    return path, path.read_text(encoding="utf-8")


def _error(path) -> str:
    with pytest.raises(bpe.TokenizerError) as e:
        bpe.Tokenizer.load(path)
    message = str(e.value)
    assert "\n" not in message
    return message


def test_bad_files_give_one_line_naming_file_and_problem(tmp_path):
    path, text = _saved(tmp_path)
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    assert _error(path).startswith(f"{path} is not valid JSON (truncated or edited?): ")
    doc = json.loads(text)
    path.write_text(json.dumps({**doc, "version": 2}), encoding="utf-8")
    assert _error(path) == (f"{path} has format version 2, but this bpe reads version 1: re-save it with a "
                            f"matching bpe version")
    path.write_text(json.dumps({"model": {"type": "BPE"}}), encoding="utf-8")
    assert _error(path) == (f"{path} is not a bpe tokenizer file (it looks like a Hugging Face tokenizer.json): "
                            f"expected \"format\": \"bpe-tokenizer\"")
    path.write_text("[1, 2, 3]", encoding="utf-8")
    assert _error(path) == f"{path} is not a bpe tokenizer file: expected \"format\": \"bpe-tokenizer\""
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert _error(path) == f"{path} is not a tokenizer file: it is not UTF-8 text (byte 0)"
    missing = tmp_path / "nope.json"
    assert _error(missing) == f"{missing}: no such file (give the path of a tokenizer file)"
    assert _error(tmp_path) == f"{tmp_path} is a directory, not a tokenizer file"


def test_edited_files(tmp_path):
    path, text = _saved(tmp_path)
    doc = json.loads(text)
    edited = {**doc, "merges": doc["merges"][:5] + [["zzz", "q"]] + doc["merges"][6:]}
    path.write_text(json.dumps(edited), encoding="utf-8")
    assert _error(path) == (f"{path} is damaged: merge 5 (id 261) names 'zzz', which is not a token made before it")
    path.write_text(json.dumps({**doc, "merges": doc["merges"][:-3]}), encoding="utf-8")
    assert _error(path) == f"{path} is damaged: it says 142 merges but holds 139 (truncated or edited?)"
    path.write_text(json.dumps({**doc, "vocab_size": 500}), encoding="utf-8")
    assert _error(path) == f"{path} is damaged: it says vocab_size 500 but holds 400 ids (truncated or edited?)"
    path.write_text(json.dumps({**doc, "merges": [["a"]]}), encoding="utf-8")
    assert _error(path) == f"{path} is damaged: merge 0 (id 256) must be a [left, right] pair, got [\"a\"]"
    del doc["pattern"]
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert _error(path) == f"{path} is damaged: field 'pattern' is missing"
    doc = json.loads(text)
    path.write_text(json.dumps({**doc, "special_tokens": {"<|endoftext|>": 3}}), encoding="utf-8")
    assert _error(path) == (f"{path} is damaged: special token '<|endoftext|>' has id 3, which a byte or merge "
                            f"already uses (special ids start at 398)")
    path.write_text(json.dumps({**doc, "pattern": "(unclosed"}), encoding="utf-8")
    assert _error(path).startswith(f"{path} is damaged: invalid pre-split regex '(unclosed'")


def _hf_parity(tok, tmp_path, text):
    tokenizers = pytest.importorskip("tokenizers")
    path = tmp_path / "tokenizer.json"
    tok.save_huggingface(path)
    hf = tokenizers.Tokenizer.from_file(str(path))
    ids = tok.encode(text, allowed_special="all")
    assert hf.encode(text, add_special_tokens=False).ids == ids
    assert hf.decode(ids, skip_special_tokens=False) == text
    return hf


def test_huggingface_export_gives_the_same_ids(tmp_path):
    _hf_parity(small_tokenizer(), tmp_path, MIXED)


def test_huggingface_export_of_cl100k_gives_the_same_ids(tmp_path):
    hf = _hf_parity(cl100k(), tmp_path, MIXED + " 1234567 ''s 'LL  \n\n\t")
    hf_ids = hf.encode(SAMPLE_TEXT, add_special_tokens=False).ids
    assert hf_ids == cl100k().encode_ordinary(SAMPLE_TEXT)


@settings(max_examples=100, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs", "Cn")), max_size=60))  # see ASSIGNED in test_bpe_tiktoken
def test_huggingface_export_on_any_text(tmp_path_factory, text):
    tokenizers = pytest.importorskip("tokenizers")
    hf = _cached_hf(tmp_path_factory, tokenizers)
    assert hf.encode(text, add_special_tokens=False).ids == small_tokenizer().encode(text, allowed_special="all")


_HF = {}


def _cached_hf(tmp_path_factory, tokenizers):
    if "small" not in _HF:
        path = tmp_path_factory.mktemp("hf") / "tokenizer.json"
        small_tokenizer().save_huggingface(path)
        _HF["small"] = tokenizers.Tokenizer.from_file(str(path))
    return _HF["small"]


def test_tiktoken_and_huggingface_exports_are_atomic_files(tmp_path):
    tok = small_tokenizer()
    tok.save_tiktoken(tmp_path / "a.tiktoken")
    tok.save_huggingface(tmp_path / "b.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tiktoken", "b.json"]
