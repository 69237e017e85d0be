"""The learner's path: demo end to end, exact eval (bits per byte by hand), explain == the model, plot, sweep.

One tiny demo run (a few steps of a one-layer model) is shared by the tests that need a trained run directory.
"""
import json
import math
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from cli.tinygpt_cli import main

TINY = dict(n_layer=1, n_head=2, n_embd=32, block_size=16)  # compiles in seconds


def tinygpt(*args):
    """Run `tinygpt ARGS` as the console script does; return (exit code, stdout, stderr)."""
    with CliRunner().isolation() as (out, err, _):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue().decode(), err.getvalue().decode()


def fails(*args) -> str:
    """`tinygpt ARGS` must fail with exactly one `error: ...` line on stderr and nothing on stdout."""
    code, out, err = tinygpt(*args)
    assert code == 1, (code, out, err)
    assert out == ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo, end to end on the generated names corpus, with a budget of 3 steps."""
    from tinygpt.demo import run_demo
    lines = []
    out = tmp_path_factory.mktemp("demo") / "run"
    result = run_demo(out, corpus="builtin-names", steps=3, minutes=None, num_samples=4, model=TINY,
                      batch_size=8, log=lambda line="": lines.append(line))
    return result, "\n".join(lines)


def test_demo_runs_end_to_end_and_reports_each_stage(demo):
    result, text = demo
    for stage in ("[1/6] Corpus", "[2/6] Tokenizer", "[3/6] A tokenized example", "[4/6] Training",
                  "[5/6] Evaluating", "[6/6] Sampling"):
        assert stage in text
    assert "<|endoftext|>|" in text                    # the example shows token boundaries (plain mode)
    assert "step 3/3" in text                          # live progress from tinygpt.train
    assert result.steps == 3 and len(result.samples) == 4
    assert all("\n" not in s and "<|endoftext|>" not in s for s in result.samples)  # one name per sample
    assert f"{result.novel} of 4 samples are not in the training data" in text
    assert 0 < result.val_bpb < 9 and math.isfinite(result.val_loss)
    for name in ("config.json", "tokenizer.json", "model.safetensors", "state.json", "metrics.jsonl"):
        assert (result.run_dir / name).is_file()


def test_time_budget_stops_training_and_fits_the_schedule():
    import time
    from tinygpt.train import budget_stopper
    from tinygpt.train import TrainArgs
    assert budget_stopper(None) is None
    assert budget_stopper(10)(1, None) is False
    assert budget_stopper(1e-9)(1, None) is True
    args = TrainArgs(steps=100_000)
    stop = budget_stopper(0.01, args)          # 0.6 s; steps of ~10 ms: the schedule shrinks to what fits
    for step in range(1, 21):
        time.sleep(0.01)
        stop(step, None)
    assert 21 <= args.steps < 100


def test_eval_matches_a_hand_computation_of_bits_per_byte(demo):
    from tinygrad import Tensor
    from tinygpt import load
    from tinygpt.data import DOC_SEPARATOR, prepare_dataset
    from tinygpt.evaluate import evaluate_run
    result, _ = demo
    got = evaluate_run(result.run_dir)
    model, tok = load(result.run_dir)
    ds = prepare_dataset(json.loads((result.run_dir / "config.json").read_text())["data"]["files"], tok, docs=True)
    # by hand: every val target predicted once, from consecutive block_size windows, log-softmax in float64
    val, T = np.asarray(ds.val, dtype=np.int64), model.config.block_size
    starts = range(0, len(val) - 1, T)
    x = np.zeros((len(starts), T), dtype=np.int32)   # one batch; causal, so the padding changes nothing
    for row, start in enumerate(starts):
        x[row, :len(val[start:start + T])] = val[start:start + T]
    logits = model(Tensor(x)).numpy().astype(np.float64)
    logp = logits - logits.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    nats = -sum(logp[row, np.arange(len(val[s + 1:s + T + 1])), val[s + 1:s + T + 1]].sum()
                for row, s in enumerate(starts))
    # the bytes of the val text, from the tokens: each separator stands for the newline ending a name
    sep = tok.special_tokens[DOC_SEPARATOR]
    targets = val[1:]
    n_bytes = len(tok.decode_bytes([int(t) for t in targets if t != sep])) + int((targets == sep).sum())
    assert got.n_tokens == len(targets) and got.n_bytes == n_bytes == ds.val_bytes
    assert got.loss == pytest.approx(nats / len(targets), rel=1e-4)
    assert got.bits_per_byte == pytest.approx(nats / math.log(2) / n_bytes, rel=1e-4)
    assert got.perplexity == pytest.approx(math.exp(nats / len(targets)), rel=1e-4)
    # the CLI prints the same figures
    code, out, _ = tinygpt("eval", result.run_dir, "--json")
    assert code == 0
    assert json.loads(out)["bits_per_byte"] == pytest.approx(got.bits_per_byte, rel=1e-6)


def test_eval_on_another_corpus_and_whole_text(demo, tmp_path):
    from tinygpt.evaluate import evaluate_run
    result, _ = demo
    text = "anna\nbert\ncarla\ndaniel\nemma\nfelix\n" * 5
    (tmp_path / "more.txt").write_text(text)
    whole = evaluate_run(result.run_dir, corpus=str(tmp_path / "more.txt"), split="all", docs=True)
    assert whole.n_bytes == len(text.encode())                     # every name and its newline, once
    val = evaluate_run(result.run_dir, corpus=str(tmp_path / "more.txt"), split="val", docs=True)
    assert val.n_bytes < whole.n_bytes


def test_explain_computes_the_models_own_logits(demo):
    from tinygrad import Tensor
    from tinygpt import load
    from tinygpt.explain import explain_forward, render
    result, _ = demo
    model, tok = load(result.run_dir)
    ex = explain_forward(model, tok, "anna", after_separator=True)   # as the CLI does for a names run
    assert ex.ids == [tok.special_tokens["<|endoftext|>"]] + tok.encode("anna")
    want = model(Tensor([ex.ids])).numpy()[0]
    np.testing.assert_allclose(ex.logits, want, rtol=1e-5, atol=1e-5)
    T = len(ex.ids)
    for trace in ex.blocks:  # causal: each row sums to 1 and never looks ahead
        np.testing.assert_allclose(trace.attention.sum(-1), 1.0, atol=1e-5)
        assert np.all(np.triu(trace.attention, k=1) == 0) and trace.attention.shape == (TINY["n_head"], T, T)
    top = ex.top_next(5)
    assert len(top) == 5 and top[0][2] >= top[-1][2] and top[0][0] == int(np.argmax(want[-1]))
    text = render(ex)
    for stage in ("1. Text -> tokens", "2. Embeddings", "3.0 Block 0", "4. Logits", "5. Next token"):
        assert stage in text
    code, out, _ = tinygpt("explain", result.run_dir, "--prompt", "anna", "--no-color")
    assert code == 0 and "5. Next token" in out and f"p = {top[0][2]:.3f}" in out


def test_explain_matches_a_rope_model():
    from tinygrad import Tensor
    from bpe import Tokenizer
    from tinygpt.config import GPTConfig
    from tinygpt.explain import explain_forward, render
    from tinygpt.model import GPT
    tok = Tokenizer.train("hello world, hello tokens\n" * 20, 270, special_tokens=["<|endoftext|>"])
    Tensor.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=1, n_head=2, n_embd=16, block_size=8, pos="rope"))
    prompt = "a b c d e f g h i j"
    ex = explain_forward(model, tok, prompt)   # longer than block_size: the last 8 tokens
    assert ex.ids == tok.encode(prompt)[-8:] and ex.truncated == len(tok.encode(prompt)) - 8 > 0
    np.testing.assert_allclose(ex.logits, model(Tensor([ex.ids])).numpy()[0], rtol=1e-5, atol=1e-5)
    assert ex.pos_emb is None and "RoPE" in render(ex)


def test_plot_writes_a_png(demo, tmp_path):
    pytest.importorskip("matplotlib")
    result, _ = demo
    code, out, err = tinygpt("plot", result.run_dir, "-o", tmp_path / "curve.png")
    assert code == 0, err
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {tmp_path / 'curve.png'}" in out


def test_plot_without_matplotlib_says_how_to_install(demo, monkeypatch):
    result, _ = demo
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    line = fails("plot", result.run_dir)
    assert line == "error: plotting needs matplotlib: pip install matplotlib (or pip install -e '.[plot]')"


def test_sweep_table_one_row_per_vocab(tmp_path):
    from tinygpt.sweep import format_table, sweep
    rows = sweep("builtin-names", [256, 383], steps=2, out=tmp_path / "sweep", model=TINY, batch_size=8,
                 log=lambda line="": None)
    assert [r.vocab for r in rows] == [256, 383] and rows[0].merges == 0 and rows[1].merges == 127
    assert rows[0].bytes_per_token == pytest.approx(1.0)   # bytes only; the separator stands for the newline
    assert rows[1].bytes_per_token > rows[0].bytes_per_token           # merges pack more bytes per token
    assert all(r.steps == 2 and 0 < r.val_bpb < 10 for r in rows)
    table = format_table(rows)
    assert table.splitlines()[0].split()[:3] == ["vocab", "bytes/token", "val"] and len(table.splitlines()) == 3
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [r["vocab"] for r in saved["rows"]] == [256, 383]


@pytest.mark.parametrize("args, message", [
    (["eval", "no/such/run"], "error: no/such/run: no such run directory; train one with `tinygpt train --out no/such/run`"),
    (["explain", "no/such/run", "--prompt", "x"], "error: no/such/run: no such run directory"),
    (["plot", "no/such/run"], "error: no/such/run: no such run directory"),
    (["sweep", "--vocab", "100,512", "--steps", "1"], "error: vocabulary size 100 is below 256"),
    (["sweep", "--vocab", "a,b", "--steps", "1"], "error: --vocab takes comma-separated integers"),
    (["sweep", "--vocab", "256"], "error: give a budget per run: --minutes M, --steps N, or both"),
    (["demo", "--steps", "0"], "error: --steps must be at least 1, got 0"),
])
def test_bad_input_is_one_line(args, message):
    assert fails(*args).startswith(message)


def test_explain_bad_head_and_eval_bad_split(demo):
    result, _ = demo
    assert fails("explain", result.run_dir, "--head", "7") == "error: --head must be between 0 and 1, got 7"
    code, _, err = tinygpt("eval", result.run_dir, "--split", "test")
    assert code == 2 and "Invalid value for '--split'" in err
