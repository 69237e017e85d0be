"""`tinygpt demo`: the whole path from raw text to new names, in a few minutes on a laptop CPU.

    corpus -> bpe tokenizer -> a tokenized example -> token file -> a small GPT, trained -> samples + bits per byte

Each stage calls the same public functions a user would (corpora.resolve_corpus, tinygpt.train.build_tokenizer,
bpe.display, tinygpt.data.prepare_dataset, tinygpt.train.train, tinygpt.generation, tinygpt.evaluate), and says
in a line or two what it is doing and why.
"""
import time
from dataclasses import dataclass, field
from pathlib import Path

from tinygpt.errors import TinyGPTError

# The demo model: small enough to learn names in a few minutes on two CPU cores.
DEMO_MODEL = dict(n_layer=3, n_head=4, n_embd=96, block_size=24)
DEMO_VOCAB = 384        # 256 bytes + 127 merges (syllables like "an", "el", "ia") + the separator
DEMO_STEPS = 1500       # length of the learning-rate schedule; --minutes may stop the run earlier
DEMO_MINUTES = 6.0
DEMO_BATCH = 32
CORPUS_PREFERENCE = ("names", "builtin-names")  # the real names when cached, else the generated ones


@dataclass
class DemoResult:
    run_dir: Path
    corpus: str
    steps: int
    samples: list[str] = field(default_factory=list)
    novel: int = 0               # samples that are not a name of the corpus
    val_loss: float = float("nan")
    val_bpb: float = float("nan")
    seconds: float = 0.0


def pick_corpus(corpus=None) -> tuple[str, list[Path]]:
    """The demo's corpus: `corpus` if given (downloading a catalog name if needed), else the real names when
    already cached, else the generated builtin-names (never a download, so a fresh clone works offline)."""
    from corpora import resolve_corpus
    if corpus is not None:
        return str(corpus), resolve_corpus(corpus)
    for name in CORPUS_PREFERENCE:
        try:
            return name, resolve_corpus(name, download_missing=False)
        except TinyGPTError:
            continue
    raise TinyGPTError("no demo corpus available; pass --corpus FILE")


