"""The `bpe` command end to end: train, encode, decode, show, stats, export, and one clear line for bad input."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.bpe_cli import main

REPO = Path(__file__).resolve().parent.parent
CORPUS = ("The quick brown fox jumps over the lazy dog. " * 3 + "\n"
          "水浒传是中国四大名著之一。 Hello world, hello tokens!\n") * 20


def bpe(*args, input=None):
    """Run `bpe ARGS` the way the console script does; return (exit code, stdout, stderr)."""
    with CliRunner().isolation(input=input) as (out, err, _):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue().decode(), err.getvalue().decode()


def fails(*args, input=None) -> str:
    """Run `bpe ARGS`, check it failed with exactly one line on stderr and no traceback; return that line."""
    code, out, err = bpe(*args, input=input)
    assert code == 1, (code, out, err)
    assert out == ""
    lines = [line for line in err.splitlines() if not line.startswith(("counting ", "merging ", "measuring "))]  # progress
    assert len(lines) == 1 and lines[0].startswith("error: ") and err.endswith(lines[0] + "\n"), err
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A corpus and a 300-token tokenizer trained on it with one special token, via `bpe train`."""
    folder = tmp_path_factory.mktemp("cli")
    corpus = folder / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    tok = folder / "tok.json"
    code, out, err = bpe("train", corpus, "--vocab", 300, "--special", "<|endoftext|>", "-o", tok)
    assert code == 0, err
    return corpus, tok, out, err


def load(path):
    from bpe import Tokenizer
    return Tokenizer.load(path)


def test_train_writes_a_tokenizer_and_reports(trained):
    corpus, tok_path, out, err = trained
    tok = load(tok_path)
    assert tok.vocab_size == 300 and tok.special_tokens == {"<|endoftext|>": 299}
    assert "trained 300 tokens (256 bytes + 43 merges + 1 special)" in out
    ids = tok.encode(CORPUS)
    assert f"{len(CORPUS.encode()) / len(ids):.2f} bytes per token on the corpus ({len(ids):,} tokens)" in out
    assert f"saved {tok_path}" in out
    assert "counting" in err and "merging" in err and "measuring" in err  # progress goes to stderr


def test_train_same_as_library(trained, tmp_path):
    from bpe import Tokenizer
    corpus, tok_path, _, _ = trained
    direct = Tokenizer.train(CORPUS, 300, pattern="gpt4", special_tokens=["<|endoftext|>"])
    assert direct.merges == load(tok_path).merges


def test_train_on_several_files_reads_them_as_one_stream(tmp_path):
    from bpe import Tokenizer
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(CORPUS[:500], encoding="utf-8")
    b.write_text(CORPUS[500:], encoding="utf-8")
    code, _, err = bpe("train", a, b, "--vocab", 290, "-o", tmp_path / "t.json", "-q")
    assert code == 0 and err == ""
    assert load(tmp_path / "t.json").merges == Tokenizer.train(CORPUS, 290).merges


def test_encode_decode_round_trip(trained, tmp_path):
    _, tok, _, _ = trained
    text = "Hello world, 水浒传! 🙂"
    code, out, _ = bpe("encode", "-t", tok, text)
    assert code == 0
    ids = [int(i) for i in out.split()]
    assert ids == load(tok).encode(text)
    assert bpe("decode", "-t", tok, *ids)[1] == text + "\n"
    assert bpe("decode", "-t", tok, "-n", ",".join(map(str, ids)))[1] == text
    # --json output is accepted back by decode, and stdin works both ways
    code, out, _ = bpe("encode", "-t", tok, "--json", input=text.encode())
    assert json.loads(out) == ids
    assert bpe("decode", "-t", tok, out)[1] == text + "\n"
    assert bpe("decode", "-t", tok, input=out)[1] == text + "\n"
    f = tmp_path / "in.txt"
    f.write_text(text, encoding="utf-8")
    assert bpe("encode", "-t", tok, "--file", f)[1].split() == [str(i) for i in ids]


def test_encode_special_tokens(trained):
    _, tok, _, _ = trained
    line = fails("encode", "-t", tok, "a<|endoftext|>b")
    assert line == ("error: the text contains the special token '<|endoftext|>'; pass --allow-special to encode "
                    "special tokens as their ids, or --ordinary to encode them as plain text")
    assert bpe("encode", "-t", tok, "--allow-special", "<|endoftext|>")[1].split() == ["299"]
    assert "299" not in bpe("encode", "-t", tok, "--ordinary", "<|endoftext|>")[1].split()
    assert fails("encode", "-t", tok, "--allow-special", "--ordinary", "x") == \
        "error: --allow-special and --ordinary contradict each other; pass one of them"


