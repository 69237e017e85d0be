"""Matrix products on the CPU as BLAS-style custom kernels (`matmul`), with their gradients.

tinygrad writes a matmul as a loop nest and lets its optimizer tile it; on the CPU that reaches 16-35 GFLOP/s per
AVX2 core where numpy's BLAS reaches ~90, and at the nanoGPT "baby GPT" size that gap is most of a training step. BLAS
gets there by copying ("packing") blocks of both operands into the order its inner kernel reads them, so the
inner kernel runs from the L1 cache; tinygrad's optimizer cannot express that copy. `matmul` therefore hands
tinygrad a finished kernel body, `cpu_gemm.c`, through `Tensor.custom_kernel`: tinygrad still schedules, compiles
(clang), caches and jits it like any kernel, and tinygpt.cpu_graph runs its slices on every core. The backward
pass is two more such products (`_backward`). Measured: 80-89 GFLOP/s per core, 0.87-0.96x OpenBLAS
(benchmarks/gemm_bench.py, docs/performance.md).

Only for float32 tensors on tinygrad's CPU device with the clang renderer and the pinned tinygrad version
(custom kernels are an alpha API there); `use_for` says when. `TINYGPT_CPU_GEMM=0` turns it off.
"""
import functools
import math
import os
import sys
from pathlib import Path

SOURCE = Path(__file__).with_name("cpu_gemm.c")
KERNEL_PREFIX = "gemm_"  # the kernels' names start with it (and so their DEBUG=2 lines)
MR, MC, NC = 6, 96, 256  # rows per register block; rows and columns per packed block
PANEL_BYTES = 16 << 10   # a packed panel of B (depth x 2 vectors), reread for every block of A rows: half an L1
MIN_FLOPS_PER_SLICE = 4 << 20     # a smaller product is not worth handing to another core


def use_for(*tensors) -> bool:
    """Whether `matmul` applies to these tensors: float32 on the CPU device compiled by clang, patches allowed."""
    from tinygrad import Device, dtypes
    from tinygpt import cpu_kernels
    if os.environ.get("TINYGPT_CPU_GEMM", "1") == "0" or not cpu_kernels.pinned_tinygrad():
        return False
    if any(t.dtype != dtypes.float32 or not isinstance(t.device, str) or t.device.split(":")[0] != "CPU"
           for t in tensors):
        return False
    return type(Device["CPU"].renderer).__name__ == "ClangRenderer"


def matmul(a, b, trans_a: bool = False, trans_b: bool = False):
    """a @ b for float32 CPU tensors of shape (..., M, K) and (..., K, N) with the same leading (batch) shape.

    `trans_a` says `a` is stored as (..., K, M) and used transposed (likewise `trans_b`: (..., N, K)); transposes
    cost nothing, as the packing reads any strides. Returns a new (..., M, N) tensor; differentiable.
    """
    from tinygrad import Tensor
    _declare_written_buffers()
    if a.ndim < 2 or a.shape[:-2] != b.shape[:-2]:
        raise ValueError(f"matmul needs matrices with the same batch shape, got {a.shape} and {b.shape}")
    M, K = (a.shape[-1], a.shape[-2]) if trans_a else (a.shape[-2], a.shape[-1])
    K2, N = (b.shape[-1], b.shape[-2]) if trans_b else (b.shape[-2], b.shape[-1])
    if K != K2:
        raise ValueError(f"matmul: inner sizes differ ({K} and {K2}) for {a.shape} and {b.shape}")
    batch = math.prod(a.shape[:-2])
    slices, vector_width = _slices(batch, M, N, K), _vector_width()
    spec = (batch, M, N, K, trans_a, trans_b, slices, vector_width)
    out = Tensor.empty(*a.shape[:-2], M, N, device=a.device)
    depth = _block_depth(vector_width)
    scratch = Tensor.empty(slices * (MC * depth + depth * NC), device=a.device)
    return out.custom_kernel(a, b, scratch, fxn=_kernel_builder(spec), grad_fxn=_backward(trans_a, trans_b))[0]


