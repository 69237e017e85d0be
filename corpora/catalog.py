"""The catalog of named reference corpora: where each one comes from and how to check it (sha256, size)."""
from dataclasses import dataclass


@dataclass(frozen=True)
class CorpusEntry:
    """One downloadable corpus: the file is checked by size and sha256 before it is ever used."""
    name: str
    filename: str      # its name in the cache folder
    url: str
    sha256: str
    size: int          # bytes
    licence: str
    description: str
    docs: bool = False  # one document per line (train with --docs)


CATALOG: dict[str, CorpusEntry] = {e.name: e for e in [
    CorpusEntry(
        name="tinyshakespeare",
        filename="tinyshakespeare.txt",
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        size=1115394,
        licence="public domain",
        description="~40k lines of Shakespeare plays; nanoGPT's shakespeare_char corpus",
    ),
    CorpusEntry(
        name="names",
        filename="names.txt",
        url="https://raw.githubusercontent.com/karpathy/makemore/master/names.txt",
        sha256="0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d",
        size=228145,
        licence="public domain (US SSA data)",
        description="32,033 lowercase first names, one per line; the makemore / microgpt data set",
        docs=True,
    ),
    CorpusEntry(
        name="shuihu",
        filename="shuihu.txt",
        url="https://raw.githubusercontent.com/tennessine/corpus/master/%E6%B0%B4%E6%B5%92%E4%BC%A0.txt",
        sha256="aa966dd99d7ecac39f63eb187e5f29f4edb6061dc1adf73e4524eb7fd2345cdc",
        size=2580298,
        licence="public domain",
        description="水浒传 (Water Margin), the full classical novel in UTF-8, CRLF line endings",
    ),
]}
