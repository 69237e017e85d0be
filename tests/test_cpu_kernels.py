"""tinygpt.cpu_kernels: register-blocked CPU matmuls give the same numbers as numpy and as tinygrad's own kernels."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from tinygpt import cpu_kernels

pytestmark = pytest.mark.skipif(not cpu_kernels.install(), reason="needs tinygrad 0.14.0 (the patched version)")


def on_cpu():
    from tinygrad import Device
    return Device.DEFAULT.split(":")[0] == "CPU"


@pytest.mark.parametrize("kind,m,k,n", [("a@b", 96, 64, 48), ("a.T@b", 64, 96, 32), ("a@b.T", 48, 64, 96),
                                        ("a@b", 7, 13, 5), ("a.T@b", 33, 17, 16), ("a@b.T", 16, 24, 8)])
def test_matmuls_equal_numpy(kind, m, k, n):
    from tinygrad import Tensor
    rng = np.random.default_rng(m * k + n)
    a = rng.standard_normal((k, m) if kind == "a.T@b" else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if kind == "a@b.T" else (k, n)).astype(np.float32)
    expected = {"a@b": lambda: a @ b, "a.T@b": lambda: a.T @ b, "a@b.T": lambda: a @ b.T}[kind]()
    ta, tb = Tensor(a), Tensor(b)
    got = {"a@b": lambda: ta @ tb, "a.T@b": lambda: ta.T @ tb, "a@b.T": lambda: ta @ tb.T}[kind]().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_the_blocking_rule_fires_for_a_cpu_matmul(monkeypatch):
    if not on_cpu():
        pytest.skip("the rule only touches kernels for the CPU's clang renderer")
    from tinygrad import Context, Tensor
    blocked = []
    rule = cpu_kernels.matmul_opts

    def counting(k):
        result = rule(k)
        blocked.append([str(opt) for opt in result.applied_opts] if result is not None else None)
        return result

    monkeypatch.setattr(cpu_kernels, "matmul_opts", counting)
    a, b = Tensor.ones(64, 80).contiguous().realize(), Tensor.ones(80, 112).contiguous().realize()
    from tinygrad.codegen import to_program_cache
    compiled = dict(to_program_cache)
    to_program_cache.clear()  # compile the matmul now, even if this process (or its kernel cache file) has it
    try:
        with Context(PARALLEL=0):  # compile here, where the counting rule is
            out = (a @ b).numpy()
    finally:
        to_program_cache.update(compiled)
    assert (out == 80).all()
    hits = [opts for opts in blocked if opts]
    assert hits and any("UPCAST" in opt and "arg=16" in opt for opt in hits[0]), blocked


TRAIN_SCRIPT = """
import json, sys
sys.path.insert(0, {repo!r})
from tinygrad import Tensor
from tinygpt.config import GPTConfig
from tinygpt.model import GPT
from tinygpt.optim import make_optimizer
from tinygpt.train import TrainArgs, make_train_step
from tinygrad import Device
Tensor.manual_seed(3)
model = GPT(GPTConfig(vocab_size=300, block_size=16, n_layer=1, n_head=2, n_embd=32))
params = model.state_dict()
opt = make_optimizer(params, 3e-3)
Tensor.realize(*params.values())
step = make_train_step(model, opt, TrainArgs(batch_size=4, accum=1, grad_clip=1.0), Device.DEFAULT)
x = Tensor([[[(7 * i + 3 * j) % 300 for j in range(16)] for i in range(4)]])
y = Tensor([[[(7 * i + 3 * j + 1) % 300 for j in range(16)] for i in range(4)]])
losses = [step(x, y, Tensor([3e-3]))[0].item() for _ in range(4)]
print(json.dumps(losses))
"""


def run_training(kernels_on: bool) -> list[float]:
    env = dict(os.environ, TINYGPT_CPU_KERNELS="1" if kernels_on else "0", PARALLEL="0")
    out = subprocess.run([sys.executable, "-c", TRAIN_SCRIPT.format(repo=str(REPO))], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_training_steps_match_tinygrads_default_kernels():
    fast, default = run_training(True), run_training(False)
    assert fast[-1] < fast[0]  # it trains
    np.testing.assert_allclose(fast, default, rtol=1e-5)


def test_install_restarts_a_compile_pool_started_before_it():
    """A pool started before install() would compile unpatched kernels, and hang once it recycles a worker (its
    initializer is looked up by name, which install() replaced). install() closes it; the next one is patched."""
    script = ("from tinygrad.engine import worker\nassert worker.get_worker_pool() is not None\n"
              "from tinygpt import cpu_kernels\nassert cpu_kernels.install()\nassert worker.worker_pool is None\n"
              "assert worker.get_worker_pool() is not None\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, PARALLEL="2"), capture_output=True,
                         text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
