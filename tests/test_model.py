"""The GPT model: shapes, causality, KV cache == full forward, weight tying, config checks."""
import numpy as np
import pytest

from tinygpt.config import GPTConfig
from tinygpt.errors import TinyGPTError

# One tiny shape for every model test, so tinygrad's compiled kernels are shared across tests.
V, T = 260, 12  # the vocabulary of every tiny test model (compiled kernels are shared across tests)


def tiny_config(pos="learned", **kw) -> GPTConfig:
    return GPTConfig(vocab_size=V, n_layer=2, n_head=2, n_embd=16, block_size=16, pos=pos, **kw)


def tokens(seed=0, batch=2, length=T):
    return np.random.default_rng(seed).integers(0, V, (batch, length)).astype(np.int32)


@pytest.fixture(scope="module", params=["learned", "rope"])
def model(request):
    from tinygrad import Tensor
    from tinygpt.model import GPT
    Tensor.manual_seed(0)
    return GPT(tiny_config(request.param))


def logits_of(model, idx):
    from tinygrad import Tensor
    return model(Tensor(idx)).numpy()


def test_logits_shape_and_dtype(model):
    out = logits_of(model, tokens())
    assert out.shape == (2, T, V) and out.dtype == np.float32
    assert np.isfinite(out).all()


def test_future_tokens_do_not_change_past_logits(model):
    a = tokens(1)
    b = a.copy()
    b[:, 7:] = (b[:, 7:] + 5) % V  # change positions 7.. only
    la, lb = logits_of(model, a), logits_of(model, b)
    np.testing.assert_allclose(la[:, :7], lb[:, :7], atol=1e-5)
    assert np.abs(la[:, 7:] - lb[:, 7:]).max() > 1e-4  # and the change is visible where it should be


def test_kv_cache_under_tinyjit_matches_full_forward(model):
    from tinygrad import Tensor, TinyJit, UOp
    idx = tokens(2, batch=1)
    full = logits_of(model, idx)
    model.reset_cache(1)
    prefill = model.forward_cached(Tensor(idx[:, :5]), 0).numpy()
    step = TinyJit(lambda x, pos: model.forward_cached(x, pos).realize())
    start_pos = UOp.variable("start_pos", 1, model.config.block_size - 1)
    pieces = [prefill] + [step(Tensor(idx[:, i:i + 1]), start_pos.bind(i)).numpy() for i in range(5, T)]
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, atol=1e-4)
    # a reset starts a new sequence in the same buffers: the captured JIT keeps working on the new sequence
    other = tokens(3, batch=1)
    model.reset_cache(1)
    model.forward_cached(Tensor(other[:, :5]), 0).realize()
    got = [step(Tensor(other[:, i:i + 1]), start_pos.bind(i)).numpy() for i in range(5, T)]
    np.testing.assert_allclose(np.concatenate(got, axis=1), logits_of(model, other)[:, 5:], atol=1e-4)


def test_parameters_are_tied_and_initialised_like_gpt2(model):
    names = model.state_dict().keys()
    assert "wte.weight" in names and not any("lm_head" in n or "_cache" in n or "_rope" in n for n in names)
    assert ("wpe.weight" in names) == (model.config.pos == "learned")
    c = model.config
    per_block = 4 * c.n_embd + (3 * c.n_embd * c.n_embd + 3 * c.n_embd) + (c.n_embd * c.n_embd + c.n_embd) \
        + (4 * c.n_embd * c.n_embd + 4 * c.n_embd) + (4 * c.n_embd * c.n_embd + c.n_embd)
    expected = V * c.n_embd + (c.block_size * c.n_embd if c.pos == "learned" else 0) + c.n_layer * per_block + 2 * c.n_embd
    assert model.num_params() == expected
    proj = model.h[0].mlp.c_proj.weight.numpy().std()
    fc = model.h[0].mlp.c_fc.weight.numpy().std()
    assert abs(fc - 0.02) < 0.003 and abs(proj - 0.02 / np.sqrt(2 * c.n_layer)) < 0.003


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_embd=30, n_head=4), "n_embd (30) must be divisible by n_head (4)"),
    (dict(pos="absolute"), "pos must be one of learned, rope"),
    (dict(dropout=1.5), "dropout must be in [0, 1)"),
    (dict(n_layer=0), "n_layer must be a positive integer"),
])
def test_bad_config_is_one_clear_line(kwargs, message):
    base = dict(vocab_size=V, n_layer=2, n_head=2, n_embd=16, block_size=16)
    with pytest.raises(TinyGPTError) as e:
        GPTConfig(**{**base, **kwargs})
    assert message in str(e.value) and "\n" not in str(e.value)


def test_config_round_trips_through_a_dict():
    c = tiny_config("rope", dropout=0.1)
    assert GPTConfig.from_dict(c.to_dict()) == c
    with pytest.raises(TinyGPTError, match="missing n_head"):
        GPTConfig.from_dict({k: v for k, v in c.to_dict().items() if k != "n_head"})


def test_weight_gradients_summed_in_chunks_equal_the_plain_matmul():
    """chunked_matmul: the same forward and the same gradients as x @ w, with the weight gradient in chunks."""
    from tinygrad import Context, Tensor
    from tinygpt.model import _token_chunks, chunked_matmul
    assert _token_chunks(8 * 256, 384, 1536) == 4  # config B's MLP: 2048 tokens, partials capped at 16 MB
    assert _token_chunks(768, 128, 512) == 1  # a small batch's output gradient fits in cache: one kernel
    rng = np.random.default_rng(0)
    x_np, w_np, g_np = (rng.standard_normal(s, dtype=np.float32) for s in ((4, 512, 96), (96, 1200), (4, 512, 1200)))
    results = []
    for chunked in (True, False):
        x, w = Tensor(x_np), Tensor(w_np)
        with Context(TRAINING=1):
            y = chunked_matmul(x, w) if chunked else x @ w
            (y * Tensor(g_np)).sum().backward()
        results.append((y.numpy(), x.grad.numpy(), w.grad.numpy()))
    assert _token_chunks(4 * 512, 96, 1200) > 1  # the chunked path really ran
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(results[0][2], np.einsum("bti,bto->io", x_np, g_np), rtol=1e-4, atol=1e-2)
