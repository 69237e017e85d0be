"""Feeding a jitted function without tinygrad's per-call scheduling: inputs written in place, outputs read in place.

Passing `Tensor(numpy_array)` to a TinyJit-compiled function costs tinygrad ~1 ms per tensor (a new buffer, a copy
scheduled and realized), and `.numpy()` / `.item()` on a result schedules a copy back. For a small model that is as
long as the arithmetic of a whole generated token. On the CPU, tinygrad's buffers are host memory: `JitInput` keeps
one realized tensor per input and writes each new value straight into its memory, and `to_numpy` copies an
output's memory. Other devices take tinygrad's ordinary path.
"""
import numpy as np
from tinygrad import Tensor


def shares_host_memory(device: str) -> bool:
    """Whether tensors on `device` live in this process's memory (tinygrad's CPU device)."""
    return device.split(":")[0] == "CPU"


class JitInput:
    """One input of a jitted function: `jit_input(array)` returns a realized Tensor holding `array`.

    On the CPU it is the same tensor every call (rewritten in place; a new one when the shape or dtype changes),
    so the function's earlier output that read it must not be needed after the next call. Elsewhere it is a new
    `Tensor(array)`.
    """

    def __init__(self, device: str):
        self.device, self.tensor, self.memory = device, None, None

    def __call__(self, values) -> Tensor:
        values = np.asarray(values)
        if not shares_host_memory(self.device):
            return Tensor(values, device=self.device)
        if self.memory is None or self.memory.shape != values.shape or self.memory.dtype != values.dtype:
            self.tensor = Tensor(values, device=self.device).contiguous().realize()
            view = self.tensor.uop.buffer.as_memoryview(force_zero_copy=True)
            self.memory = np.frombuffer(view, dtype=values.dtype).reshape(values.shape)
        else:
            self.memory[...] = values
        return self.tensor


def to_numpy(out: Tensor) -> np.ndarray:
    """A jitted function's output as a numpy array: on the CPU a copy of its memory (the next call overwrites it)."""
    if shares_host_memory(out.device) and out.uop.is_realized:
        view = out.uop.buffer.as_memoryview(force_zero_copy=True)
        return np.frombuffer(view, dtype=np.dtype(out.dtype.fmt)).reshape(out.shape).copy()
    return out.numpy()
