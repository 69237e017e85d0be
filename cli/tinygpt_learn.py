"""The learner's commands: `tinygpt demo`, `eval`, `explain`, `plot`, `sweep` (the work is in tinygpt.*)."""
import json
import os
import sys

import click


def _use_color(color) -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ if color is None else color


def _echo(line: str = "") -> None:
    click.echo(line)
    sys.stdout.flush()


_COLOR = click.option("--color/--no-color", default=None, show_default="colour when stdout is a terminal",
                      help="Colour the token boundaries.")
_DEVICE = click.option("--device", default="auto", help="CPU, CUDA, METAL, ... or auto (tinygrad's default).")


@click.command("demo", context_settings={"show_default": True})
@click.option("--out", default="runs/demo", metavar="RUN_DIR", type=click.Path(file_okay=False),
              help="Where the demo run is written (an earlier demo there is replaced).")
@click.option("--corpus", default=None, metavar="NAME|FILE",
              show_default="names if cached, else builtin-names (no download)",
              help="Corpus to learn from; a catalog name is downloaded if needed.")
@click.option("--minutes", type=float, default=6.0, help="Stop training after this many minutes (0: no limit).")
@click.option("--steps", type=int, default=None, show_default="1500",
              help="Training steps (the learning-rate schedule's length).")
@click.option("--vocab", type=int, default=384, help="Tokenizer size (256 bytes + merges + the separator).")
@click.option("--samples", "num_samples", type=int, default=20, help="How many samples to print.")
@click.option("--seed", type=int, default=1337, help="Random seed for training and sampling.")
@_DEVICE
@_COLOR
def demo(out, corpus, minutes, steps, vocab, num_samples, seed, device, color):
    """Train a tokenizer and a small GPT on names and print new names, explaining each stage (a few minutes)."""
    from tinygpt.demo import run_demo
    run_demo(out=out, corpus=corpus, minutes=minutes or None, steps=steps, vocab=vocab, num_samples=num_samples,
             device=device, seed=seed, color=_use_color(color), log=_echo)


@click.command("eval", context_settings={"show_default": True})
@click.argument("run_dir", type=click.Path())
@click.option("--corpus", multiple=True, metavar="NAME|FILE", show_default="the run's own corpus",
              help="Evaluate on this corpus instead (catalog name or text file; repeat for several).")
@click.option("--split", type=click.Choice(["val", "train", "all"]), default="val",
              help="Which part of the corpus: the validation split, the train split, or all of it.")
@click.option("--docs/--no-docs", default=None, show_default="the run's setting / auto for --corpus",
              help="One document per line, framed by <|endoftext|>.")
@click.option("--batch-size", type=int, default=16, help="Windows per forward pass.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@_DEVICE
def eval_cmd(run_dir, corpus, split, docs, batch_size, as_json, device):
    """Exact loss per token, perplexity and bits per byte of a run over a whole split."""
    from tinygpt.evaluate import evaluate_run
    if batch_size < 1:
        raise click.BadParameter("must be at least 1", param_hint="--batch-size")
    log = (lambda line: click.echo(line, err=True))
    result = evaluate_run(run_dir, corpus=list(corpus) or None, split=split, device=device, docs=docs,
                          batch_size=batch_size, log=log)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    click.echo(f"tokens evaluated : {result.n_tokens:,} ({result.n_bytes:,} bytes of text, "
               f"{result.bytes_per_token:.3f} bytes/token)")
    click.echo(f"loss             : {result.loss:.4f} nats/token")
    click.echo(f"perplexity       : {result.perplexity:.3f}")
    click.echo(f"bits per byte    : {result.bits_per_byte:.4f}")


@click.command("explain", context_settings={"show_default": True})
@click.argument("run_dir", type=click.Path())
@click.option("--prompt", default="", help="Text to run through the model (empty: the separator token).")
@click.option("--head", type=int, default=0, help="Which attention head to show in each block.")
@click.option("--positions", type=int, default=10, help="Show at most this many (last) positions.")
@_DEVICE
@_COLOR
def explain(run_dir, prompt, head, positions, device, color):
    """Show one forward pass of a trained model with its real numbers, stage by stage."""
    from tinygpt.explain import explain_run, render
    if positions < 1:
        raise click.BadParameter("must be at least 1", param_hint="--positions")
    ex = explain_run(run_dir, prompt, device=device)
    click.echo(render(ex, head=head, color=_use_color(color), max_positions=positions))


@click.command("plot", context_settings={"show_default": True})
@click.argument("run_dir", type=click.Path())
@click.option("-o", "--out", default=None, type=click.Path(dir_okay=False), show_default="RUN_DIR/loss.png",
              help="PNG file to write.")
def plot(run_dir, out):
    """Draw train/val loss and tokens/s over steps as a PNG (needs matplotlib)."""
    from tinygpt.plot import plot_run
    path = plot_run(run_dir, out)
    click.echo(f"wrote {path}")


@click.command("sweep", context_settings={"show_default": True})
@click.option("--vocab", "vocabs", default="256,512,1000,4096",
              help="Comma-separated vocabulary sizes (256 = bytes only).")
@click.option("--corpus", default="builtin-names", metavar="NAME|FILE", help="Corpus for every run.")
@click.option("--minutes", type=float, default=None, help="Training minutes per run.")
@click.option("--steps", type=int, default=None, help="Training steps per run (with --minutes: first reached).")
@click.option("--out", default="runs/sweep", type=click.Path(file_okay=False),
              help="Folder for the runs (OUT/vocab-V) and sweep.json.")
@click.option("--block-size", type=int, default=64, help="Context length in tokens.")
@click.option("--n-layer", type=int, default=2, help="Transformer blocks.")
@click.option("--n-embd", type=int, default=64, help="Embedding width.")
@click.option("--batch-size", type=int, default=16, help="Sequences per step.")
@click.option("--docs/--no-docs", default=None, show_default="auto: on for one-name-per-line corpora",
              help="One document per line, framed by <|endoftext|>.")
@_DEVICE
def sweep(vocabs, corpus, minutes, steps, out, block_size, n_layer, n_embd, batch_size, docs, device):
    """Train one tokenizer + small GPT per vocabulary size on the same budget; compare bits per byte."""
    from tinygpt.sweep import format_table, parse_vocabs, sweep as run_sweep
    rows = run_sweep(corpus, parse_vocabs(vocabs), minutes=minutes, steps=steps, out=out, device=device, docs=docs,
                     model=dict(block_size=block_size, n_layer=n_layer, n_embd=n_embd), batch_size=batch_size,
                     log=lambda line="": click.echo(line, err=True))
    click.echo(format_table(rows))
    click.echo(f"(runs and sweep.json in {out})")
