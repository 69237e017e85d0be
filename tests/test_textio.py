"""bpe.textio: corpus files stream as text blocks that never split a character; bad files fail in one line."""
import os

import pytest
from hypothesis import given, settings, strategies as st

from bpe.errors import TokenizerError
from bpe.textio import complete_utf8_prefix, read_text, read_text_blocks, total_bytes


def write(path, data: bytes):
    path.write_bytes(data)
    return path


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=200), block_size=st.integers(4, 17))
def test_blocks_join_to_the_file_and_each_block_is_whole_characters(tmp_path_factory, text, block_size):
    path = write(tmp_path_factory.mktemp("c") / "c.txt", text.encode("utf-8", "surrogatepass"))
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text) or "\0" in text or not text:
        return  # surrogates are not UTF-8, NUL means binary, empty is an error: covered below
    blocks = list(read_text_blocks([path], block_size=block_size))
    assert "".join(blocks) == text
    for block in blocks:  # every block is a str of whole characters: re-encoding gives <= block_size + 3 bytes
        assert len(block.encode("utf-8")) <= block_size + 3


def test_several_files_are_read_in_order_and_progress_counts_bytes(tmp_path):
    a = write(tmp_path / "a.txt", "héllo\n".encode())
    b = write(tmp_path / "b.txt", "水浒传\n".encode())
    seen = []
    text = "".join(read_text_blocks([a, b], block_size=4, progress=seen.append))
    assert text == "héllo\n水浒传\n"
    assert seen[-1] == total_bytes([a, b]) == 7 + 10
    assert seen == sorted(seen)


def test_one_path_may_be_given_without_a_list(tmp_path):
    assert read_text(write(tmp_path / "a.txt", b"abc")) == "abc"


def test_complete_utf8_prefix():
    s = "a水".encode()  # 61 e6 b0 b4
    assert [complete_utf8_prefix(s[:i]) for i in range(5)] == [0, 1, 1, 1, 4]
    emoji = "🙂".encode()
    assert [complete_utf8_prefix(emoji[:i]) for i in range(5)] == [0, 0, 0, 0, 4]


def test_missing_file(tmp_path):
    with pytest.raises(TokenizerError, match=r"^.*nope\.txt: no such file$"):
        list(read_text_blocks([tmp_path / "nope.txt"]))


def test_directory(tmp_path):
    with pytest.raises(TokenizerError) as e:
        list(read_text_blocks([tmp_path]))
    assert str(e.value) == f"{tmp_path} is a directory, not a text file; pass the text files inside it"


def test_binary_file(tmp_path):
    path = write(tmp_path / "b.bin", b"abc\0def")
    with pytest.raises(TokenizerError) as e:
        list(read_text_blocks([path]))
    assert str(e.value) == f"{path} looks like a binary file (NUL byte at offset 3); pass a UTF-8 text file"


def test_non_utf8_names_file_offset_line_and_the_fix(tmp_path):
    path = write(tmp_path / "latin1.txt", "ab\ncafé\n".encode("latin-1"))
    with pytest.raises(TokenizerError) as e:
        list(read_text_blocks([path], block_size=4))
    assert str(e.value) == (f"{path} is not valid UTF-8: byte 0xe9 at offset 6 (line 2); "
                            "convert it to UTF-8 or use --errors replace")
    assert read_text(path, errors="replace") == "ab\ncaf\ufffd\n"


def test_truncated_character_at_end_of_file(tmp_path):
    path = write(tmp_path / "cut.txt", "ab水".encode()[:-1])
    with pytest.raises(TokenizerError, match=r"is not valid UTF-8: byte 0xe6 at offset 2 \(line 1\)"):
        list(read_text_blocks([path], block_size=4))
    assert read_text(path, errors="replace") == "ab\ufffd"


def test_empty_corpus(tmp_path):
    a, b = write(tmp_path / "a.txt", b""), write(tmp_path / "b.txt", b"")
    with pytest.raises(TokenizerError) as e:
        list(read_text_blocks([a]))
    assert str(e.value) == f"empty corpus: {a} contains no text"
    with pytest.raises(TokenizerError, match=r"^empty corpus: all 2 files contain no text$"):
        list(read_text_blocks([a, b]))
    assert read_text(a, allow_empty=True) == ""
    with pytest.raises(TokenizerError, match="no corpus files given"):
        list(read_text_blocks([]))


def test_bad_errors_mode(tmp_path):
    with pytest.raises(TokenizerError, match=r"errors must be one of strict, replace, got 'ignore'"):
        list(read_text_blocks([write(tmp_path / "a.txt", b"a")], errors="ignore"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file(tmp_path):
    path = write(tmp_path / "secret.txt", b"a")
    path.chmod(0)
    with pytest.raises(TokenizerError, match="secret.txt: permission denied"):
        list(read_text_blocks([path]))
