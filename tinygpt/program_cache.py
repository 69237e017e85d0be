"""Compiled kernels kept on disk between runs, so the second run of a model starts in seconds.

tinygrad caches clang's output on disk, but every new process lowers each kernel again (AST -> optimized C source,
in Python): ~20 s of CPU for the ~140 kernels of a small model's training step, which is most of a first step.
tinygrad keeps the finished programs of this process in a dict (`tinygrad.codegen.to_program_cache`, keyed by the
kernel's AST, the renderer and the codegen flags). `use()` fills that dict from a file at start and writes it back
at exit. One file per tinygrad version, CPU-kernel patch state and machine, under $TINYGPT_CACHE_DIR/programs
(default ~/.cache/tinygpt/programs). `CACHELEVEL=0`, tinygrad's switch for its own caches, turns it off too.
"""
import atexit
import hashlib
import pickle
import platform
import sys
from pathlib import Path

from bpe.atomic import atomic_write_bytes

MAX_BYTES = 256 << 20  # a bigger file starts over: it holds kernels of many shapes no run uses any more
_loaded_keys: set | None = None  # None: use() has not run (or the cache is off)
_path: Path | None = None  # the file use() loaded, which save() writes back


def cache_file() -> Path:
    """The file for this tinygrad, these kernel patches and this machine (compiled for its exact CPU)."""
    from importlib.metadata import version
    from tinygpt import cpu_kernels
    from tinygpt.data import cache_root
    what = [version("tinygrad"), f"cpu_kernels={cpu_kernels.install()}/{cpu_kernels.PATCH_VERSION}",
            platform.machine(), platform.python_version(), _cpu_model()]
    return cache_root() / "programs" / f"programs-{hashlib.sha256(repr(what).encode()).hexdigest()[:16]}.pkl"


def use() -> None:
    """Load the programs earlier runs compiled, and save this run's at exit (once per process)."""
    global _loaded_keys, _path
    from tinygrad.codegen import to_program_cache
    from tinygrad.helpers import CACHELEVEL
    if _loaded_keys is not None or CACHELEVEL.value == 0:
        return
    try:
        _path = cache_file()
    except Exception:  # e.g. a tinygrad without package metadata: no safe file name, no cache
        return
    to_program_cache.update(_read(_path))
    _loaded_keys = set(to_program_cache)
    atexit.register(save)


def save() -> None:
    """Write the programs of this process, and those already in the file, to the file (atomically)."""
    from tinygrad.codegen import to_program_cache
    if _loaded_keys is None or set(to_program_cache) <= _loaded_keys:
        return  # nothing new
    programs = _read(_path)
    programs.update(to_program_cache)
    try:
        data = pickle.dumps(programs)
        if len(data) > MAX_BYTES:
            data = pickle.dumps(dict(to_program_cache))
        atomic_write_bytes(_path, data)
    except Exception as e:  # a cache must never break a run; the next run just compiles again
        print(f"tinygpt: could not save compiled kernels to {_path}: {e}", file=sys.stderr)


def _read(path: Path) -> dict:
    """The programs in `path`, or {} when it is missing or unreadable (a damaged file is removed)."""
    try:
        with open(path, "rb") as f:
            programs = pickle.load(f)
        if not isinstance(programs, dict):
            raise TypeError("not a dict")
        return programs
    except FileNotFoundError:
        return {}
    except Exception:
        path.unlink(missing_ok=True)
        return {}


def _cpu_model() -> str:
    """The CPU's model name: kernels are compiled with -march=native, so another CPU may lack their instructions."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
