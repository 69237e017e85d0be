"""tinygpt.cpu_graph: jitted CPU kernels replayed from C give exactly the numbers tinygrad's own replay gives."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from tinygpt import cpu_graph


pytestmark = pytest.mark.skipif(not cpu_graph.install(), reason="needs tinygrad 0.14.0 on its CPU device with clang")


def test_a_jitted_function_runs_as_a_graph_with_sliced_kernels_and_matches_numpy():
    from tinygrad import Tensor, TinyJit
    from tinygrad.engine.realize import graph_cache
    from tinygrad.helpers import Context
    rng = np.random.default_rng(0)
    w = Tensor(rng.standard_normal((256, 256), dtype=np.float32)).realize()

    @TinyJit
    def two_matmuls(x):
        return ((x @ w).relu().contiguous() @ w).realize()

    with Context(NUM_CPU_THREADS=2):
        for _ in range(4):  # a new input each call: the graph must follow it
            x = rng.standard_normal((128, 256), dtype=np.float32)
            out = two_matmuls(Tensor(x).realize()).numpy()
            np.testing.assert_allclose(out, np.maximum(x @ w.numpy(), 0) @ w.numpy(), rtol=1e-4, atol=1e-3)
    graphs = [g for g in graph_cache.values() if isinstance(g, cpu_graph.CPUGraph)]
    assert graphs, "TinyJit did not batch the kernels into a CPUGraph"
    assert any((g.table[:, 2] > 1).any() for g in graphs), "no kernel was split into slices"


SCRIPT = """
import json, os, sys
sys.path.insert(0, {repo!r})
import numpy as np
from tinygrad import Device, Tensor
from tinygpt.config import GPTConfig
from tinygpt.generation import forward_for
from tinygpt.model import GPT
from tinygpt.optim import make_optimizer
from tinygpt.train import TrainArgs, make_train_step
Tensor.manual_seed(3)
model = GPT(GPTConfig(vocab_size=300, block_size=32, n_layer=2, n_head=2, n_embd=64))
params = model.state_dict()
opt = make_optimizer(params, 3e-3)
Tensor.realize(*params.values())
step = make_train_step(model, opt, TrainArgs(batch_size=8, accum=1, grad_clip=1.0), Device.DEFAULT)
rng = np.random.default_rng(1)
losses = []
for _ in range(4):  # a different batch every step
    x = rng.integers(0, 300, (1, 8, 33))
    losses.append(step(Tensor(x[..., :-1]), Tensor(x[..., 1:]), Tensor([3e-3]))[0].item())
forward = forward_for(model, True)
window, logits = [5, 6, 7], []
for _ in range(6):  # the KV cache path: a jitted step with a moving position variable
    out = forward.next_logits(window)
    logits.append(out.tolist())
    window = window + [int(np.argmax(out))]
from tinygrad.engine.realize import graph_cache
from tinygpt.cpu_graph import CPUGraph
graphs = sum(isinstance(g, CPUGraph) for g in graph_cache.values())
child = None
if os.environ.get("FORK_CHECK") == "1":  # a forked child has no helper threads: it must start its own
    read, write = os.pipe()
    if (pid := os.fork()) == 0:
        os.close(read)
        x = rng.integers(0, 300, (1, 8, 33))
        loss = step(Tensor(x[..., :-1]), Tensor(x[..., 1:]), Tensor([3e-3]))[0].item()
        os.write(write, json.dumps(loss).encode())
        os._exit(0)
    os.close(write)
    child = json.loads(os.read(read, 100))
    os.waitpid(pid, 0)
print(json.dumps([losses, logits, graphs, child]))
"""


def run(graph_on: bool, fork_check: bool = False):
    env = dict(os.environ, TINYGPT_CPU_GRAPH="1" if graph_on else "0", FORK_CHECK="1" if fork_check else "0")
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(repo=str(REPO))], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_training_and_cached_generation_are_bit_identical_with_and_without_the_graph():
    losses, logits, graphs, child = run(True, fork_check=True)
    default_losses, default_logits, default_graphs, _ = run(False)
    assert graphs > 0 and default_graphs == 0
    assert losses[-1] < losses[0]  # it trains
    assert losses == default_losses
    assert logits == default_logits
    assert isinstance(child, float) and np.isfinite(child)  # the forked child ran its step and did not hang


def test_a_compiler_that_fails_leaves_tinygrads_own_replay_with_a_one_line_note(tmp_path):
    script = f"import sys; sys.path.insert(0, {str(REPO)!r}); from tinygpt import cpu_graph; print(cpu_graph.install())"
    env = dict(os.environ, CC="false", TINYGPT_CACHE_DIR=str(tmp_path))  # `false` exits 1: the build fails
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False"
    assert out.stderr.count("\n") == 1 and "could not build cpu_graph-" in out.stderr
    assert not list(tmp_path.rglob("*.so"))  # nothing half-built left behind
