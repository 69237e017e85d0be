"""Fetch one catalog corpus over HTTP(S): stream to a temporary file, check sha256, then rename into place."""
import hashlib
import sys
import urllib.error
import urllib.request
from pathlib import Path

from bpe.atomic import atomic_path
from tinygpt.errors import TinyGPTError

CHUNK = 1 << 16


def sha256_file(path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def download(entry, dest: Path, timeout: float = 30.0, quiet: bool = False) -> Path:
    """Download `entry.url` to `dest`, atomically; a wrong size or sha256 leaves no file behind.

    Progress goes to stderr unless `quiet`. Any failure is one TinyGPTError line
    saying which URL failed and where to put the file by hand.
    """
    progress = None if quiet else sys.stderr
    by_hand = f"download it yourself and save it as {dest} (sha256 {entry.sha256})"
    try:
        with atomic_path(dest) as tmp:
            digest, done = hashlib.sha256(), 0
            with urllib.request.urlopen(entry.url, timeout=timeout) as response, open(tmp, "wb") as out:
                while block := response.read(CHUNK):
                    out.write(block)
                    digest.update(block)
                    done += len(block)
                    if done > entry.size:
                        break  # larger than the catalog says: wrong file, stop reading
                    _report(progress, entry, done)
            if progress is not None:
                progress.write("\n")
            if done != entry.size or digest.hexdigest() != entry.sha256:
                raise TinyGPTError(
                    f"corpus {entry.name!r} downloaded from {entry.url} has {done} bytes and sha256 "
                    f"{digest.hexdigest()}, expected {entry.size} bytes and {entry.sha256}; nothing was saved; "
                    f"{by_hand}")
    except TinyGPTError:
        raise
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = e if isinstance(e, urllib.error.HTTPError) else (getattr(e, "reason", None) or e)
        reason = str(reason).splitlines()[0] if str(reason) else type(e).__name__
        raise TinyGPTError(f"could not download corpus {entry.name!r} from {entry.url} ({reason}); "
                           f"offline? {by_hand}") from None
    return dest


def _report(progress, entry, done: int) -> None:
    if progress is None:
        return
    percent = f" {100 * done // entry.size:3d}%" if entry.size else ""
    progress.write(f"\rdownloading {entry.name} from {entry.url}:{percent} ({done / 1e6:.1f} MB)")
    progress.flush()
