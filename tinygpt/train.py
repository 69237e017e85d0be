"""Training: from a corpus and a bpe tokenizer to a run directory with a trained GPT.

    from tinygpt.train import TrainArgs, train_on_corpus
    train_on_corpus("builtin-names", "runs/names", vocab=512, args=TrainArgs(steps=300))

The loop (`train`) works on any dataset with `get_batch(split, B, T, rng)` and `eval_batches(split, B, T)`
(tinygpt.data.TokenDataset). One optimizer step -- forward, backward over `accum` micro-batches, gradient
clipping by global norm, AdamW -- is a single TinyJit-compiled function, so after the first two steps tinygrad
replays the compiled kernels without Python graph building. Everything random is seeded: the data windows come
from a numpy Generator and dropout from tinygrad's RNG, and both states are checkpointed, so a resumed run
continues exactly where the stopped one was.
"""
import math
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from tinygpt import checkpoint as ckpt, compile_pool
from tinygpt.config import GPTConfig
from tinygpt.errors import TinyGPTError


@dataclass
class TrainArgs:
    """Optimisation settings (saved in config.json under "train")."""
    steps: int = 300            # optimizer steps in the whole run
    batch_size: int = 12        # sequences per micro-batch
    lr: float = 1e-3            # peak learning rate
    warmup: int = 30            # linear warmup steps, then cosine decay to lr * min_lr_ratio
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0      # clip the global gradient norm to this (0: no clipping)
    accum: int = 1              # micro-batches per optimizer step (effective batch = accum * batch_size)
    weight_decay: float = 0.1   # AdamW, on matrices only (see tinygpt.optim)
    beta1: float = 0.9
    beta2: float = 0.95
    eval_every: int = 50        # validation loss every N steps (and at the end)
    eval_batches: int = 20      # validation batches per evaluation (covering at most all of val)
    save_every: int = 100       # checkpoint every N steps (and at the end, and on Ctrl-C / SIGTERM)
    log_every: int = 10         # metrics.jsonl line and progress line every N steps
    seed: int = 1337

    def validate(self) -> None:
        for name in ("steps", "batch_size", "accum", "eval_every", "eval_batches", "save_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise TinyGPTError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise TinyGPTError(f"warmup must be >= 0, got {self.warmup}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise TinyGPTError(f"lr must be a positive number, got {self.lr}")
        if self.grad_clip < 0:
            raise TinyGPTError(f"grad_clip must be >= 0 (0 turns clipping off), got {self.grad_clip}")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainArgs":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class TrainResult:
    run_dir: Path
    step: int                  # optimizer steps completed (and saved)
    loss: float                # last training loss
    val_loss: float | None
    val_bpb: float | None
    interrupted: bool          # stopped by Ctrl-C / SIGTERM (a checkpoint was written)


class StopRequest:
    """Turns the first Ctrl-C / SIGTERM into a request to checkpoint and stop after the current step."""

    def __init__(self, log):
        self.requested, self.log, self.saved = False, log, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True
        self.log(f"\n{signal.Signals(signum).name}: saving a checkpoint after this step, then stopping "
                 "(press Ctrl-C again to stop at once)")
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C interrupts right away

    def __exit__(self, *exc):
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def _fmt_time(seconds: float) -> str:
    seconds = int(seconds)
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _tensor_rng_state() -> dict:
    """tinygrad's RNG: the global seed and each device's counter (in creation order, which fixes the seeds)."""
    from tinygrad import Tensor
    return {"seed": int(Tensor._seed),
            "counters": [[dev, [int(v) for v in t.numpy()]] for dev, t in Tensor._device_rng_counters.items()]}


def _restore_tensor_rng(state: dict) -> None:
    from tinygrad import Tensor, dtypes
    Tensor.manual_seed(state["seed"])
    for dev, counter in state["counters"]:
        Tensor._next_counter(dev, 0)  # creates this device's seed exactly as the first random op did
        Tensor._device_rng_counters[dev].assign(Tensor(counter, device=dev, dtype=dtypes.uint32)).realize()


def make_train_step(model, optimizer, args: TrainArgs, device: str):
    """The TinyJit-compiled optimizer step: (x, y of shape (accum, B, T), lr of shape (1,)) -> (loss, grad norm).

    Forward and backward over the `accum` micro-batches (their gradients add up), clipping of the global gradient
    norm to args.grad_clip, and the AdamW update, all in one function that tinygrad compiles once and replays.
    x, y and lr may be Tensors or numpy arrays (lr also a float): arrays are written into the step's own input
    tensors (tinygpt.jit_inputs), which saves tinygrad ~1 ms of scheduling per input on the CPU.
    """
    from tinygrad import Context, Tensor, TinyJit
    from tinygpt.jit_inputs import JitInput
    from tinygpt.optim import set_lr
    params, accum = model.parameters(), args.accum
    # the token embedding's backward as an atomic scatter-add instead of a one-hot matmul: tinygrad supports it
    # on CPU and AMD only (docs/performance.md)
    atomics = int(device.split(":")[0] in ("CPU", "AMD"))

    @TinyJit
    def train_step(x: Tensor, y: Tensor, lr: Tensor) -> tuple[Tensor, Tensor]:
        with Context(TRAINING=1, USE_ATOMICS=atomics):
            set_lr(optimizer, lr)
            optimizer.zero_grad()
            total = None
            for i in range(accum):
                loss = model(x[i]).sparse_categorical_crossentropy(y[i]) / accum
                loss.backward()  # gradients add up over micro-batches
                total = loss.detach() if total is None else total + loss.detach()
                if accum > 1:
                    Tensor.realize(total, *[p.grad for p in params])  # keep one micro-batch in memory at a time
            norm = Tensor.stack(*[(p.grad * p.grad).sum() for p in params]).sum().sqrt()
            if args.grad_clip > 0:
                scale = (args.grad_clip / (norm + 1e-6)).minimum(1.0)
                for p in params:
                    p.grad = p.grad * scale
            Tensor.realize(total, norm, *optimizer.schedule_step())
            return total, norm

    inputs = [JitInput(device) for _ in range(3)]

    def step(x, y, lr) -> tuple[Tensor, Tensor]:
        if isinstance(lr, (int, float)):
            lr = np.array([lr], dtype=np.float32)
        return train_step(*[v if isinstance(v, Tensor) else put(v) for v, put in zip((x, y, lr), inputs)])

    return step


def make_evaluator(model, dataset, args: TrainArgs, block_size: int, device: str):
    """A function () -> (val loss in nats per token, val bits per byte) over the first args.eval_batches fixed
    validation batches (the same batches every time, so evaluations are comparable and draw no random numbers)."""
    from tinygrad import Context, Tensor, TinyJit
    from tinygpt.data import bits_per_byte

    @TinyJit
    def eval_step(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Summed loss over the valid targets (y >= 0) of one (B, T) batch, and how many there were."""
        with Context(TRAINING=0):
            loss = model(x).sparse_categorical_crossentropy(y, ignore_index=-1, reduction="sum")
            return loss.realize(), (y >= 0).sum().realize()

    def evaluate() -> tuple[float, float]:
        total, count = 0.0, 0
        for i, (x, y) in enumerate(dataset.eval_batches("val", args.batch_size, block_size)):
            if i >= args.eval_batches:
                break
            s, n = eval_step(Tensor(x, device=device), Tensor(y, device=device))
            total, count = total + float(s.item()), count + int(n.item())
        mean = total / max(1, count)
        return mean, bits_per_byte(mean, dataset.n_targets("val"), dataset.n_bytes("val"))

    return evaluate


def train(run_dir, dataset, tokenizer, config: GPTConfig, args: TrainArgs | None = None, device=None,
          resume: bool = False, data_info: dict | None = None, log=None, on_step=None) -> TrainResult:
    """Train `config`'s GPT on `dataset`, writing checkpoints and metrics to `run_dir`.

    resume=True continues the checkpoint in run_dir exactly (weights, optimizer, step, both RNGs).
    `log(line)` receives progress lines (default: stderr). `on_step(step, record)` is called after every step;
    returning True stops the run with a checkpoint, like Ctrl-C. A NaN/inf loss raises TinyGPTError and leaves
    the last good checkpoint in place.
    """
    from tinygrad import Tensor
    from tinygpt.device import default_device, resolve_device
    from tinygpt.jit_inputs import to_numpy
    from tinygpt.model import GPT
    from tinygpt.optim import lr_at, make_optimizer, optimizer_state

    args = args or TrainArgs()
    args.validate()
    config.validate()
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    run_dir = Path(run_dir)
    if tokenizer is not None and tokenizer.vocab_size > config.vocab_size:
        raise TinyGPTError(f"vocab_size {config.vocab_size} is smaller than the tokenizer's {tokenizer.vocab_size}")
    dataset.check_block_size(config.block_size)
    dev = resolve_device(device)
    run_dir.mkdir(parents=True, exist_ok=True)
    compile_pool.install()  # before any kernel compiles: a SIGTERM to our process group must not kill a compile

    with default_device(dev):
        Tensor.manual_seed(args.seed)
        model = GPT(config)
        params = model.state_dict()
        optimizer = make_optimizer(params, args.lr, args.weight_decay, (args.beta1, args.beta2))
        opt_state = optimizer_state(optimizer)
        rng = np.random.default_rng(args.seed)
        step, elapsed_before, tokens_seen = 0, 0.0, 0
        if resume:
            state = ckpt.read_state(run_dir)
            ckpt.load_tensors_into(run_dir / ckpt.MODEL, params, state["step"])
            ckpt.load_tensors_into(run_dir / ckpt.OPTIMIZER, opt_state, state["step"])
            try:
                rng.bit_generator.state = state["data_rng"]
                _restore_tensor_rng(state["tensor_rng"])
            except (KeyError, TypeError, ValueError) as e:
                raise TinyGPTError(f"{run_dir / ckpt.STATE}: damaged random-number state ({e.__class__.__name__}: "
                                   f"{e}); the run cannot be resumed exactly") from None
            step, elapsed_before, tokens_seen = state["step"], state.get("elapsed_s", 0.0), state.get("tokens", 0)
            ckpt.truncate_metrics(run_dir, step)
        else:
            ckpt.save_run_config(run_dir, config, asdict(args), data_info or {})
            if tokenizer is not None:
                ckpt.save_tokenizer(run_dir, tokenizer)
            (run_dir / ckpt.METRICS).unlink(missing_ok=True)
        Tensor.realize(*params.values(), *opt_state.values())  # before the JIT capture, or it re-runs the init

        B, T, A = args.batch_size, config.block_size, args.accum
        train_step = make_train_step(model, optimizer, args, dev)
        evaluate = make_evaluator(model, dataset, args, T, dev)

        def save(at_step: int) -> None:
            state = {"step": at_step, "data_rng": rng.bit_generator.state, "tensor_rng": _tensor_rng_state(),
                     "elapsed_s": round(elapsed_before + (time.perf_counter() - t_start), 3), "tokens": tokens_seen,
                     "loss": last_loss, "val_loss": val_loss, "val_bpb": val_bpb}
            ckpt.save_checkpoint(run_dir, model, opt_state, state)
            nonlocal saved_step
            saved_step = at_step

        # tokens_per_s counts the time of training steps (batch sampling included), not evaluation or saving
        n_params = model.num_params()
        log(f"model: {n_params / 1e6:.2f}M parameters ({config.n_layer} layers, {config.n_head} heads, "
            f"{config.n_embd} wide, block {T}, vocab {config.vocab_size}, {config.pos} positions) on {dev}; "
            f"data: {len(dataset.train):,} train / {len(dataset.val):,} val tokens")
        if resume:
            log(f"resuming {run_dir} at step {step}/{args.steps}")
        else:
            log("compiling the training step (the first steps are slow; later ones replay compiled kernels)")

        t_start = time.perf_counter()
        last_loss, val_loss, val_bpb, saved_step = float("nan"), None, None, step if resume else -1
        interval_s, interval_tokens, ema_step_s, session_steps = 0.0, 0, 0.0, 0
        tokens_per_step = A * B * T
        with StopRequest(log) as stop:
            while step < args.steps and not stop.requested:
                t0 = time.perf_counter()
                lr = lr_at(step, args.lr, args.warmup, args.steps, args.min_lr_ratio)
                batches = [dataset.get_batch("train", B, T, rng) for _ in range(A)]
                x, y = np.stack([b[0] for b in batches]), np.stack([b[1] for b in batches])
                loss_t, norm_t = train_step(x, y, lr)
                loss = float(to_numpy(loss_t))
                step_s = time.perf_counter() - t0
                if not math.isfinite(loss):
                    where = (f"the last good checkpoint (step {saved_step}) is kept in {run_dir}" if saved_step >= 0
                             else "no checkpoint was written yet")
                    raise TinyGPTError(f"loss became {loss} at step {step + 1}: training stopped; {where}; "
                                       f"try a lower --lr (was {args.lr:g}) or --grad-clip 1")
                step += 1
                tokens_seen += tokens_per_step
                interval_tokens += tokens_per_step
                interval_s += step_s
                last_loss = loss
                # the first two steps of a session include compilation: keep them out of the ETA estimate
                session_steps += 1
                ema_step_s = step_s if session_steps <= 3 else 0.9 * ema_step_s + 0.1 * step_s
                record = None
                evaluating = step % args.eval_every == 0 or step == args.steps
                if step % args.log_every == 0 or evaluating or step == 1:
                    elapsed = elapsed_before + time.perf_counter() - t_start
                    record = {"step": step, "loss": round(loss, 6), "lr": lr,
                              "tokens_per_s": round(interval_tokens / max(interval_s, 1e-9), 1),
                              "elapsed_s": round(elapsed, 3), "grad_norm": round(float(norm_t.item()), 6)}
                    if evaluating:
                        val_loss, val_bpb = evaluate()
                        record.update(val_loss=round(val_loss, 6), val_bpb=round(val_bpb, 6))
                    ckpt.append_metrics(run_dir, record)
                    eta = _fmt_time(ema_step_s * (args.steps - step)) if session_steps > 2 else "--"
                    val = f" | val {val_loss:.4f} ({val_bpb:.3f} bits/byte)" if evaluating else ""
                    log(f"step {step:>{len(str(args.steps))}}/{args.steps} | loss {loss:.4f}{val} | lr {lr:.2e} | "
                        f"{record['tokens_per_s']:,.0f} tok/s | {_fmt_time(elapsed)} elapsed, ETA {eta}")
                    interval_s, interval_tokens = 0.0, 0
                if step % args.save_every == 0 or step == args.steps:
                    save(step)
                if on_step is not None and on_step(step, record):
                    break  # the caller's budget is spent: a normal end of the run
            interrupted = stop.requested and step < args.steps
            if saved_step != step:
                save(step)
            if interrupted:
                log(f"stopped at step {step}: checkpoint saved in {run_dir} (continue with --resume)")
    return TrainResult(run_dir, step, last_loss, val_loss, val_bpb, interrupted)


def budget_stopper(minutes: float | None, args=None, first_check: int = 20):
    """An on_step callback for tinygpt.train.train that stops the run once `minutes` have passed.

    Given the run's TrainArgs, it also fits the learning-rate schedule to the time: at steps 20, 40, 80, 160,
    320, 480, ... it measures the recent speed and sets args.steps (never above its first value) to what fits the time left, with
    the warmup near 10% of it, so the cosine decay ends when the budget does instead of being cut off at its
    peak; measuring again follows a machine whose load changes. (train() reads args at every step.)
    """
    if minutes is None:
        return None
    deadline = time.perf_counter() + 60.0 * minutes
    max_steps = args.steps if args is not None else 0
    state = {"check": first_check}  # next step to measure at; "last": (step, time) of the previous measurement

    def on_step(step, record):
        now = time.perf_counter()
        if step == 3:  # steps 1 and 2 include compilation: measure from here
            state["last"] = (step, now)
        elif args is not None and "last" in state and step >= state["check"]:
            last_step, last_time = state["last"]
            per_step = (now - last_time) / (step - last_step)
            fits = step + int(0.95 * (deadline - now) / per_step)  # 5% for evaluations and checkpoints
            args.steps = max(step + 1, min(max_steps, fits))
            if state["check"] == first_check:
                args.warmup = min(args.warmup, max(step, args.steps // 10))  # warmup ~10% of the schedule
            state["last"], state["check"] = (step, now), step + min(step, 8 * first_check)
        return now > deadline

    return on_step


# --- from a corpus name to a trained run ----------------------------------------------------------------------
DEFAULT_VOCAB = 512


def build_tokenizer(paths, vocab_size: int, docs: bool, log=None):
    """Train a bpe tokenizer of `vocab_size` tokens on the corpus files (with the document separator in docs mode)."""
    from bpe import Tokenizer
    from bpe.textio import read_text_blocks
    from tinygpt.data import DOC_SEPARATOR
    specials = (DOC_SEPARATOR,) if docs else ()
    if vocab_size < 256 + len(specials):
        raise TinyGPTError(f"--vocab must be at least {256 + len(specials)} (256 byte tokens"
                           f"{' + the document separator' if docs else ''}), got {vocab_size}")
    if log:
        log(f"training a {vocab_size}-token bpe tokenizer on {', '.join(str(p) for p in paths)}")
    return Tokenizer.train(read_text_blocks(paths), vocab_size, special_tokens=specials)


def train_on_corpus(corpus=None, out="runs/default", tokenizer=None, vocab: int | None = None,
                    docs: bool | None = None, n_layer: int = 4, n_head: int = 4, n_embd: int = 128,
                    block_size: int = 64, dropout: float = 0.0, pos: str = "learned",
                    args: TrainArgs | None = None, device=None, resume: bool = False, log=None,
                    on_step=None, minutes: float | None = None) -> TrainResult:
    """Everything `tinygpt train` does: resolve the corpus, get a tokenizer (a file, or train one with `vocab`
    tokens), tokenize (cached), then `train`. With resume=True the run's saved config, tokenizer and corpus are
    used (pass `args` to change e.g. the number of steps). `minutes`: stop after that much training time, with
    the learning-rate schedule fitted to it (see budget_stopper); args.steps stays the upper bound."""
    from bpe import Tokenizer
    from bpe.errors import TokenizerError
    from corpora import DEFAULT_CORPUS, is_docs_corpus, resolve_corpus
    from tinygpt.data import prepare_dataset

    from tinygpt.device import resolve_device

    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    out = Path(out)
    resolve_device(device)  # bad flags fail before any slow work
    if minutes is not None and minutes <= 0:
        raise TinyGPTError(f"--minutes must be positive, got {minutes:g}")
    if minutes is not None and on_step is not None:
        raise TinyGPTError("give either minutes or on_step, not both")
    if args is not None:
        args.validate()
    if not resume:
        GPTConfig(vocab_size=1, n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size,
                  dropout=dropout, pos=pos)
    if resume:
        if not ckpt.run_exists(out):
            raise TinyGPTError(f"nothing to resume: {out / ckpt.STATE} does not exist (drop --resume to start a run)")
        config, saved_args, data = ckpt.read_run_config(out)
        tok = ckpt.load_tokenizer(out)
        merged = {**saved_args, **({k: v for k, v in asdict(args).items() if k == "steps"} if args else {})}
        args = TrainArgs.from_dict(merged)
        corpus = corpus or data.get("corpus")
        docs = data.get("docs", False) if docs is None else docs
        if not corpus:
            raise TinyGPTError(f"{out / ckpt.CONFIG}: does not say which corpus the run used; pass --corpus")
    else:
        if ckpt.run_exists(out):
            step = ckpt.read_state(out)["step"]
            raise TinyGPTError(f"{out} already holds a run (step {step}); continue it with --resume or pick another --out")
        corpus = corpus or DEFAULT_CORPUS
        docs = is_docs_corpus(corpus) if docs is None else docs
    paths = resolve_corpus(corpus)
    try:
        if not resume:
            if tokenizer is not None:
                tok = Tokenizer.load(tokenizer)
            else:
                tok = build_tokenizer(paths, vocab or DEFAULT_VOCAB, docs, log)
        dataset = prepare_dataset(paths, tok, docs=docs)
    except TokenizerError as e:
        raise TinyGPTError(str(e)) from None
    if len(dataset.train) == 0:
        raise TinyGPTError(f"empty corpus: {', '.join(map(str, paths))} holds no tokens")
    if not resume:
        config = GPTConfig(vocab_size=tok.vocab_size, n_layer=n_layer, n_head=n_head, n_embd=n_embd,
                           block_size=block_size, dropout=dropout, pos=pos)
    corpus_list = [corpus] if isinstance(corpus, (str, Path)) else list(corpus)
    data_info = {"corpus": [str(c) for c in corpus_list], "files": [str(p) for p in paths], "docs": bool(docs)}
    if minutes is not None:
        args = args or TrainArgs()
        on_step = budget_stopper(minutes, args)
    return train(out, dataset, tok, config, args, device=device, resume=resume, data_info=data_info, log=log,
                 on_step=on_step)


__all__ = ["TrainArgs", "TrainResult", "train", "train_on_corpus", "budget_stopper", "build_tokenizer",
           "make_train_step", "make_evaluator"]