def run_demo(out="runs/demo", corpus=None, minutes: float | None = DEMO_MINUTES, steps: int | None = None,
             vocab: int = DEMO_VOCAB, num_samples: int = 20, device=None, seed: int = 1337, color: bool = False,
             log=None, model: dict | None = None, batch_size: int = DEMO_BATCH) -> DemoResult:
    """Run the demo into run directory `out` (replaced if it holds an earlier demo) and return its figures.

    minutes: stop training after this many minutes (None: no time limit). steps: the schedule's length
    (default DEMO_STEPS). A short CI run: run_demo(out, steps=3, minutes=None, model=dict(n_layer=1, ...)).
    """
    import numpy as np
    from bpe.display import render_segments, token_segments
    from corpora import is_docs_corpus
    from tinygpt import checkpoint as ckpt
    from tinygpt.config import GPTConfig
    from tinygpt.data import DOC_SEPARATOR, prepare_dataset
    from tinygpt.evaluate import evaluate_dataset
    from tinygpt.generation import generate
    from tinygpt.train import TrainArgs, budget_stopper, build_tokenizer, train

    log = log or (lambda line="": print(line, flush=True))
    started = time.perf_counter()
    out = Path(out)
    steps = DEMO_STEPS if steps is None else steps
    if minutes is not None and minutes <= 0:
        raise TinyGPTError(f"--minutes must be positive, got {minutes}")
    if steps < 1:
        raise TinyGPTError(f"--steps must be at least 1, got {steps}")
    if num_samples < 0:
        raise TinyGPTError(f"--samples must be 0 or more, got {num_samples}")
    if ckpt.run_exists(out) and ckpt.read_run_config(out)[2].get("demo") is not True:
        raise TinyGPTError(f"{out} holds a run that is not a demo; pick another --out")
    model_shape = {**DEMO_MODEL, **(model or {})}

    name, paths = pick_corpus(corpus)
    docs = is_docs_corpus(name) or is_docs_corpus(paths)
    lines = Path(paths[0]).read_text(encoding="utf-8").splitlines()
    log(f"[1/6] Corpus: {name} ({', '.join(map(str, paths))}), {len(lines):,} lines"
        + (", one name per line." if docs else "."))
    if name == "builtin-names":
        log("      These names are invented by the project's own generator (no download). For the 32,033 real "
            "names of makemore, run `tinygpt demo --corpus names` once.")

    log("")
    log(f"[2/6] Tokenizer: training a byte-level BPE with {vocab} tokens. It starts from the 256 bytes and "
        "repeatedly merges the most frequent neighbouring pair into a new token.")
    t0 = time.perf_counter()
    tokenizer = build_tokenizer(paths, vocab, docs)
    first_merges = [tokenizer.token_bytes(256 + i).decode("utf-8", "replace") for i in range(min(8, len(tokenizer.merges)))]
    log(f"      {len(tokenizer.merges)} merges in {time.perf_counter() - t0:.1f} s; the first ones: "
        + ", ".join(repr(m) for m in first_merges))

    log("")
    texts = [line for line in lines if line.strip()]
    example = (DOC_SEPARATOR + DOC_SEPARATOR.join(texts[:3]) + DOC_SEPARATOR) if docs else texts[0]
    ids = tokenizer.encode(example, allowed_special="all")
    log("[3/6] A tokenized example, the way the model reads it (each colour, or each |, is one token):")
    log("      " + render_segments(token_segments(tokenizer, ids), color=color))
    log(f"      ids: {ids}")
    if docs:
        log(f"      Every name is framed by the separator {DOC_SEPARATOR} (id {tokenizer.special_tokens[DOC_SEPARATOR]}): "
            "the model learns where a name starts and ends.")

    log("")
    dataset = prepare_dataset(paths, tokenizer, docs=docs)
    log(f"[4/6] Training a GPT on {len(dataset.train):,} tokens ({dataset.train_bytes:,} bytes); "
        f"{len(dataset.val):,} held-out validation tokens are never trained on.")
    budget = f"{steps} steps" + (f" or {minutes:g} minutes, whichever comes first" if minutes is not None else "")
    log(f"      Budget: {budget}. Each step: predict every next token of {batch_size} random windows, "
        "backpropagate, AdamW update.")
    config = GPTConfig(vocab_size=tokenizer.vocab_size, **model_shape)
    args = TrainArgs(steps=steps, batch_size=batch_size, lr=3e-3, warmup=min(50, max(1, steps // 10)),
                     eval_every=max(1, min(250, steps)), save_every=max(1, steps), log_every=max(1, min(10, steps)),
                     seed=seed)
    if out.exists() and ckpt.run_exists(out):
        for f in (ckpt.CONFIG, ckpt.TOKENIZER, ckpt.MODEL, ckpt.OPTIMIZER, ckpt.STATE, ckpt.METRICS):
            (out / f).unlink(missing_ok=True)  # an earlier demo: start afresh
    data_info = {"corpus": [name], "files": [str(p) for p in paths], "docs": docs, "demo": True}
    result = train(out, dataset, tokenizer, config, args, device=device, data_info=data_info,
                   log=lambda line: log("      " + line.strip()), on_step=budget_stopper(minutes, args))

    log("")
    log("[5/6] Evaluating on the whole validation split (text the model never saw).")
    run = ckpt.load_run(out, device=device)
    ev = evaluate_dataset(run.model, dataset, "val", tokenizer=tokenizer)
    log(f"      {ev.summary()}")
    log("      Bits per byte = total bits the model needs to encode the text / its UTF-8 bytes: fair across "
        "tokenizers. A uniform guess over 256 bytes costs 8; always guessing right costs 0.")

    log("")
    what = "new names" if docs else "samples"
    how = ("each starts from the separator token and stops when the model writes it again" if docs
           else "each starts from a new line and runs for 64 tokens")
    log(f"[6/6] Sampling {num_samples} {what}: {how} (temperature 0.8, top-k 40).")
    known = {line.strip() for line in lines if line.strip()}
    rng = np.random.default_rng(seed)
    samples, novel = [], 0
    for _ in range(num_samples):
        text = generate(run.model, tokenizer, "", max_new_tokens=config.block_size if docs else 64, seed=rng).text
        sample = text.strip() if docs else text
        samples.append(sample)
        is_new = sample not in known
        novel += is_new
        if docs:
            log(f"      {sample:<20}{'  (new)' if is_new else ''}".rstrip())
        else:
            log("      " + sample.replace("\n", "\n      "))
    if docs:
        log(f"      {novel} of {num_samples} samples are not in the training data (nor anywhere in the corpus).")
    seconds = time.perf_counter() - started
    log("")
    log(f"Done in {seconds / 60:.1f} minutes. The run is in {out}: try `tinygpt generate {out}`, "
        f"`tinygpt explain {out} --prompt em`, `tinygpt plot {out}`.")
    return DemoResult(out, name, result.step, samples, novel, ev.loss, ev.bits_per_byte, seconds)


__all__ = ["run_demo", "DemoResult", "pick_corpus", "DEMO_MODEL", "DEMO_VOCAB"]
