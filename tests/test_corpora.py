"""corpora: the catalog, the sha256-checked cache, downloads (from a local HTTP server only), generated corpora."""
import functools
import hashlib
import http.server
import re
import socket
import threading

import pytest

import corpora
from corpora import CATALOG, CorpusEntry, first_available, is_docs_corpus, list_corpora, resolve_corpus
from corpora.builtin import generate_names, generate_stories
from tinygpt.errors import TinyGPTError

from conftest import shared_file

# Pinned: the generated corpora are the same bytes on every machine and Python version.
BUILTIN_NAMES_SHA256 = "9e5686a96e917628c11b46d88beaa514295a55f0cabe395c86d9189e617d174b"
BUILTIN_STORIES_SHA256 = "71be3a656b6efd21d698b979e380ba1d0399363be96afba2392100df02a663cd"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("TINYGPT_CORPUS_DIR", str(folder))
    return folder


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields its base URL."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def fake_entry(monkeypatch, url, data: bytes, sha256=None, size=None, name="tiny"):
    entry = CorpusEntry(name=name, filename=f"{name}.txt", url=url,
                        sha256=sha256 or hashlib.sha256(data).hexdigest(),
                        size=len(data) if size is None else size, licence="test", description="a test corpus")
    monkeypatch.setitem(CATALOG, name, entry)
    return entry


DATA = "".join(f"line {i} of a tiny corpus\n" for i in range(3000)).encode()


# --- the catalog -------------------------------------------------------------------------------------------

def test_catalog_facts_match_the_reference_sources():
    sources = shared_file("SOURCES.md").read_text()
    rows = {m[0]: m[1:] for m in re.findall(r"^\| (\S+\.txt) \| (\d+) \| ([0-9a-f]{64}) \| (\S+) \|", sources, re.M)}
    assert {e.filename for e in CATALOG.values()} == set(rows)
    for entry in CATALOG.values():
        size, sha256, url = rows[entry.filename]
        assert (entry.size, entry.sha256) == (int(size), sha256)
        assert entry.url.startswith("https://")
        assert entry.licence and entry.description
    assert CATALOG["names"].docs and not CATALOG["tinyshakespeare"].docs


def test_catalog_names_resolve_from_the_shared_cache(monkeypatch):
    folder = shared_file("names.txt").parent
    monkeypatch.setenv("TINYGPT_CORPUS_DIR", str(folder))  # read-only: nothing is written there
    paths = resolve_corpus(["tinyshakespeare", "names", "shuihu"])
    assert paths == [folder / "tinyshakespeare.txt", folder / "names.txt", folder / "shuihu.txt"]
    assert resolve_corpus("names") == [folder / "names.txt"]


def test_corpus_dir_defaults_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("TINYGPT_CORPUS_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert corpora.corpus_dir() == tmp_path / ".cache" / "tinygpt" / "corpora"


def test_a_cached_file_with_the_wrong_sha256_is_refused(cache, monkeypatch):
    fake_entry(monkeypatch, "http://127.0.0.1:9/unused", DATA)
    cache.mkdir()
    (cache / "tiny.txt").write_bytes(DATA[:-1] + b"X")
    with pytest.raises(TinyGPTError, match=r"^cached corpus .*tiny.txt is not the catalog's 'tiny' "
                                           r"\(size or sha256 differs\); delete it to download it again$"):
        resolve_corpus("tiny")


# --- downloads (a local server, never the network) ---------------------------------------------------------

def test_download_with_the_right_sha256_lands_in_the_cache(cache, server, monkeypatch, capsys):
    root, base = server
    (root / "tiny.txt").write_bytes(DATA)
    fake_entry(monkeypatch, f"{base}/tiny.txt", DATA)
    assert resolve_corpus("tiny") == [cache / "tiny.txt"]
    assert (cache / "tiny.txt").read_bytes() == DATA
    err = capsys.readouterr().err
    assert err.startswith(f"\rdownloading tiny from {base}/tiny.txt:") and "100% (0.1 MB)\n" in err
    (root / "tiny.txt").unlink()  # the second use comes from the cache
    assert resolve_corpus("tiny") == [cache / "tiny.txt"]
    assert list(cache.iterdir()) == [cache / "tiny.txt"]


@pytest.mark.parametrize("served, sha256, size", [
    (DATA[:-1] + b"X", None, None),  # corrupted on the way: wrong sha256
    (DATA, "0" * 64, None),          # the catalog expects other bytes
    (DATA + DATA, None, len(DATA)),  # too long: stops reading
])
def test_download_with_a_bad_sha256_leaves_no_file(cache, server, monkeypatch, served, sha256, size):
    root, base = server
    (root / "tiny.txt").write_bytes(served)
    fake_entry(monkeypatch, f"{base}/tiny.txt", DATA, sha256=sha256, size=size)
    with pytest.raises(TinyGPTError) as err:
        resolve_corpus("tiny")
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"corpus 'tiny' downloaded from {base}/tiny.txt has ")
    assert "nothing was saved" in message and f"save it as {cache / 'tiny.txt'}" in message
    assert not list(cache.iterdir())  # not even a temporary file


