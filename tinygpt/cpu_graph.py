"""Replay TinyJit's CPU kernels from C, with each kernel's slices on every core.

On the CPU, tinygrad 0.14 replays a jitted function one kernel at a time from Python: a ctypes call per kernel
slice, ~10 us each, and the slices of a big kernel (its `core_id` argument, one per core) run one after another on
one core. For a small model that Python time is most of a generated token; for a big one, the idle cores are.

tinygrad lets a device batch a JIT's kernels into a "graph" (CUDA graphs, Metal command buffers). `CPUGraph` is
one for the CPU: it writes every kernel's address, arguments and slice count into one table, and `run_graph` in
`cpu_graph.c` runs the table in C, handing each kernel's slices to a small thread pool (the calling thread plus
`NUM_CPU_THREADS - 1` helpers). Kernels still run strictly in order and each slice computes exactly what it did
before, so results are bit-identical; only the wall time changes.

The C file is compiled once per machine with the compiler tinygrad uses (`CC`, default `clang`) into the tinygpt
cache directory. `TINYGPT_CPU_GRAPH=0` turns this off (for example to see per-kernel timings with `DEBUG=2`); it
is also off where it cannot apply: other devices, `HCQ2=1`, a renderer other than clang, Windows, a tinygrad other
than the pinned one, or a compiler that fails.
"""
import ctypes
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tinygrad.engine.jit import GraphRunner

MAX_ARGS = 63  # as in cpu_graph.c and tinygrad's CPUProgram
HEADER = 4     # table columns before the arguments: address, argument count, slice count, core_id slot
SOURCE = Path(__file__).with_name("cpu_graph.c")
_library = None


def enabled() -> bool:
    """Whether the C replay is wanted (TINYGPT_CPU_GRAPH=0 turns it off) and can work with this tinygrad and OS."""
    from tinygpt import cpu_kernels
    if os.environ.get("TINYGPT_CPU_GRAPH", "1") == "0" or sys.platform == "win32":
        return False
    return cpu_kernels.pinned_tinygrad()


def install() -> bool:
    """Make TinyJit batch CPU kernels into `CPUGraph`s (once per process). Returns whether it is active.

    Call before the first jitted function is captured: tinygrad picks the graph class at capture time.
    """
    from tinygrad import Device
    from tinygrad.helpers import getenv
    if not enabled() or Device.DEFAULT != "CPU" or getenv("HCQ2"):
        return False
    device = Device["CPU"]
    if device.graph is CPUGraph:
        return True
    if type(device.renderer).__name__ != "ClangRenderer" or _load_library() is None:
        return False
    device.graph = CPUGraph
    return True


def _calls_header() -> str:
    """C for `call_kernel`: call a kernel with exactly its number of 64-bit arguments (as ctypes does)."""
    cases = []
    for n in range(MAX_ARGS + 1):
        params = ", ".join(["uint64_t"] * n) or "void"
        args = ", ".join(f"a[{i}]" for i in range(n))
        cases.append(f"    case {n}: ((void (*)({params}))fn)({args}); break;")
    return ("static inline void call_kernel(uint64_t fn, int64_t n, const uint64_t *a) {\n  switch (n) {\n"
            + "\n".join(cases) + "\n  }\n}\n")


def _load_library():
    """Compile cpu_graph.c once per machine into the cache directory and load it; None (and a one-line note on
    stderr) when that is impossible, in which case tinygrad's own replay is used."""
    global _library
    if _library is not None:
        return _library
    from tinygpt.data import cache_root
    compiler = os.environ.get("CC", "clang")
    source, header = SOURCE.read_text(), _calls_header()
    key = hashlib.sha256("\0".join([source, header, compiler, platform.machine(), sys.platform]).encode()).hexdigest()
    path = cache_root() / "cpu_graph" / f"cpu_graph-{key[:16]}.so"
    try:
        if not path.exists():
            _build(path, source, header, compiler)
        library = ctypes.CDLL(str(path))  # calls through CDLL release the GIL
    except (OSError, subprocess.SubprocessError) as e:
        print(f"tinygpt: kernels run one by one from Python: could not build {path.name} ({e})", file=sys.stderr)
        return None
    library.run_graph.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64]
    library.run_graph.restype = ctypes.c_int64
    _library = library
    return library


def _build(path: Path, source: str, header: str, compiler: str) -> None:
    """Compile the shared library in a temporary folder next to `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as build:
        (Path(build) / "cpu_graph_calls.h").write_text(header)
        (Path(build) / "cpu_graph.c").write_text(source)
        built = Path(build) / "cpu_graph.so"
        command = [compiler, "-O2", "-shared", "-fPIC", "-pthread", "-o", str(built), str(Path(build) / "cpu_graph.c")]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        os.replace(built, path)


class CPUGraph(GraphRunner):
    """A batch of jitted CPU kernels, replayed by one call into cpu_graph.c.

    Row j of `table` is kernel j: its address, argument count, slice count, `core_id` slot, then its arguments
    (buffer addresses, then integer variables). A replay patches the rows whose inputs or variables changed.
    """

    def __init__(self, linear, input_uops=()):
        super().__init__(linear, input_uops)
        from tinygrad.helpers import NUM_CPU_THREADS
        self.threads = max(1, NUM_CPU_THREADS.value)
        self.table = np.zeros((len(self.calls), HEADER + MAX_ARGS), dtype=np.int64)
        self.buffer_column: list[dict[int, int]] = []  # per kernel: call argument position -> table column
        self.first_var_column: list[int] = []
        for j, ((_, program, bufs, device_vars), runtime) in enumerate(zip(self.calls, self.runtimes)):
            info = program.arg
            args = [bufs[i].get_buf(bufs[i].device).va_addr for i in info.globals]
            self.buffer_column.append({p: HEADER + k for k, p in enumerate(info.globals)})
            self.first_var_column.append(HEADER + len(args))
            args += [device_vars.get(v.expr, 0) for v in info.vars]
            assert len(args) <= MAX_ARGS, f"CPU programs support at most {MAX_ARGS} arguments, got {len(args)}"
            global_size, _ = info.launch_dims({v: 0 for v in self.vars})
            core = info.runtimevars.get("core_id")  # its argument slot, as tinygrad's own cpu_exec counts it
            core_slot = -1 if core is None else len(info.globals) + core
            self.table[j, :HEADER] = runtime.addr, len(args), global_size[0], core_slot
            self.table[j, HEADER:HEADER + len(args)] = args
        self.input_rows = [(j, self.uop_replace[j]) for j in range(len(self.calls)) if self.uop_replace[j]]

    def __call__(self, input_uops, var_vals: dict[str, int], wait=False) -> float | None:
        table = self.table
        for j, replace in self.input_rows:
            for position, slot in replace:
                if (column := self.buffer_column[j].get(position)) is not None:  # None: not read by the kernel
                    buf = input_uops[slot].buffer
                    table[j, column] = buf.get_buf(buf.device).va_addr
        for j, i, value in self.updated_vars(var_vals):
            table[j, self.first_var_column[j] + i] = value
        for j, global_size, _ in self.updated_launch_dims(var_vals):
            table[j, 2] = global_size[0]
        start = time.perf_counter()
        _library.run_graph(table.ctypes.data, len(table), self.threads)
        return time.perf_counter() - start if wait else None
