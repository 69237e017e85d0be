"""Training: the loss goes down, resume is exact, NaN stops cleanly, signals checkpoint, bad input is one line."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinygpt import checkpoint as ckpt
from tinygpt.config import GPTConfig
from tinygpt.errors import TinyGPTError
from tinygpt.train import TrainArgs, train

REPO = Path(__file__).resolve().parent.parent
V = 260  # same tiny shapes as tests/test_model.py and tests/test_checkpoint.py: compiled kernels are shared
TINY_FLAGS = ["--batch-size", "4", "--block-size", "16", "--n-layer", "2", "--n-head", "2", "--n-embd", "16"]


def tiny_config(**kw) -> GPTConfig:
    return GPTConfig(vocab_size=V, n_layer=2, n_head=2, n_embd=16, block_size=16, **kw)


def tiny_args(**kw) -> TrainArgs:
    base = dict(steps=6, batch_size=4, lr=1e-2, warmup=2, eval_every=3, eval_batches=2, save_every=100, log_every=1)
    return TrainArgs(**{**base, **kw})


@pytest.fixture(scope="module")
def dataset():
    """A learnable token stream (a cycle of 40 ids) as a TokenDataset, without any tokenizer or file."""
    from tinygpt.data import TokenDataset
    tokens = np.tile(np.arange(40, dtype=np.uint16), 100)
    return TokenDataset(tokens, n_train=3600, train_bytes=3600 * 2, val_bytes=400 * 2, vocab_size=V)


def quiet(line):
    pass


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory, dataset):
    """An uninterrupted 6-step run with dropout and gradient accumulation (both RNGs and the accumulation matter)."""
    run = tmp_path_factory.mktemp("whole")
    return run, train(run, dataset, None, tiny_config(dropout=0.1), tiny_args(accum=2), log=quiet)


def test_a_few_steps_lower_the_loss_and_write_metrics(whole_run):
    run, result = whole_run
    records = ckpt.read_metrics(run)
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[-1]["loss"] < records[0]["loss"] - 0.5  # ln(260) = 5.56 at the start
    for r in records:
        assert {"step", "loss", "lr", "tokens_per_s", "elapsed_s"} <= r.keys()
        assert ("val_loss" in r) == (r["step"] in (3, 6)) and ("val_bpb" in r) == ("val_loss" in r)
    assert result.val_loss == pytest.approx(records[-1]["val_loss"], abs=1e-5)
    # bits per byte = nats per token * tokens / bytes / ln 2; the fixture has 2 bytes per token
    assert result.val_bpb == pytest.approx(result.val_loss / 2 / np.log(2), rel=1e-3)
    assert records[0]["lr"] == pytest.approx(5e-3) and records[1]["lr"] == pytest.approx(1e-2)  # warmup
    assert ckpt.read_state(run)["step"] == 6 and result.step == 6 and not result.interrupted
    assert json.loads((run / ckpt.CONFIG).read_text())["model"] == tiny_config(dropout=0.1).to_dict()


def test_ctrl_c_checkpoints_and_the_resumed_run_equals_the_uninterrupted_run(tmp_path, dataset, whole_run):
    whole_dir, whole = whole_run
    config, args = tiny_config(dropout=0.1), tiny_args(accum=2)

    def ctrl_c_at_step_3(step, record):
        if step == 3:
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C does: the handler asks for a checkpoint and a stop

    first = train(tmp_path, dataset, None, config, args, log=quiet, on_step=ctrl_c_at_step_3)
    assert first.interrupted and first.step == 3 and ckpt.read_state(tmp_path)["step"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers are restored afterwards
    second = train(tmp_path, dataset, None, config, args, resume=True, log=quiet)
    assert second.step == 6 and second.loss == whole.loss and second.val_loss == whole.val_loss
    a, _ = ckpt.read_safetensors(whole_dir / ckpt.MODEL)
    b, _ = ckpt.read_safetensors(tmp_path / ckpt.MODEL)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    drop = ("elapsed_s", "tokens_per_s")
    assert [{k: v for k, v in r.items() if k not in drop} for r in ckpt.read_metrics(tmp_path)] == \
           [{k: v for k, v in r.items() if k not in drop} for r in ckpt.read_metrics(whole_dir)]


def test_a_nan_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path, dataset):
    args = tiny_args(lr=1e38, grad_clip=0.0, warmup=0, save_every=1, steps=20)
    with pytest.raises(TinyGPTError) as e:
        train(tmp_path, dataset, None, tiny_config(), args, log=quiet)
    message = str(e.value)
    assert "\n" not in message and "loss became nan" in message and "training stopped" in message
    saved = ckpt.read_state(tmp_path)["step"]
    assert f"last good checkpoint (step {saved})" in message
    assert ckpt.read_metrics(tmp_path)[-1]["step"] == saved  # nothing logged for the failed step


@pytest.mark.parametrize("kwargs, message", [
    (dict(steps=0), "steps must be at least 1"),
    (dict(lr=-1.0), "lr must be a positive number"),
    (dict(grad_clip=-1.0), "grad_clip must be >= 0"),
])
def test_bad_training_arguments(tmp_path, dataset, kwargs, message):
    with pytest.raises(TinyGPTError, match=message):
        train(tmp_path, dataset, None, tiny_config(), tiny_args(**kwargs), log=quiet)


def test_a_stop_asked_by_on_step_ends_the_run_normally_with_a_checkpoint(tmp_path, dataset):
    result = train(tmp_path, dataset, None, tiny_config(), tiny_args(), log=quiet, on_step=lambda step, _: step == 3)
    assert result.step == 3 and not result.interrupted
    assert ckpt.read_state(tmp_path)["step"] == 3


def test_cli_minutes_budget_stops_early_and_exits_normally(tmp_path, corpus, capsys):
    from cli.tinygpt_cli import main
    run = tmp_path / "run"
    # 0.001 minutes = 60 ms: less than the first (compiling) step, so the run ends after it
    main(["train", "--corpus", str(corpus), "--vocab", str(V), "--out", str(run), "--steps", "1000",
          "--minutes", "0.001", *TINY_FLAGS])
    captured = capsys.readouterr()
    assert "trained 1 steps" in captured.out and "interrupted" not in captured.err, captured.err
    assert ckpt.read_state(run)["step"] == 1


def test_block_size_larger_than_the_corpus(tmp_path, dataset):
    with pytest.raises(TinyGPTError, match="corpus too small for block_size 1000"):
        train(tmp_path, dataset, None, GPTConfig(vocab_size=V, n_layer=1, n_head=1, n_embd=8, block_size=1000),
              tiny_args(), log=quiet)


# --- the command line --------------------------------------------------------------------------------------------
@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGPT_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "story.txt"
    path.write_text("".join(f"The {a} fox saw the {b} dog near the river, and it ran home.\n"
                            for a in ("quick", "slow", "red", "old") for b in ("lazy", "big", "small") for _ in range(4)))
    return path


def cli_error(capsys, *args) -> str:
    """Run `tinygpt train ARGS` in-process; return its error line, asserting exit status 1 and no traceback."""
    from cli.tinygpt_cli import main
    with pytest.raises(SystemExit) as e:
        main(["train", *args])
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert e.value.code == 1 and lines[-1].startswith("error: ") and "Traceback" not in err, err
    assert sum(line.startswith("error") for line in lines) == 1, err
    return lines[-1]


def test_cli_bad_input_is_one_line(tmp_path, corpus, capsys):
    out = str(tmp_path / "run")
    assert "missing.txt" in cli_error(capsys, "--corpus", str(tmp_path / "missing.txt"), "--out", out)
    (tmp_path / "empty.txt").write_text("")
    assert "empty" in cli_error(capsys, "--corpus", str(tmp_path / "empty.txt"), "--out", out)
    base = ["--corpus", str(corpus), "--vocab", str(V), "--out", out]
    assert "n_embd (30) must be divisible by n_head (4)" in cli_error(capsys, *base, "--n-embd", "30", "--n-head", "4")
    assert "corpus too small for block_size 4096" in cli_error(capsys, *base, "--block-size", "4096")
    assert "device 'nosuchdevice' is not available here; usable devices:" in \
        cli_error(capsys, *base, "--device", "nosuchdevice")
    assert "nothing to resume" in cli_error(capsys, "--out", str(tmp_path / "none"), "--resume")
    assert "either --tokenizer or --vocab" in cli_error(capsys, *base, "--tokenizer", "t.json")
    assert "--minutes must be positive, got 0" in cli_error(capsys, *base, "--minutes", "0")


def test_cli_resume_of_a_corrupted_checkpoint_is_one_line(tmp_path, corpus, capsys):
    from bpe import Tokenizer
    from tinygpt.model import GPT
    from tinygpt.optim import make_optimizer, optimizer_state
    run = tmp_path / "run"
    model = GPT(tiny_config())
    ckpt.save_run_config(run, model.config, {"steps": 4}, {"corpus": [str(corpus)], "docs": False})
    ckpt.save_tokenizer(run, Tokenizer.train(corpus.read_text(), V))
    ckpt.save_checkpoint(run, model, optimizer_state(make_optimizer(model.state_dict(), 1e-3)), {"step": 2})
    (run / ckpt.MODEL).write_bytes((run / ckpt.MODEL).read_bytes()[:200])
    assert "model.safetensors: corrupt or truncated safetensors file" in cli_error(capsys, "--out", str(run), "--resume")


def test_sigterm_writes_a_checkpoint_then_exits(tmp_path, corpus):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "cli.tinygpt_cli", "train", "--corpus", str(corpus), "--vocab", str(V),
           "--out", str(run), "--steps", "100000", "--save-every", "100000", "--eval-every", "100000", *TINY_FLAGS]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.time() + 400
        while not ckpt.read_metrics(run) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.5)  # wait for the first step (compilation takes a while)
        assert ckpt.read_metrics(run), proc.stderr.read() if proc.poll() is not None else "no step in time"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "saving a checkpoint" in err and "interrupted at step" in err and "Traceback" not in err
    state = json.loads((run / ckpt.STATE).read_text())
    assert state["step"] >= 1 and (run / ckpt.MODEL).is_file() and (run / ckpt.TOKENIZER).is_file()
    ckpt.load_run(run)  # the checkpoint is complete and loads


def test_cli_protects_an_existing_run(tmp_path, corpus, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / ckpt.STATE).write_text(json.dumps({"step": 2}))
    base = ["--corpus", str(corpus), "--out", str(run)]
    assert "already holds a run (step 2); continue it with --resume" in cli_error(capsys, *base)
    assert "drop --n-layer, --lr" in cli_error(capsys, *base, "--resume", "--n-layer", "3", "--lr", "0.1")