def test_download_from_a_server_that_is_down_is_one_clear_line(cache, monkeypatch):
    with socket.socket() as s:  # a port that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/tiny.txt"
    entry = fake_entry(monkeypatch, url, DATA)
    with pytest.raises(TinyGPTError) as err:
        resolve_corpus("tiny")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"could not download corpus 'tiny' from {url} (")
    assert message.endswith(f"offline? download it yourself and save it as {cache / 'tiny.txt'} "
                            f"(sha256 {entry.sha256})")
    assert not cache.exists() or not list(cache.iterdir())


def test_download_of_a_missing_url_names_the_http_error(cache, server, monkeypatch):
    _, base = server
    fake_entry(monkeypatch, f"{base}/nothing.txt", DATA)
    with pytest.raises(TinyGPTError, match=r"^could not download corpus 'tiny' from .*/nothing.txt "
                                           r"\(HTTP Error 404: File not found\); offline\?"):
        resolve_corpus("tiny")


def test_no_download_into_a_read_only_cache(tmp_path, monkeypatch):
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    monkeypatch.setenv("TINYGPT_CORPUS_DIR", str(folder))
    fake_entry(monkeypatch, "http://127.0.0.1:9/tiny.txt", DATA)
    try:
        with pytest.raises(TinyGPTError, match=r"is not in the read-only folder .*; set TINYGPT_CORPUS_DIR"):
            resolve_corpus("tiny")
        assert not list(folder.iterdir())
    finally:
        folder.chmod(0o755)


# --- corpora the project generates -------------------------------------------------------------------------

def test_builtin_names_are_deterministic_distinct_and_name_like():
    text = generate_names()
    assert hashlib.sha256(text.encode()).hexdigest() == BUILTIN_NAMES_SHA256
    names = text.splitlines()
    assert len(names) == len(set(names)) == 30000
    assert all(re.fullmatch(r"[a-z]{3,10}", n) for n in names)
    assert not any(re.search(r"[aeiouy]{3}", n) for n in names)
    assert generate_names(count=10) == "\n".join(names[:10]) + "\n"


def test_builtin_stories_are_deterministic_english_like_paragraphs():
    text = generate_stories()
    assert hashlib.sha256(text.encode()).hexdigest() == BUILTIN_STORIES_SHA256
    paragraphs = text.strip().split("\n\n")
    assert len(paragraphs) == 1500
    assert all(p[0].isupper() and p.endswith(".") for p in paragraphs)


def test_builtin_corpus_is_written_to_the_cache_on_first_use(cache):
    [path] = resolve_corpus("builtin-names")
    assert path == cache / "builtin-names.txt"
    assert path.read_text() == generate_names()
    mtime = path.stat().st_mtime_ns
    assert resolve_corpus("builtin-names") == [path] and path.stat().st_mtime_ns == mtime  # not rewritten
    path.write_text("edited\n")
    resolve_corpus("builtin-names")
    assert path.read_text() == generate_names()  # an edited copy is regenerated
    assert is_docs_corpus("builtin-names") and corpora.DEFAULT_CORPUS == "builtin-names"


