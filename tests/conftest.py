"""Shared test fixtures: where the reference corpora live (skip cleanly when absent)."""
import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Module- and session-scoped fixtures build models before any per-test fixture runs: their caches (compiled
# kernels, tokens) go to a folder of this test session too, never to the user's ~/.cache/tinygpt.
os.environ["TINYGPT_CACHE_DIR"] = tempfile.mkdtemp(prefix="tinygpt-test-cache-")
atexit.register(shutil.rmtree, os.environ["TINYGPT_CACHE_DIR"], True)
SHARED_CORPORA = Path(os.environ.get("BPE_SHARED_CORPORA", REPO.parent / "shared" / "corpora"))


@pytest.fixture(scope="session")
def shared_corpora() -> Path:
    """The pre-filled download cache `../shared/corpora`, or skip the test when it is absent."""
    if not SHARED_CORPORA.is_dir():
        pytest.skip(f"reference corpora not found at {SHARED_CORPORA}")
    return SHARED_CORPORA


def shared_file(name: str) -> Path:
    """Path of one reference corpus file, or skip the test when it is absent."""
    path = SHARED_CORPORA / name
    if not path.is_file():
        pytest.skip(f"reference corpus {name} not found in {SHARED_CORPORA}")
    return path


@pytest.fixture(autouse=True)
def _private_caches(tmp_path_factory, monkeypatch):
    """Keep token caches and generated corpora of every test out of the user's ~/.cache."""
    monkeypatch.setenv("TINYGPT_CACHE_DIR", str(tmp_path_factory.mktemp("tinygpt-cache")))
    if "TINYGPT_CORPUS_DIR" not in os.environ:
        monkeypatch.setenv("TINYGPT_CORPUS_DIR", str(tmp_path_factory.mktemp("tinygpt-corpora")))
