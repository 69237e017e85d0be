"""Read corpus files as text, in blocks, with one-line errors for everything that is not a UTF-8 text file.

Training streams its corpus: `read_text_blocks` yields `str` blocks of about `block_size` bytes and never cuts
a UTF-8 character in two, so a file larger than memory can be counted block by block.
"""
import os
from typing import Callable, Iterable, Iterator

from bpe.errors import TokenizerError

ERROR_MODES = ("strict", "replace")


def check_text_files(paths: Iterable) -> list[str]:
    """Return `paths` as strings after checking each one is an existing, readable regular file.

    Called before any work starts, so a typo in the last of ten file names fails at once, not after an hour.
    """
    paths = [os.fspath(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    if not paths:
        raise TokenizerError("no corpus files given; pass one or more UTF-8 text files")
    for path in paths:
        if os.path.isdir(path):
            raise TokenizerError(f"{path} is a directory, not a text file; pass the text files inside it")
        if not os.path.exists(path):
            raise TokenizerError(f"{path}: no such file")
        if not os.access(path, os.R_OK):
            raise TokenizerError(f"{path}: permission denied")
    return paths


def total_bytes(paths: Iterable) -> int:
    """The total size in bytes of the given files (the denominator of a progress bar)."""
    return sum(os.path.getsize(p) for p in check_text_files(paths))


def read_text_blocks(paths, errors: str = "strict", block_size: int = 1 << 20,
                     progress: Callable[[int], None] | None = None, allow_empty: bool = False) -> Iterator[str]:
    """Yield the text of `paths` (one path or several, read in order, as if concatenated) in blocks of about
    `block_size` bytes.

    A block never ends inside a UTF-8 character. `errors="strict"` stops at the first invalid byte with a
    one-line `TokenizerError` naming the file, byte offset and line; `errors="replace"` turns invalid bytes
    into U+FFFD. A NUL byte means a binary file (always an error). An empty corpus (every file empty) is an
    error too (unless `allow_empty`), raised when the iteration ends. `progress(bytes_read)` is called after
    each block.
    """
    if errors not in ERROR_MODES:
        raise TokenizerError(f"errors must be one of {', '.join(ERROR_MODES)}, got {errors!r}")
    if block_size < 4:
        raise TokenizerError(f"block_size must be at least 4 bytes, got {block_size}")
    paths = check_text_files(paths)
    done = 0
    for path in paths:
        for text, size in _file_blocks(path, errors, block_size):
            done += size
            if progress is not None:
                progress(done)
            if text:
                yield text
    if done == 0 and not allow_empty:
        names = paths[0] if len(paths) == 1 else f"all {len(paths)} files"
        raise TokenizerError(f"empty corpus: {names} contain{'s' if len(paths) == 1 else ''} no text")


def read_text(path, errors: str = "strict", allow_empty: bool = False) -> str:
    """The whole text of one file, with the same checks and messages as `read_text_blocks`."""
    return "".join(read_text_blocks([path], errors=errors, allow_empty=allow_empty))


def _file_blocks(path: str, errors: str, block_size: int) -> Iterator[tuple[str, int]]:
    """Yield (text, bytes consumed) per block of one file; an unfinished character carries to the next block."""
    offset = 0      # file offset of the first byte of `pending`
    pending = b""   # bytes of a character cut by the previous block
    try:
        f = open(path, "rb")
    except OSError as e:
        raise TokenizerError(f"{path}: cannot open ({e.strerror or e})") from None
    with f:
        while True:
            block = f.read(block_size)
            data = pending + block
            if not data:
                return
            if b"\0" in block:
                at = offset + data.index(b"\0")
                raise TokenizerError(f"{path} looks like a binary file (NUL byte at offset {at}); "
                                     f"pass a UTF-8 text file")
            cut = len(data) if not block else complete_utf8_prefix(data)
            text = _decode(data[:cut], path, offset, errors)
            yield text, len(block)
            pending, offset = data[cut:], offset + cut
            if not block:
                return


def _decode(data: bytes, path: str, offset: int, errors: str) -> str:
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        at = offset + e.start
        raise TokenizerError(f"{path} is not valid UTF-8: byte 0x{data[e.start]:02x} at offset {at} "
                             f"(line {_line_number(path, at)}); convert it to UTF-8 or use --errors replace") from None


def _line_number(path: str, offset: int) -> int:
    """The 1-based line holding byte `offset` (only computed for an error message)."""
    line, seen = 1, 0
    with open(path, "rb") as f:
        while seen < offset:
            block = f.read(min(1 << 20, offset - seen))
            if not block:
                break
            line += block.count(b"\n")
            seen += len(block)
    return line


def complete_utf8_prefix(data: bytes) -> int:
    """The length of the longest prefix of `data` that does not end inside a UTF-8 character.

    Only the last 1-3 bytes can belong to an unfinished character; invalid bytes are left for the decoder.
    """
    n = len(data)
    for back in range(1, min(4, n) + 1):
        byte = data[n - back]
        if byte & 0xC0 == 0x80:       # continuation byte: keep looking for the lead byte
            continue
        if byte >= 0xC0:              # lead byte: how long is its character?
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return n - back if need > back else n
        return n                      # ASCII: the data ends on a character boundary
    return n
