"""Faster matmuls on the CPU: register-blocked kernels for tinygrad 0.14's clang backend.

tinygrad's default kernel heuristic gives CPU matmuls 10-20 GFLOP/s on a modern x86 core, where numpy's BLAS
reaches ~95. Two changes bring them to 90-110 GFLOP/s (docs/performance.md has the measurements):

1. Wide vector loads. tinygrad folds at most 4 neighbouring floats into one vector load, so clang emits 128-bit
   FMAs. Allowing 16 (`_allow_wide_loads`) lets it use whole AVX-512 registers (or pairs of AVX2/NEON ones).
2. Register blocking (`matmul_opts`). For a kernel that is a plain sum of products (a matmul, forward or backward),
   keep a block of the output in registers: 16 consecutive outputs along the axis that is contiguous in memory,
   times 8 (4 without AVX-512) along another axis, and stream the reduction through them.

Both are patches of tinygrad internals, so they are checked against the pinned version (0.14.0) and skipped for
any other. They only change kernels compiled for the CPU's clang renderer, and only the order in which floats are
added: results agree with the default kernels to float rounding (~1e-6). `TINYGPT_CPU_KERNELS=0` turns them off.
"""
import functools
import inspect
import os
import sys

TINYGRAD_VERSION = "0.14.0"
OPS_PER_THREAD = 16 << 10  # the smallest slice of a kernel worth handing to another core (see _split_over_threads)
PATCH_VERSION = 2  # bump when the kernels made here change: tinygpt.program_cache keys its files on it
_COALESCE_LINE = 'lengths = [8,4,2] if buf.dtype == dtypes.half and getenv("ALLOW_HALF8") else [4,2]'
_installed = False
_tinygrad_init_worker = None  # tinygrad's own compile-worker set-up, kept when install() takes its place


def enabled() -> bool:
    """Whether the faster CPU kernels are wanted (TINYGPT_CPU_KERNELS=0 turns them off) and fit this tinygrad."""
    return os.environ.get("TINYGPT_CPU_KERNELS", "1") != "0" and pinned_tinygrad()


@functools.cache  # a package-metadata lookup (~0.6 ms of file reads), asked at every matmul a graph builds
def pinned_tinygrad() -> bool:
    """Whether the installed tinygrad is the version these patches (and tinygpt.cpu_graph's) were written for."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("tinygrad") == TINYGRAD_VERSION
    except PackageNotFoundError:  # a source checkout on sys.path: its version is unknown
        return False


def install() -> bool:
    """Patch tinygrad (once per process) to compile CPU matmuls with `matmul_opts` and wide loads.

    Also makes tinygrad's compile worker processes, which start fresh, patch themselves. Returns whether the
    patches are active.
    """
    global _installed, _tinygrad_init_worker
    if _installed:
        return True
    if not enabled():
        return False
    import tinygrad.codegen.opt.heuristic as heuristic
    from tinygrad.engine import worker
    if not _allow_wide_loads():
        return False
    default = heuristic.hand_coded_optimizations

    def hand_coded_optimizations(k):
        from tinygrad.codegen.opt import KernelOptError
        try:
            blocked = matmul_opts(k)
        except KernelOptError:
            blocked = None
        k = blocked if blocked is not None else default(k)
        _split_over_threads(k)  # medium kernels too: tinygpt.cpu_graph runs slices on all cores at ~1 us a slice
        return k

    heuristic.hand_coded_optimizations = hand_coded_optimizations  # tinygrad looks the name up at every kernel
    _tinygrad_init_worker, worker._init_worker = worker._init_worker, init_compile_worker
    # a pool started before this point has unpatched workers and, once one is recycled (every 16 kernels), can no
    # longer pickle its initializer by name and hangs: start a new one when next needed
    worker.terminate_worker_pool()
    _installed = True
    return True


def init_compile_worker() -> None:
    """Set-up of a tinygrad compile worker process: these patches, then tinygrad's own (no devices, no Ctrl-C)."""
    from tinygrad.engine import worker
    install()
    (_tinygrad_init_worker or worker._init_worker)()  # the latter is tinygrad's own when install() did nothing


def _allow_wide_loads() -> bool:
    """Let tinygrad's memory coalescing fold up to 16 floats into one vector load/store on the clang renderer."""
    import tinygrad.codegen as codegen
    import tinygrad.codegen.late.coalesce as coalesce
    from tinygrad.renderer.cstyle import ClangRenderer
    source = inspect.getsource(coalesce.memory_coalescing)
    if _COALESCE_LINE not in source:
        print("tinygpt: tinygrad's memory_coalescing is not the expected one; CPU kernels stay as they are",
              file=sys.stderr)
        return False
    wide = ('lengths = [16,8,4,2] if isinstance(ctx, ClangRenderer) and buf.dtype == dtypes.float else '
            f'({_COALESCE_LINE.split(" = ", 1)[1]})')
    namespace = dict(vars(coalesce), ClangRenderer=ClangRenderer)
    exec(compile(source.replace(_COALESCE_LINE, wide), coalesce.__file__, "exec"), namespace)
    codegen.memory_coalescing = namespace["memory_coalescing"]  # the name codegen calls
    # a vector type wider than 16 bytes would promise clang that alignment, but a buffer view may start at any
    # 16-byte boundary: promise 16 only
    default_prefix = ClangRenderer.render_vector_prefix

    def render_vector_prefix(self, dt, count):
        prefix = default_prefix(self, dt, count)
        return prefix.replace(f"aligned({dt.itemsize * count})", "aligned(16)") if dt.itemsize * count > 16 else prefix

    ClangRenderer.render_vector_prefix = render_vector_prefix
    return True