def test_show_plain_and_coloured(trained):
    _, tok, _, _ = trained
    t = load(tok)
    ids = t.encode("hello world")
    code, out, _ = bpe("show", "-t", tok, "--no-color", "hello world")
    lines = out.splitlines()
    assert lines[0] == "|".join(t.decode([i]) for i in ids)
    assert lines[1] == f"{len(ids)} tokens, 11 bytes, {11 / len(ids):.2f} bytes per token"
    assert lines[2] == " ".join(map(str, ids))
    code, out, _ = bpe("show", "-t", tok, "--color", "--no-ids", "hello world")
    assert out.count("\x1b[30;48;5;") == len(ids) and "|" not in out
    assert len(out.splitlines()) == 2
    assert bpe("show", "-t", tok, "--no-color", "--separator", "/", "hello world")[1].splitlines()[0].count("/") == len(ids) - 1


def test_show_keeps_multibyte_characters_whole(trained):
    _, tok, _, _ = trained
    text = "龘"  # not in the corpus: three byte tokens that only together make a character
    code, out, _ = bpe("show", "-t", tok, "--no-color", text)
    assert out.splitlines()[0] == text
    assert len(out.splitlines()[2].split()) == 3


def test_stats(trained):
    corpus, tok, _, _ = trained
    code, out, _ = bpe("stats", "-t", tok, corpus, "--top", 3)
    assert code == 0
    ids = load(tok).encode(CORPUS)
    assert f"tokens:           {len(ids):,}" in out
    assert f"bytes per token:  {len(CORPUS.encode()) / len(ids):.2f}" in out
    assert out.splitlines()[-4].split() == ["rank", "id", "count", "share", "token"]
    assert len(out.splitlines()) == 7 + 1 + 1 + 3


def test_export_tiktoken_gives_the_same_ids(trained, tmp_path):
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import load_tiktoken_bpe
    _, tok, _, _ = trained
    out_path = tmp_path / "tok.tiktoken"
    code, out, _ = bpe("export", "-t", tok, "--format", "tiktoken", "-o", out_path)
    assert code == 0 and out.startswith(f"wrote {out_path} (tiktoken, 300 tokens)")
    ours = load(tok)
    enc = tiktoken.Encoding("t", pat_str=ours.pattern, mergeable_ranks=load_tiktoken_bpe(str(out_path)),
                            special_tokens=ours.special_tokens)
    assert enc.encode(CORPUS) == ours.encode(CORPUS)


def test_export_huggingface_gives_the_same_ids(trained, tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    _, tok, _, _ = trained
    code, out, _ = bpe("export", "-t", tok, "--format", "huggingface", "-o", tmp_path / "hf.json")
    assert code == 0
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "hf.json"))
    text = "Hello world, 水浒传! 🙂<|endoftext|>"
    assert hf.encode(text).ids == load(tok).encode(text, allowed_special="all")


def test_export_default_output_name(trained, tmp_path):
    _, tok, _, _ = trained
    copy = tmp_path / "mine.json"
    copy.write_bytes(Path(tok).read_bytes())
    assert bpe("export", "-t", copy)[0] == 0
    assert (tmp_path / "mine.tiktoken").is_file()


# ------------------------------------------------------------------------------------------- bad input
@pytest.fixture
def files(tmp_path):
    paths = {"ok": tmp_path / "ok.txt", "empty": tmp_path / "empty.txt", "bin": tmp_path / "data.bin",
             "latin1": tmp_path / "latin1.txt", "tiny": tmp_path / "tiny.txt", "junk": tmp_path / "junk.json"}
    paths["ok"].write_text(CORPUS, encoding="utf-8")
    paths["empty"].write_bytes(b"")
    paths["bin"].write_bytes(b"\x7fELF\x00\x01")
    paths["latin1"].write_bytes("hello\ncaf\xe9\n".encode("latin-1"))
    paths["tiny"].write_text("ab ab", encoding="utf-8")
    paths["junk"].write_text('{"not": "a tokenizer"}', encoding="utf-8")
    return paths


def train_fails(tmp_path, *args) -> str:
    out = tmp_path / "out.json"
    line = fails("train", *args, "-o", out)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith("out.json")]
    return line


