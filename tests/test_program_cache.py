"""tinygpt.program_cache: kernels compiled by one run are loaded, not compiled again, by the next."""
import os
import subprocess
import sys

from conftest import REPO
from tinygpt import program_cache

SCRIPT = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from tinygpt import program_cache
program_cache.use()
from tinygrad import Tensor
from tinygrad.codegen import to_program_cache
loaded = len(to_program_cache)
print(loaded, (Tensor.arange(12).reshape(3, 4).float() @ Tensor.ones(4, 5)).relu().sum().item())
"""


def run_once(cache_dir) -> tuple[int, float]:
    env = dict(os.environ, TINYGPT_CACHE_DIR=str(cache_dir))
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded, value = out.stdout.split()
    return int(loaded), float(value)


def test_the_second_run_loads_what_the_first_compiled(tmp_path):
    first_loaded, first_value = run_once(tmp_path)
    second_loaded, second_value = run_once(tmp_path)
    assert first_loaded == 0 and second_loaded > 0
    assert first_value == second_value == 330.0
    assert len(list((tmp_path / "programs").glob("programs-*.pkl"))) == 1


def test_a_damaged_file_is_ignored_and_removed(tmp_path):
    damaged = tmp_path / "programs-x.pkl"
    damaged.write_bytes(b"\x80\x04not a pickle")
    assert program_cache._read(damaged) == {}
    assert not damaged.exists()
    assert program_cache._read(tmp_path / "missing.pkl") == {}