@functools.cache
def _has_avx512() -> bool:
    """x86 cores with AVX-512 have 32 registers of 16 floats: room for a block of 8 x 16 outputs."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return " avx512f " in f.read()
    except OSError:
        return False


def matmul_opts(k):
    """The kernel scheduler `k` with register blocking applied, or None when `k` is not a float32 matmul on the
    clang renderer (tinygrad's default heuristic then handles it).

    A matmul here is one reduce axis K over ADD(MUL(a, b)), each operand a load or an elementwise expression of
    loads (a gradient summed into a matmul input, say). N is an output axis only one operand reads, with stride 1
    there; M an output axis only the other reads. Upcasting N by 16 and M by 8 makes clang keep 8 x 16 partial
    sums in registers and do one broadcast FMA per element of a. When K is the contiguous axis of both operands
    (a @ b.T), unroll K by 8 instead and upcast N and M by 8.
    """
    from tinygrad.codegen.opt import Opt, OptOps
    from tinygrad.dtype import dtypes
    from tinygrad.renderer.cstyle import ClangRenderer
    from tinygrad.uop.ops import Ops
    if not isinstance(k.ren, ClangRenderer) or len(k.reduceops) != 1:
        return None
    reduce = k.reduceop
    if reduce.arg[0] is not Ops.ADD or reduce.dtype != dtypes.float or reduce.src[0].op is not Ops.MUL:
        return None
    operand_loads = [_loads(operand) for operand in reduce.src[0].src]
    if not all(operand_loads) or len(k.unrollable_dims) != 1 or k.upcasted or k.group_for_reduces:
        return None
    indexes = [[load.src[1].get_idx() for load in loads] for loads in operand_loads]

    def reads(axis, i):
        return any(k.rngs[axis] in index.backward_slice for index in indexes[i])

    def stride_one(axis, i):
        return all(any(term is k.rngs[axis] for term in index.split_uop(Ops.ADD)) for index in indexes[i])

    outputs = [axis for axis in k.upcastable_dims if isinstance(k.full_shape[axis], int)]
    own = [[axis for axis in outputs if reads(axis, i) and not reads(axis, 1 - i)] for i in (0, 1)]

    def pick(axes, sizes):  # the innermost axis that a size divides, trying the biggest size first
        for size in sizes:
            for axis in reversed(axes):
                if k.full_shape[axis] % size == 0:
                    return Opt(OptOps.UPCAST, axis, size)
        return None

    m_sizes = (8, 6, 4, 2) if _has_avx512() else (4, 2)
    opts = None
    for i in (1, 0):
        n, m = pick([axis for axis in own[i] if stride_one(axis, i)], (16, 8)), pick(own[1 - i], m_sizes)
        if n and m:
            opts = [n, m]
            break
    reduce_axis = k.unrollable_dims[0]
    if opts is None and all(stride_one(reduce_axis, i) for i in (0, 1)) and k.full_shape[reduce_axis] % 8 == 0:
        n, m = pick(own[1], (8, 4)), pick(own[0], (8, 4) if _has_avx512() else (4, 2))
        if n and m:
            opts = [Opt(OptOps.UNROLL, 0, 8), n, m]
    if opts is None:
        return None
    k = k.copy()
    for opt in opts:
        k.apply_opt(opt)
    return k  # install()'s hook cuts it into per-core slices, as it does every kernel


def _loads(u) -> list | None:
    """The INDEX uops an elementwise expression reads, or None when it holds something else (a reduce, a range)."""
    from tinygrad.uop.ops import Ops
    if u.op is Ops.INDEX:
        return [u]
    if u.op in (Ops.REDUCE, Ops.RANGE):
        return None
    if not u.src:
        return [] if u.op is Ops.CONST else None
    found = []
    for src in u.src:
        loads = _loads(src)
        if loads is None:
            return None
        found += loads
    return found


def _split_over_threads(k) -> None:
    """Cut the kernel into per-core slices (tinygrad's THREAD opt), unless it is already cut.

    tinygrad's own heuristic wants 128K operations per slice, sized for slices called one by one from Python;
    with tinygpt.cpu_graph a slice costs about a microsecond, so medium kernels are worth cutting too.
    """
    from tinygrad.codegen.opt import KernelOptError, Opt, OptOps
    from tinygrad.helpers import prod
    from tinygrad.uop.ops import AxisType, resolve
    if not k.ren.has_threads or k.ren.global_max is None or any(o.op is OptOps.THREAD for o in k.applied_opts):
        return
    for threads in (32, 16, 12, 8, 6, 5, 4, 3, 2):
        if threads > k.ren.global_max[0] or resolve(prod(k.full_shape) // OPS_PER_THREAD < threads):
            continue
        for axis in k.axes_of(AxisType.WEAK):
            if k.full_shape[axis] % threads == 0:
                try:
                    k.apply_opt(Opt(OptOps.THREAD, axis, threads))
                    return
                except KernelOptError:
                    pass
                break
