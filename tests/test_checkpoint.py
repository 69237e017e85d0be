"""Run directories: save/load gives identical logits; damaged files give one clear line naming the file."""
import json

import numpy as np
import pytest

from tinygpt import checkpoint as ckpt
from tinygpt.config import GPTConfig
from tinygpt.errors import TinyGPTError

V = 260  # 256 bytes + 4 merges: the vocabulary of every tiny test run (kernels are shared across tests)


def tiny_config(**kw) -> GPTConfig:
    return GPTConfig(vocab_size=V, n_layer=2, n_head=2, n_embd=16, block_size=16, **kw)


def tiny_tokenizer():
    from bpe import Tokenizer
    return Tokenizer.train("the cat sat on the mat, the end\n" * 8, V)


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A run directory written by the checkpoint functions (no training needed), plus the model's logits."""
    from tinygrad import Tensor
    from tinygpt.model import GPT
    from tinygpt.optim import make_optimizer, optimizer_state
    run = tmp_path_factory.mktemp("run")
    Tensor.manual_seed(3)
    config = tiny_config(pos="rope")
    model = GPT(config)
    Tensor.realize(*model.parameters())
    opt = make_optimizer(model.state_dict(), lr=1e-3)
    ckpt.save_run_config(run, config, {"steps": 5}, {"corpus": ["x.txt"], "docs": False})
    ckpt.save_tokenizer(run, tiny_tokenizer())
    ckpt.save_checkpoint(run, model, optimizer_state(opt), {"step": 5})
    idx = np.random.default_rng(0).integers(0, V, (2, 12)).astype(np.int32)
    return run, idx, model(Tensor(idx)).numpy()


def copy_run(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_save_then_load_gives_identical_logits(saved_run):
    from tinygrad import Tensor
    import tinygpt
    run, idx, logits = saved_run
    model, tok = tinygpt.load(run)
    np.testing.assert_array_equal(model(Tensor(idx)).numpy(), logits)
    assert tok.vocab_size == V and model.config == tiny_config(pos="rope")
    assert sorted(p.name for p in run.iterdir()) == sorted(
        [ckpt.CONFIG, ckpt.TOKENIZER, ckpt.MODEL, ckpt.OPTIMIZER, ckpt.STATE])  # no temporary files left


def test_safetensors_round_trip_is_readable_by_the_reference_library(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([7, 8], dtype=np.uint32)}
    ckpt.write_safetensors(tmp_path / "x.safetensors", arrays, {"step": 3})
    ref = safetensors_numpy.load_file(str(tmp_path / "x.safetensors"))
    ours, meta = ckpt.read_safetensors(tmp_path / "x.safetensors")
    for k in arrays:
        np.testing.assert_array_equal(ref[k], arrays[k])
        np.testing.assert_array_equal(ours[k], arrays[k])
    assert meta == {"step": "3"}


@pytest.mark.parametrize("damage, message", [
    (lambda run: (run / ckpt.MODEL).write_bytes((run / ckpt.MODEL).read_bytes()[:-100]), "model.safetensors: corrupt or truncated"),
    (lambda run: (run / ckpt.MODEL).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!"), "model.safetensors: corrupt or truncated"),
    (lambda run: (run / ckpt.MODEL).unlink(), "model.safetensors: file missing"),
    (lambda run: (run / ckpt.CONFIG).write_text("{ half a json"), "config.json: not valid JSON"),
    (lambda run: (run / ckpt.TOKENIZER).unlink(), "tokenizer.json: file missing"),
    (lambda run: (run / ckpt.CONFIG).write_text(json.dumps({"model": {**tiny_config(pos="rope").to_dict(), "n_embd": 32}})),
     "has shape"),
    (lambda run: (run / ckpt.STATE).write_text(json.dumps({"step": 9})), "holds step 5 but state.json says step 9"),
])
def test_a_damaged_run_directory_is_one_clear_line(saved_run, tmp_path, damage, message):
    run = copy_run(saved_run[0], tmp_path / "run")
    damage(run)
    with pytest.raises(TinyGPTError) as e:
        ckpt.load_run(run)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_missing_run_directory(tmp_path):
    with pytest.raises(TinyGPTError, match="no such run directory"):
        ckpt.load_run(tmp_path / "nope")


def test_metrics_truncate_drops_steps_after_the_checkpoint(tmp_path):
    for step in (1, 2, 3, 4):
        ckpt.append_metrics(tmp_path, {"step": step, "loss": 1.0})
    with open(tmp_path / ckpt.METRICS, "a") as f:
        f.write('{"step": 5, "lo')  # a line cut by a crash
    ckpt.truncate_metrics(tmp_path, 2)
    assert [r["step"] for r in ckpt.read_metrics(tmp_path)] == [1, 2]