def test_builtin_corpus_never_writes_into_a_read_only_cache(tmp_path, monkeypatch):
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    monkeypatch.setenv("TINYGPT_CORPUS_DIR", str(folder))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    try:
        [path] = resolve_corpus("builtin-stories")
        assert path.parent.parent == tmp_path / "tmp" and path.read_text() == generate_stories()
        assert not list(folder.iterdir())
    finally:
        folder.chmod(0o755)


# --- your own files ----------------------------------------------------------------------------------------

def test_text_files_and_lists_of_specs(cache, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("hello\n")
    b.write_text("été 水浒传\n")
    assert resolve_corpus([str(a), b, "builtin-names"]) == [a, b, cache / "builtin-names.txt"]
    assert resolve_corpus(str(a)) == [a]
    assert not is_docs_corpus([str(a)]) and not is_docs_corpus(["names", str(a)]) and is_docs_corpus(["names"])


def test_utf8_check_streams_across_block_boundaries(tmp_path, monkeypatch):
    path = tmp_path / "big.txt"
    path.write_text("水" * 500_000)  # 1.5 MB: characters straddle the 1 MiB read boundary
    assert resolve_corpus(str(path)) == [path]


@pytest.mark.parametrize("make, message", [
    (lambda p: None, r"^corpus '.*nope.txt' not found: it is neither a file nor a corpus name \(tinyshakespeare, "),
    (lambda p: p.mkdir(), r"^corpus .*nope.txt is a directory; pass the text files in it$"),
    (lambda p: p.write_bytes(b""), r"^corpus .*nope.txt is empty; a corpus needs some text$"),
    (lambda p: p.write_bytes(b" \n\t\n"), r"^corpus .*nope.txt is empty"),
    (lambda p: p.write_bytes("aé".encode() * 1000 + b"\xff rest"),
     r"^corpus .*nope.txt is not UTF-8 text \(invalid byte at offset 3000\); convert it to UTF-8 first$"),
    (lambda p: p.write_bytes(b"abc \xe6\xb0"),
     r"^corpus .*nope.txt is not UTF-8 text \(it ends in the middle of a character\)"),
])
def test_bad_corpus_specs_are_one_clear_line(tmp_path, make, message):
    path = tmp_path / "nope.txt"
    make(path)
    with pytest.raises(TinyGPTError, match=message):
        resolve_corpus(str(path))
    with pytest.raises(TinyGPTError, match=r"^no corpus given"):
        resolve_corpus([])


def test_list_corpora_names_every_corpus_and_the_cache(cache):
    listing = list_corpora()
    for name in ["tinyshakespeare", "names", "shuihu", "builtin-names", "builtin-stories"]:
        assert re.search(rf"^{name} ", listing, re.M)
    assert str(cache) in listing


def test_first_available_falls_back_to_the_generated_corpus(cache, server, monkeypatch):
    root, base = server
    fake_entry(monkeypatch, f"{base}/tiny.txt", DATA)  # not served yet: the download fails
    assert first_available(["tiny", "builtin-names"]) == ("builtin-names", [cache / "builtin-names.txt"])
    (root / "tiny.txt").write_bytes(DATA)
    assert first_available(["tiny", "builtin-names"]) == ("tiny", [cache / "tiny.txt"])
    with pytest.raises(TinyGPTError, match="could not download corpus 'nope'"):
        fake_entry(monkeypatch, f"{base}/nope.txt", DATA, name="nope")
        first_available(["nope"])


def test_corpora_and_data_do_not_import_tinygrad():
    import subprocess
    import sys
    code = "import sys, corpora, tinygpt.data; print('tinygrad' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    assert out.stdout.strip() == "False"  # listing corpora or preparing data stays fast


def test_a_copy_of_a_docs_corpus_is_recognised_by_its_sha256(tmp_path):
    names = shared_file("names.txt")
    assert is_docs_corpus(str(names)) and is_docs_corpus([names])
    assert not is_docs_corpus(str(shared_file("tinyshakespeare.txt")))
    edited = tmp_path / "names.txt"
    edited.write_bytes(b"q" + names.read_bytes()[1:])  # same size, other content
    assert not is_docs_corpus(str(edited)) and not is_docs_corpus(str(tmp_path / "missing.txt"))
