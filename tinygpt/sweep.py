"""The tokenizer-first experiment: what does vocabulary size do to a small GPT under a fixed budget?

    rows = sweep("tinyshakespeare", vocabs=[256, 512, 1000, 4096], minutes=5)
    print(format_table(rows))

For each vocabulary size: train a bpe tokenizer (256 = bytes only, no merges), tokenize the corpus, train the
same small GPT for the same time (or steps), and measure it exactly on the validation split. Bigger vocabularies
pack more bytes into each token (the model sees more text per step and per context window) but have more, rarer
tokens to learn and a bigger embedding table. Bits per byte is the figure that compares them fairly
(see tinygpt.evaluate).
"""
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tinygpt.errors import TinyGPTError

SWEEP_MODEL = dict(n_layer=2, n_head=4, n_embd=64, block_size=64)
UNLIMITED_STEPS = 1_000_000  # with only a time budget: shortened to what fits once the speed is measured


@dataclass
class SweepRow:
    vocab: int               # tokens without special tokens (256 = bytes only)
    merges: int
    bytes_per_token: float   # on the validation text
    steps: int
    tokens_per_s: float      # training throughput (after compilation)
    val_loss: float          # nats per token
    val_bpb: float           # bits per byte: the fair comparison
    train_s: float

    @property
    def bytes_per_s(self) -> float:
        """Text the model trains on per second: tokens/s x bytes/token."""
        return self.tokens_per_s * self.bytes_per_token


def parse_vocabs(text: str) -> list[int]:
    """"256,512,1000" -> [256, 512, 1000]; one clear line for anything else."""
    try:
        vocabs = [int(v) for v in str(text).replace(" ", "").split(",") if v]
    except ValueError:
        raise TinyGPTError(f"--vocab takes comma-separated integers like 256,512,1000, got {text!r}") from None
    if not vocabs:
        raise TinyGPTError("--vocab needs at least one vocabulary size, e.g. 256,512,1000")
    small = [v for v in vocabs if v < 256]
    if small:
        raise TinyGPTError(f"vocabulary size {small[0]} is below 256: every byte needs a token (256 = bytes only)")
    return vocabs


