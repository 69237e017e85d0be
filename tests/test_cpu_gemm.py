"""tinygpt.cpu_gemm: BLAS-style CPU matmul kernels equal numpy's products and gradients, and the model uses them."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tinygrad import Device, Tensor, dtypes

from tinygpt import cpu_gemm

pytestmark = pytest.mark.skipif(Device.DEFAULT != "CPU" or not cpu_gemm.use_for(Tensor.zeros(1)),
                                reason="cpu_gemm applies to tinygrad's CPU device with clang and the pinned tinygrad")


def stored(x: np.ndarray, transposed: bool) -> Tensor:
    """x as a Tensor, kept in transposed storage when asked (what matmul's trans_a / trans_b describe)."""
    return Tensor(np.ascontiguousarray(np.swapaxes(x, -1, -2)) if transposed else x)


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("batch,M,N,K", [
    ((), 300, 300, 300),    # several K blocks (256) and N blocks (256); bands of rows on two cores
    ((4,), 100, 100, 100),  # whole matrices per core
    ((2, 3), 7, 33, 5),     # edges: no full register block anywhere
])
def test_matmul_equals_numpy(batch, M, N, K, trans_a, trans_b):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((*batch, M, K)).astype(np.float32)
    b = rng.standard_normal((*batch, K, N)).astype(np.float32)
    out = cpu_gemm.matmul(stored(a, trans_a), stored(b, trans_b), trans_a, trans_b)
    assert out.shape == (*batch, M, N)
    np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-4, atol=1e-4)


@settings(max_examples=12, deadline=None)
@given(M=st.integers(1, 40), N=st.integers(1, 40), K=st.integers(1, 40), trans_a=st.booleans(),
       trans_b=st.booleans())
def test_matmul_any_small_shape(M, N, K, trans_a, trans_b):
    rng = np.random.default_rng(M * 10007 + N * 101 + K)
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    out = cpu_gemm.matmul(stored(a, trans_a), stored(b, trans_b), trans_a, trans_b).numpy()
    np.testing.assert_allclose(out, a @ b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("vector_width", [4, 16])
def test_other_vector_widths(monkeypatch, vector_width):
    """The inner kernel for AVX-512 (16 floats per vector) and 4-float vectors: same products (clang compiles
    any width for any CPU, so both run here whatever this machine has)."""
    monkeypatch.setattr(cpu_gemm, "_vector_width", lambda: vector_width)
    rng = np.random.default_rng(4)
    for M, N, K, trans_b in [(300, 100, 270, True), (13, 45, 7, False)]:
        a, b = rng.standard_normal((M, K)).astype(np.float32), rng.standard_normal((K, N)).astype(np.float32)
        out = cpu_gemm.matmul(Tensor(a), stored(b, trans_b), trans_b=trans_b).numpy()
        np.testing.assert_allclose(out, a @ b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_matmul_gradients_equal_numpy(trans_a, trans_b):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 70, 30)).astype(np.float32), rng.standard_normal((2, 30, 20)).astype(np.float32)
    weights = rng.standard_normal((2, 70, 20)).astype(np.float32)
    ta, tb = stored(a, trans_a), stored(b, trans_b)
    ta.requires_grad, tb.requires_grad = True, True
    (cpu_gemm.matmul(ta, tb, trans_a, trans_b) * Tensor(weights)).sum().backward()
    grad_a, grad_b = weights @ np.swapaxes(b, -1, -2), np.swapaxes(a, -1, -2) @ weights
    np.testing.assert_allclose(ta.grad.numpy(), np.swapaxes(grad_a, -1, -2) if trans_a else grad_a, atol=1e-4)
    np.testing.assert_allclose(tb.grad.numpy(), np.swapaxes(grad_b, -1, -2) if trans_b else grad_b, atol=1e-4)


@pytest.mark.parametrize("weight_first", [False, True])
def test_jit_output_fed_back_as_input(weight_first):
    """y = f(y) with a TinyJit: tinygrad must know the gemm writes its output, or the replay reads the buffer it
    is writing (N > 256 needs two column blocks of the packed operand; weight @ y splits y over two cores)."""
    from tinygrad import TinyJit
    rng = np.random.default_rng(5)
    n = 300
    w_np = (rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32)
    w = Tensor(w_np).realize()
    step = TinyJit(lambda x: (cpu_gemm.matmul(w, x) if weight_first else cpu_gemm.matmul(x, w)).realize())
    expected = rng.standard_normal((n, n)).astype(np.float32)
    y = Tensor(expected).realize()
    for _ in range(5):
        y = step(y)
        expected = w_np @ expected if weight_first else expected @ w_np
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-3, atol=1e-4)


def test_matmul_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="inner sizes differ"):
        cpu_gemm.matmul(Tensor.zeros(4, 3), Tensor.zeros(5, 2))
    with pytest.raises(ValueError, match="same batch shape"):
        cpu_gemm.matmul(Tensor.zeros(2, 4, 3), Tensor.zeros(3, 3, 2))


def test_use_for_only_float32_and_can_be_turned_off(monkeypatch):
    assert cpu_gemm.use_for(Tensor.zeros(2, 2))
    assert not cpu_gemm.use_for(Tensor.zeros(2, 2, dtype=dtypes.half))
    monkeypatch.setenv("TINYGPT_CPU_GEMM", "0")
    assert not cpu_gemm.use_for(Tensor.zeros(2, 2))


def test_model_uses_gemm_and_matches_tinygrad_matmul(monkeypatch):
    """The GPT's linear layers and attention run through cpu_gemm for a batch of >= 64 tokens, with the same
    logits and gradients as tinygrad's own matmuls (TINYGPT_CPU_GEMM=0) up to float rounding."""
    from tinygrad.helpers import Context

    from tinygpt.config import GPTConfig
    from tinygpt.model import GPT
    Tensor.manual_seed(3)
    model = GPT(GPTConfig(vocab_size=50, n_layer=1, n_head=2, n_embd=32, block_size=64))
    idx = Tensor(np.random.default_rng(2).integers(0, 50, (2, 64)).astype(np.int32))
    targets = Tensor(np.random.default_rng(3).integers(0, 50, (2, 64)).astype(np.int32))

    def loss_and_grad(gemm: str):
        monkeypatch.setenv("TINYGPT_CPU_GEMM", gemm)
        weight = model.h[0].mlp.c_fc.weight
        weight.grad = None
        weight.requires_grad = True
        with Context(TRAINING=1):
            logits = model(idx)
            loss = logits.sparse_categorical_crossentropy(targets)
            loss.backward()
        kernels = [u.arg.name for u in logits.uop.toposort() if u.op.name == "SINK" and hasattr(u.arg, "name")]
        return logits.numpy(), weight.grad.numpy(), kernels

    logits_gemm, grad_gemm, kernels = loss_and_grad("1")
    logits_ref, grad_ref, ref_kernels = loss_and_grad("0")
    assert any(name.startswith("gemm_") for name in kernels)
    assert not any(name.startswith("gemm_") for name in ref_kernels)
    np.testing.assert_allclose(logits_gemm, logits_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grad_gemm, grad_ref, rtol=1e-3, atol=1e-6)
