"""`tinygpt train`: flags in, tinygpt.train.train_on_corpus does the work."""
import sys

import click

from tinygpt.train import DEFAULT_VOCAB, TrainArgs

_D = TrainArgs()  # the library's defaults are the CLI's defaults


@click.command("train", context_settings={"show_default": True})
@click.option("--corpus", "corpus", multiple=True, metavar="NAME|FILE", default=["builtin-names"],
              help="Catalog corpus name (tinyshakespeare, names, shuihu, builtin-names, ...) or text file; "
                   "repeat for several files.")
@click.option("--tokenizer", "tokenizer", type=click.Path(dir_okay=False), default=None,
              help="A bpe tokenizer JSON to use (instead of training one with --vocab).")
@click.option("--vocab", type=int, default=None, show_default=f"{DEFAULT_VOCAB} when no --tokenizer",
              help="Train a bpe tokenizer of this many tokens on the corpus first.")
@click.option("--out", "out", type=click.Path(file_okay=False), default="runs/tinygpt", metavar="RUN_DIR",
              help="Run directory for config, tokenizer, checkpoints and metrics.jsonl.")
@click.option("--steps", type=int, default=_D.steps, help="Optimizer steps.")
@click.option("--minutes", type=float, default=None, show_default="no limit",
              help="Stop after this many minutes (compilation included), the LR schedule fitted to the time; --steps stays the upper bound.")
@click.option("--batch-size", type=int, default=_D.batch_size, help="Sequences per micro-batch.")
@click.option("--block-size", type=int, default=64, help="Context length in tokens.")
@click.option("--n-layer", type=int, default=4, help="Transformer blocks.")
@click.option("--n-head", type=int, default=4, help="Attention heads per block.")
@click.option("--n-embd", type=int, default=128, help="Embedding width (divisible by --n-head).")
@click.option("--dropout", type=float, default=0.0, help="Dropout probability while training.")
@click.option("--pos", type=click.Choice(["learned", "rope"]), default="learned", help="Position information.")
@click.option("--lr", type=float, default=_D.lr, help="Peak learning rate (AdamW).")
@click.option("--warmup", type=int, default=_D.warmup, help="Linear warmup steps before the cosine decay.")
@click.option("--grad-clip", type=float, default=_D.grad_clip, help="Clip the global gradient norm (0: off).")
@click.option("--accum", type=int, default=_D.accum, help="Gradient-accumulation micro-batches per step.")
@click.option("--eval-every", type=int, default=_D.eval_every, help="Validation loss every N steps.")
@click.option("--save-every", type=int, default=_D.save_every, help="Checkpoint every N steps.")
@click.option("--seed", type=int, default=_D.seed, help="Random seed (same seed + device = same run).")
@click.option("--device", default="auto", help="CPU, CUDA, METAL, ... or auto (tinygrad's default).")
@click.option("--docs/--no-docs", default=None, show_default="auto: on for one-name-per-line corpora",
              help="One document per line, each framed by <|endoftext|>.")
@click.option("--resume", is_flag=True, help="Continue the checkpoint in RUN_DIR exactly where it stopped.")
@click.pass_context
def train(ctx, corpus, tokenizer, vocab, out, steps, minutes, batch_size, block_size, n_layer, n_head, n_embd, dropout,
          pos, lr, warmup, grad_clip, accum, eval_every, save_every, seed, device, docs, resume):
    """Train a GPT on a corpus; with no arguments, a small model on the built-in names corpus."""
    from click.core import ParameterSource

    from tinygpt.errors import TinyGPTError
    from tinygpt.train import train_on_corpus

    def given(name):
        return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)

    if tokenizer is not None and vocab is not None:
        raise TinyGPTError("give either --tokenizer or --vocab, not both")
    if resume:
        fixed = [p for p in ("tokenizer", "vocab", "block_size", "n_layer", "n_head", "n_embd", "dropout", "pos",
                             "batch_size", "lr", "warmup", "grad_clip", "accum", "eval_every", "save_every", "seed")
                 if given(p)]
        if fixed:
            flags = ", ".join("--" + p.replace("_", "-") for p in fixed)
            raise TinyGPTError(f"--resume continues the saved run with its own settings; drop {flags} "
                               "(only --steps, --corpus and --device may change)")
    args = TrainArgs(steps=steps, batch_size=batch_size, lr=lr, warmup=warmup, grad_clip=grad_clip, accum=accum,
                     eval_every=eval_every, save_every=save_every, seed=seed)
    result = train_on_corpus(
        corpus=list(corpus) if (given("corpus") or not resume) else None, out=out, tokenizer=tokenizer,
        vocab=vocab, docs=docs, n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size,
        dropout=dropout, pos=pos, args=args if (given("steps") or not resume) else None, device=device,
        resume=resume, minutes=minutes)
    if result.interrupted:
        click.echo(f"interrupted at step {result.step}; resume with: tinygpt train --out {out} --resume", err=True)
        sys.exit(130)
    val = f", val loss {result.val_loss:.4f} ({result.val_bpb:.3f} bits/byte)" if result.val_loss is not None else ""
    click.echo(f"trained {result.step} steps: loss {result.loss:.4f}{val}; run saved in {out}\n"
               f"sample it with: tinygpt generate {out}")