def steady_tokens_per_s(records: list[dict]) -> float:
    """Median tokens/s of the logged intervals after the first two steps (which include compilation)."""
    speeds = sorted(r["tokens_per_s"] for r in records if r.get("tokens_per_s") and r.get("step", 0) > 2)
    if not speeds:
        speeds = sorted(r["tokens_per_s"] for r in records if r.get("tokens_per_s"))
    return float(speeds[len(speeds) // 2]) if speeds else 0.0


def sweep(corpus, vocabs, minutes: float | None = None, steps: int | None = None, out="runs/sweep",
          device=None, docs: bool | None = None, model: dict | None = None, batch_size: int = 16, lr: float = 2e-3,
          seed: int = 1337, log=None) -> list[SweepRow]:
    """Train one tokenizer + GPT per vocabulary size under the same budget; return a row of figures for each.

    Budget: `minutes` of training per run (compilation included), `steps` per run, or both (first reached).
    Runs go to OUT/vocab-<V>; the rows also go to OUT/sweep.json.
    """
    import time

    from bpe import Tokenizer
    from bpe.atomic import atomic_write_text
    from bpe.errors import TokenizerError
    from bpe.textio import read_text_blocks
    from corpora import is_docs_corpus, resolve_corpus
    from tinygpt import checkpoint as ckpt
    from tinygpt.config import GPTConfig
    from tinygpt.data import DOC_SEPARATOR, prepare_dataset
    from tinygpt.evaluate import evaluate_dataset
    from tinygpt.train import TrainArgs, budget_stopper, train

    log = log or (lambda line="": print(line, flush=True))
    vocabs = parse_vocabs(vocabs) if isinstance(vocabs, str) else [int(v) for v in vocabs]
    if minutes is None and steps is None:
        raise TinyGPTError("give a budget per run: --minutes M, --steps N, or both")
    if minutes is not None and minutes <= 0:
        raise TinyGPTError(f"--minutes must be positive, got {minutes}")
    if steps is not None and steps < 1:
        raise TinyGPTError(f"--steps must be at least 1, got {steps}")
    paths = resolve_corpus(corpus)
    docs = is_docs_corpus(corpus) if docs is None else docs
    specials = (DOC_SEPARATOR,) if docs else ()
    shape = {**SWEEP_MODEL, **(model or {})}
    out = Path(out)
    total_steps = steps or UNLIMITED_STEPS
    rows = []
    for vocab in vocabs:
        log(f"--- vocab {vocab}: training the tokenizer ({vocab - 256} merges)")
        try:
            tokenizer = Tokenizer.train(read_text_blocks(paths), vocab + len(specials), special_tokens=specials)
            dataset = prepare_dataset(paths, tokenizer, docs=docs)
        except TokenizerError as e:
            raise TinyGPTError(f"vocab {vocab}: {e}") from None
        config = GPTConfig(vocab_size=tokenizer.vocab_size, **shape)
        args = TrainArgs(steps=total_steps, batch_size=batch_size, lr=lr, warmup=min(50, max(1, total_steps // 10)),
                         eval_every=total_steps, save_every=total_steps, log_every=max(1, min(25, total_steps)),
                         seed=seed)
        run_dir = out / f"vocab-{vocab}"
        for f in (ckpt.CONFIG, ckpt.TOKENIZER, ckpt.MODEL, ckpt.OPTIMIZER, ckpt.STATE, ckpt.METRICS):
            (run_dir / f).unlink(missing_ok=True)  # a sweep run is always trained afresh
        data_info = {"corpus": [str(c) for c in ([corpus] if isinstance(corpus, (str, Path)) else corpus)],
                     "files": [str(p) for p in paths], "docs": docs}
        t0 = time.perf_counter()
        result = train(run_dir, dataset, tokenizer, config, args, device=device, data_info=data_info,
                       log=lambda line: log("    " + line.strip()), on_step=budget_stopper(minutes, args))
        train_s = time.perf_counter() - t0
        run = ckpt.load_run(run_dir, device=device)
        ev = evaluate_dataset(run.model, dataset, "val", tokenizer=tokenizer)
        row = SweepRow(vocab, len(tokenizer.merges), ev.bytes_per_token, result.step,
                       steady_tokens_per_s(ckpt.read_metrics(run_dir)), ev.loss, ev.bits_per_byte, train_s)
        rows.append(row)
        log(f"    vocab {vocab}: {row.steps} steps, val {ev.bits_per_byte:.4f} bits/byte, "
            f"{row.bytes_per_token:.2f} bytes/token, {row.tokens_per_s:,.0f} tokens/s")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "sweep.json", json.dumps(
        {"corpus": [str(p) for p in paths], "minutes": minutes, "steps": steps, "model": shape,
         "batch_size": batch_size, "rows": [dict(asdict(r), bytes_per_s=r.bytes_per_s) for r in rows]},
        indent=1) + "\n")
    return rows


def format_table(rows: list[SweepRow]) -> str:
    """The sweep as an aligned text table (one line per vocabulary size)."""
    head = ("vocab", "bytes/token", "val bits/byte", "val nats/token", "steps", "tokens/s", "bytes/s")
    lines = [f"{head[0]:>6} {head[1]:>11} {head[2]:>13} {head[3]:>14} {head[4]:>7} {head[5]:>9} {head[6]:>9}"]
    for r in rows:
        lines.append(f"{r.vocab:>6} {r.bytes_per_token:>11.2f} {r.val_bpb:>13.4f} {r.val_loss:>14.4f} {r.steps:>7} "
                     f"{r.tokens_per_s:>9,.0f} {r.bytes_per_s:>9,.0f}")
    return "\n".join(lines)


__all__ = ["sweep", "SweepRow", "format_table", "parse_vocabs", "steady_tokens_per_s", "SWEEP_MODEL"]