def _slices(batch: int, M: int, N: int, K: int) -> int:
    """How many slices (one per core at most) the product is cut into: whole matrices, else bands of rows."""
    from tinygrad.helpers import NUM_CPU_THREADS
    work = max(1, 2 * batch * M * N * K // MIN_FLOPS_PER_SLICE)
    limit = batch if batch >= NUM_CPU_THREADS.value else (M + MR - 1) // MR
    return max(1, min(NUM_CPU_THREADS.value, work, limit))


def _vector_width() -> int:
    """Floats per vector in the inner kernel, which holds MR x 2 vectors: 16 where AVX-512 gives 32 registers
    of 16 floats, else 8 (AVX2's 16 registers of 8; on ARM clang uses two 4-float NEON registers per vector)."""
    from tinygpt.cpu_kernels import _has_avx512
    return 16 if _has_avx512() else 8


def _block_depth(vector_width: int) -> int:
    """KC, the depth of a packed block: 256 with 8-float vectors, 128 with 16 (the panel of B stays 16 KB)."""
    return PANEL_BYTES // (4 * 2 * vector_width)


@functools.lru_cache(maxsize=None)
def _kernel_builder(spec: tuple):
    """The `fxn` for Tensor.custom_kernel: from the buffers' placeholders to the kernel's AST (a SINK)."""
    from tinygrad.dtype import dtypes
    from tinygrad.uop.ops import AxisType, KernelInfo, Ops, UOp
    batch, M, N, K, trans_a, trans_b, slices, _ = spec
    code = _source(spec)

    def build(out, a, b, scratch):
        def pointer(buffer):
            return buffer.flatten().index(0)
        slice_index = UOp.range(slices, 0, AxisType.THREAD)  # becomes tinygrad's core_id
        body = UOp(Ops.CUSTOM, dtypes.void, src=(pointer(out), pointer(a), pointer(b), pointer(scratch), slice_index),
                   arg=code)
        name = f"{KERNEL_PREFIX}{batch}x{M}x{N}x{K}{'_ta' if trans_a else ''}{'_tb' if trans_b else ''}"
        return body.end(slice_index).sink(arg=KernelInfo(name=name, opts_to_apply=()))
    return build


def _source(spec) -> str:
    """cpu_gemm.c with this product's sizes and strides filled in, as a format string for tinygrad's renderer."""
    batch, M, N, K, trans_a, trans_b, slices, vector_width = spec
    values = dict(M=M, N=N, K=K, BATCH=batch, SLICES=slices, MR=MR, VW=vector_width,
                  MC=MC, KC=_block_depth(vector_width), NC=NC, SA_B=M * K, SA_M=1 if trans_a else K, SA_K=M if trans_a else 1,
                  SB_B=K * N, SB_K=1 if trans_b else N, SB_N=K if trans_b else 1)
    text = SOURCE.read_text().replace("{", "{{").replace("}", "}}")  # literal braces for str.format
    for name, value in values.items():
        text = text.replace(f"@{name}@", str(value))
    for position, name in enumerate(("OUT", "A", "B", "SCRATCH", "SLICE")):
        text = text.replace(f"@{name}@", f"({{{position}}})")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))


def _declare_written_buffers() -> None:
    """Tell tinygrad (once per process) that a gemm kernel writes its output and scratch buffers.

    tinygrad learns what a kernel writes from its STORE ops, and a gemm writes from C code (an Ops.CUSTOM
    statement), so it would report nothing. TinyJit copies a jitted function's input before a replay writes it, as
    when the function's last output is fed back in: without this the gemm would read the very buffer it writes.
    """
    from tinygrad.engine import jit, realize
    from tinygrad.uop.ops import Ops
    original = realize.get_call_outs_ins
    if getattr(original, "declares_gemm_writes", False):
        return

    def get_call_outs_ins(call):
        outs, ins = original(call)
        program = call.src[0]
        if not outs and program.op is Ops.PROGRAM and program.arg.name.startswith(KERNEL_PREFIX):
            return (0, 3), (1, 2)  # the call's buffers: out, a, b, scratch
        return outs, ins
    get_call_outs_ins.declares_gemm_writes = True
    for module in (realize, jit, sys.modules.get("tinygrad.runtime.support.hcq2")):  # each imported it by name
        if module is not None and getattr(module, "get_call_outs_ins", None) is original:
            module.get_call_outs_ins = get_call_outs_ins


def _backward(trans_a: bool, trans_b: bool):
    """The gradient function: out = a @ b gives grad_a = grad @ b^T and grad_b = a^T @ grad, in a's and b's
    stored layouts, each again one `matmul`."""
    def grad_fxn(grad, call):
        from tinygrad import Tensor
        _, _, a, b, _ = call.src
        g, a, b = Tensor(grad), Tensor(a), Tensor(b)
        grad_a = matmul(b, g, trans_a=trans_b, trans_b=True) if trans_a else matmul(g, b, trans_b=not trans_b)
        grad_b = matmul(g, a, trans_a=True, trans_b=trans_a) if trans_b else matmul(a, g, trans_a=not trans_a)
        return None, grad_a.uop, grad_b.uop, None
    return grad_fxn