def test_train_bad_input(tmp_path, files):
    assert train_fails(tmp_path, tmp_path / "nope.txt") == f"error: {tmp_path / 'nope.txt'}: no such file"
    assert train_fails(tmp_path, files["ok"], tmp_path) == \
        f"error: {tmp_path} is a directory, not a text file; pass the text files inside it"
    assert train_fails(tmp_path, files["bin"]) == \
        f"error: {files['bin']} looks like a binary file (NUL byte at offset 4); pass a UTF-8 text file"
    assert train_fails(tmp_path, files["latin1"]) == \
        (f"error: {files['latin1']} is not valid UTF-8: byte 0xe9 at offset 9 (line 2); "
         "convert it to UTF-8 or use --errors replace")
    assert train_fails(tmp_path, files["empty"]) == f"error: empty corpus: {files['empty']} contains no text"
    assert train_fails(tmp_path, files["ok"], "--vocab", 256, "--special", "<|endoftext|>") == \
        "error: vocab_size 256 is too small: it must be at least 257 (256 bytes + 1 special tokens)"
    assert train_fails(tmp_path, files["tiny"], "--vocab", 1000) == \
        "error: vocab_size 1000 is more than this corpus can make: it supports only 2 merges, " \
        "so ask for vocab_size 258 or less"
    assert train_fails(tmp_path, files["ok"], "--special", "x", "--special", "x") == \
        "error: special token 'x' is given twice"
    assert "invalid pre-split regex" in train_fails(tmp_path, files["ok"], "--pattern", "(unclosed")


def test_train_errors_replace_accepts_latin1(tmp_path, files):
    out = tmp_path / "t.json"
    code, _, err = bpe("train", files["latin1"], "--vocab", 257, "--errors", "replace", "-o", out, "-q")
    assert code == 0 and err == "" and out.is_file()


def test_train_refuses_a_directory_as_output(tmp_path, files):
    assert fails("train", files["ok"], "-o", tmp_path).startswith(f"error: -o {tmp_path} is a directory")


def test_tokenizer_file_errors(tmp_path, files):
    missing = tmp_path / "missing.json"
    assert fails("encode", "-t", missing, "hi") == \
        f"error: tokenizer file {missing} not found; train one with `bpe train CORPUS -o {missing}` or pass -t FILE"
    assert fails("encode", "-t", tmp_path, "hi") == f"error: -t {tmp_path} is a directory, not a tokenizer file"
    for bad in ("junk", "bin", "ok"):
        line = fails("decode", "-t", files[bad], "1")
        assert str(files[bad]) in line, line


def test_decode_bad_ids(trained):
    _, tok, _, _ = trained
    assert fails("decode", "-t", tok, "72", "abc") == \
        "error: not a token id: 'abc'; pass integers like `bpe decode -t tok.json 72 101`"
    assert fails("decode", "-t", tok, "300") == "error: token id 300 is out of range: this tokenizer has ids 0..299"
    assert fails("decode", "-t", tok, "-5") == "error: token id -5 is out of range: this tokenizer has ids 0..299"


def test_encode_and_stats_bad_files(trained, tmp_path, files):
    _, tok, _, _ = trained
    assert fails("encode", "-t", tok, "--file", files["bin"]).startswith(f"error: {files['bin']} looks like a binary")
    assert fails("encode", "-t", tok, "text", "--file", files["ok"]) == "error: give either TEXT or --file, not both"
    assert fails("encode", "-t", tok, input=b"caf\xe9") == \
        "error: stdin is not valid UTF-8: byte 0xe9 at offset 3; use --errors replace"
    assert fails("stats", "-t", tok, files["empty"]) == f"error: empty corpus: {files['empty']} contains no text"
    assert fails("stats", "-t", tok, tmp_path / "nope.txt") == f"error: {tmp_path / 'nope.txt'}: no such file"


def test_export_leaves_no_partial_file(trained, tmp_path, files):
    out = tmp_path / "x.tiktoken"
    fails("export", "-t", files["junk"], "-o", out)
    assert not out.exists()
    assert fails("export", "-t", trained[1], "-o", tmp_path) == f"error: -o {tmp_path} is a directory; give a file name"


# ----------------------------------------------------------------------------------------- entry points
def test_python_m_bpe_help():
    out = subprocess.run([sys.executable, "-m", "bpe", "--help"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for command in ("train", "encode", "decode", "show", "stats", "export"):
        assert command in out.stdout


def test_every_option_shows_a_default():
    import click
    from cli.bpe_cli import bpe as group
    for name, command in group.commands.items():
        ctx = click.Context(command, info_name=name, parent=click.Context(group, info_name="bpe", **group.context_settings))
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                record = param.get_help_record(ctx)
                assert "[default:" in record[1], (name, record)


def test_console_script_if_installed():
    script = Path(sys.executable).parent / "bpe"
    if not script.exists():
        pytest.skip("the bpe console script is not installed in this environment")
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "train" in out.stdout
