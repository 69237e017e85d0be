"""Matmul speed on the CPU: tinygpt.cpu_gemm vs tinygrad's own kernels vs numpy's BLAS, same run.

    .venv/bin/python benchmarks/gemm_bench.py                        # every core
    NUM_CPU_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/gemm_bench.py --out /tmp/one_core.json

The products are config B's (nanoGPT's baby GPT, 8 x 256 tokens): the MLP's forward, a backward input gradient
and a weight gradient, and the attention scores. Each side is a TinyJit of two products (two kernels, so
tinygpt.cpu_graph replays them and runs their slices on every core); GFLOP/s counts 2*M*N*K per product.
tinygrad's side uses tinygpt's patched kernels (tinygpt/cpu_kernels.py), as the model did before cpu_gemm.
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

PRODUCTS = [  # name, batch, M, N, K, trans_a, trans_b
    ("MLP up, x @ W^T", 1, 2048, 1536, 384, False, True),
    ("MLP down, input gradient dy @ W", 1, 2048, 384, 1536, False, False),
    ("MLP up, weight gradient x^T @ dy", 1, 384, 1536, 2048, True, False),
    ("attention scores q @ k^T (48 heads)", 48, 256, 256, 64, False, True),
]


def timed(fn, repeats: int) -> float:
    """Median seconds of fn() over `repeats` calls, after three warm-up calls (TinyJit captures on the second)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", default=str(HERE / "results" / "gemm_bench.json"))
    args = parser.parse_args()
    import numpy as np
    from tinygrad import Tensor, TinyJit
    from tinygrad.helpers import NUM_CPU_THREADS

    from tinygpt import cpu_gemm, cpu_graph, cpu_kernels
    cpu_kernels.install()
    cpu_graph.install()
    rows = []
    print(f"tinygrad threads {NUM_CPU_THREADS.value}; numpy/BLAS threads: OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'all')}")
    print(f"{'product':40s} {'M x N x K':>18s} {'cpu_gemm':>9s} {'tinygrad':>9s} {'numpy':>9s}  GFLOP/s")
    for name, batch, M, N, K, ta, tb in PRODUCTS:
        lead = (batch,) if batch > 1 else ()
        a, a2 = (Tensor.rand(*lead, *((K, M) if ta else (M, K))).realize() for _ in range(2))
        b, b2 = (Tensor.rand(*lead, *((N, K) if tb else (K, N))).realize() for _ in range(2))

        def plain(x, y):
            return (x.transpose(-2, -1) if ta else x) @ (y.transpose(-2, -1) if tb else y)

        ours = TinyJit(lambda w, x, y, z: Tensor.realize(cpu_gemm.matmul(w, x, ta, tb), cpu_gemm.matmul(y, z, ta, tb)))
        theirs = TinyJit(lambda w, x, y, z: Tensor.realize(plain(w, x), plain(y, z)))

        def logical(t, transposed):  # the numpy array of a stored operand, as the product uses it
            return np.swapaxes(t.numpy(), -1, -2) if transposed else t.numpy()
        an, bn, an2, bn2 = logical(a, ta), logical(b, tb), logical(a2, ta), logical(b2, tb)
        flops = 2 * 2 * batch * M * N * K  # two products per call
        result = {"product": name, "batch": batch, "M": M, "N": N, "K": K,
                  "cpu_gemm": flops / timed(lambda: ours(a, b, a2, b2), args.repeats) / 1e9,
                  "tinygrad": flops / timed(lambda: theirs(a, b, a2, b2), args.repeats) / 1e9,
                  "numpy": flops / timed(lambda: (an @ bn, an2 @ bn2), args.repeats) / 1e9}
        assert np.allclose(cpu_gemm.matmul(a, b, ta, tb).numpy(), an @ bn, rtol=1e-3, atol=1e-3)
        rows.append(result)
        shape = f"{batch}x{M}x{N}x{K}" if batch > 1 else f"{M}x{N}x{K}"
        print(f"{name:40s} {shape:>18s} {result['cpu_gemm']:9.1f} {result['tinygrad']:9.1f} {result['numpy']:9.1f}")
    meta = {"tinygrad_threads": NUM_CPU_THREADS.value, "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            "machine": platform.machine(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "results": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
