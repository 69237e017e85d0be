"""Keep tinygrad's kernel-compiling worker processes out of our process group.

tinygrad compiles kernels in a pool of worker processes. By default they share the trainer's process group, so a
SIGTERM sent to the whole group (`timeout`, `kill -- -PGID`, a batch scheduler) kills them in the middle of a
compile, and the trainer, which catches SIGTERM to write a checkpoint, then waits forever for their results.
Workers in a process group of their own are stopped only by their parent (pool.terminate), or exit when it dies.
"""
import atexit
import multiprocessing
import os


def _init_worker() -> None:
    os.setpgrp()
    from tinygrad.engine import worker
    from tinygpt import cpu_kernels
    cpu_kernels.install()  # a fresh process: patch it too, or kernels it compiles miss the faster CPU matmuls
    worker._init_worker()  # tinygrad's own set-up: no device access, ignore Ctrl-C


def install() -> None:
    """Create tinygrad's compile pool now, with workers in their own process group (no-op when it exists or is off)."""
    from tinygrad.engine import worker
    from tinygrad.helpers import PARALLEL, getenv
    if worker.worker_pool is not None or PARALLEL.value == 0 or multiprocessing.current_process().daemon:
        return
    pool = worker._WorkerContext().Pool(PARALLEL.value, _init_worker, (), getenv("BEAM_MAX_TASKS_PER_CHILD", 16))
    worker.worker_pool = pool
    atexit.register(pool.close)
