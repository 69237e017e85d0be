"""Evaluate a trained model exactly: loss per token, perplexity and bits per byte over a whole split.

    result = evaluate_run("runs/names")                   # the val split of the corpus the run trained on
    print(result.summary())  # val: 1.95 nats/token, perplexity 7.0, 2.47 bits/byte over 22,840 bytes

Why bits per byte: loss per token depends on what a token is. A tokenizer with longer tokens has fewer, harder
tokens, so its loss per token is higher even when the model is better. Bits per byte divides the total
information the model needs (sum over tokens of -log2 p(token)) by the UTF-8 bytes of the text, which every
tokenizer agrees on: models with different vocabularies compare fairly, and a byte-level model's figure is
directly comparable to a character-level one's on ASCII text.

The text is cut into consecutive, non-overlapping windows of block_size tokens (tinygpt.data.eval_batches), so
every token is predicted exactly once; the first tokens of each window see less context than a sliding window
would give them, which makes this figure a little pessimistic (and cheap).
"""
import math
import os
from dataclasses import dataclass
from pathlib import Path

from tinygpt.errors import TinyGPTError

SPLITS = ("val", "train", "all")


@dataclass
class EvalResult:
    """Exact figures over `n_tokens` predicted tokens standing for `n_bytes` bytes of text."""
    loss: float          # mean cross-entropy in nats per token
    n_tokens: int        # predicted tokens (targets)
    n_bytes: int         # UTF-8 bytes of the text those tokens encode
    split: str = "val"
    corpus: str = ""

    @property
    def perplexity(self) -> float:
        """exp(loss): the model is as unsure as a uniform choice among this many tokens."""
        return math.exp(self.loss) if self.loss < 700 else float("inf")

    @property
    def bits_per_byte(self) -> float:
        from tinygpt.data import bits_per_byte
        return bits_per_byte(self.loss, self.n_tokens, self.n_bytes)

    @property
    def bytes_per_token(self) -> float:
        return self.n_bytes / max(1, self.n_tokens)

    def summary(self) -> str:
        """One line: split, loss, perplexity, bits per byte and the amount of text."""
        return (f"{self.split}: {self.loss:.4f} nats/token, perplexity {self.perplexity:.2f}, "
                f"{self.bits_per_byte:.4f} bits/byte over {self.n_tokens:,} tokens = {self.n_bytes:,} bytes "
                f"({self.bytes_per_token:.2f} bytes/token)")

    def to_dict(self) -> dict:
        return dict(split=self.split, corpus=self.corpus, loss=self.loss, perplexity=self.perplexity,
                    bits_per_byte=self.bits_per_byte, n_tokens=self.n_tokens, n_bytes=self.n_bytes,
                    bytes_per_token=self.bytes_per_token)


def summed_loss(model, batches, device=None, progress=None) -> tuple[float, int]:
    """(sum of -ln p(target), number of targets) over (x, y) int32 batches; targets y < 0 are padding.

    The forward is TinyJit-compiled once for the batch shape, so a long split costs one compilation.
    """
    from tinygrad import Context, Tensor, TinyJit, nn
    device = device or nn.state.get_parameters(model)[0].device

    @TinyJit
    def batch_loss(x: Tensor, y: Tensor) -> Tensor:
        with Context(TRAINING=0):
            return model(x).sparse_categorical_crossentropy(y, ignore_index=-1, reduction="sum").realize()

    total, count = 0.0, 0
    for i, (x, y) in enumerate(batches):
        total += float(batch_loss(Tensor(x, device=device), Tensor(y, device=device)).item())
        count += int((y >= 0).sum())
        if progress is not None:
            progress(i + 1)
    return total, count


def evaluate_dataset(model, dataset, split: str = "val", batch_size: int = 16, tokenizer=None,
                     progress=None) -> EvalResult:
    """Exact loss and bits per byte of `model` over a whole split of a tinygpt.data.TokenDataset.

    split "all" evaluates the whole text (train + val); its first token has no context and is not predicted, so
    in plain-text mode its bytes (which needs `tokenizer`) are left out of the byte count.
    """
    from tinygpt.data import TokenDataset
    if split not in SPLITS:
        raise TinyGPTError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    block_size = model.config.block_size
    if split == "all":
        n_train = len(dataset.tokens)
        first_bytes = 0 if dataset.docs or tokenizer is None else len(tokenizer.token_bytes(int(dataset.tokens[0])))
        whole = TokenDataset(dataset.tokens, n_train, dataset.train_bytes + dataset.val_bytes - first_bytes, 0,
                             dataset.vocab_size, dataset.docs)
        dataset, split = whole, "train"
    if dataset.n_targets(split) < 1:
        raise TinyGPTError(f"the {split} split has no tokens to predict; use a bigger corpus")
    total, count = summed_loss(model, dataset.eval_batches(split, batch_size, block_size), progress=progress)
    if count != dataset.n_targets(split):  # eval_batches covers every target once; anything else is a bug
        raise TinyGPTError(f"internal error: evaluated {count} targets, expected {dataset.n_targets(split)}")
    return EvalResult(total / count, count, dataset.n_bytes(split))


def evaluate_run(run_dir, corpus=None, split: str = "val", device=None, docs: bool | None = None,
                 batch_size: int = 16, progress=None, log=None) -> EvalResult:
    """Load a run directory and evaluate it exactly on a split of its own corpus, or of `corpus` if given.

    `corpus`: a catalog name or text file(s) (see corpora.resolve_corpus). `docs`: one document per line framed by
    the separator; default: the run's own setting for its corpus, else whether `corpus` is a names-like corpus.
    """
    from bpe.errors import TokenizerError
    from corpora import is_docs_corpus, resolve_corpus
    from tinygpt.checkpoint import load_run
    from tinygpt.data import DOC_SEPARATOR, prepare_dataset
    if split not in SPLITS:
        raise TinyGPTError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TinyGPTError(f"{run_dir}: no such run directory; train one with `tinygpt train --out {run_dir}`")
    run = load_run(run_dir, device=device)
    if corpus is None or (isinstance(corpus, (list, tuple)) and not corpus):
        files = run.data.get("files") or []
        # the files the run read, while they are still there; else its corpus spec (a catalog name resolves anywhere)
        corpus = files if files and all(Path(f).is_file() for f in files) else run.data.get("corpus")
        if not corpus:
            raise TinyGPTError(f"{run_dir / 'config.json'} does not say which corpus the run used; pass --corpus")
        docs = run.data.get("docs", False) if docs is None else docs
    elif docs is None:
        docs = is_docs_corpus(corpus) and DOC_SEPARATOR in run.tokenizer.special_tokens
    paths = resolve_corpus(corpus)
    try:
        dataset = prepare_dataset(paths, run.tokenizer, docs=docs)
    except TokenizerError as e:
        raise TinyGPTError(str(e)) from None
    if log:
        log(f"evaluating {run_dir} on the {split} split of {', '.join(map(str, paths))} "
            f"({'one document per line' if docs else 'plain text'})")
    result = evaluate_dataset(run.model, dataset, split, batch_size, run.tokenizer, progress)
    result.corpus = ", ".join(os.fspath(p) for p in paths)
    result.split = split
    return result


__all__ = ["EvalResult", "evaluate_run", "evaluate_dataset", "summed_loss", "SPLITS"]
