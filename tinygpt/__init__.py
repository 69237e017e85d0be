"""tinygpt: a GPT in tinygrad that trains on any corpus with a `bpe` tokenizer.

    model, tok = tinygpt.load("runs/names")          # a run directory written by `tinygpt train`
    for piece in tinygpt.generate(model, tok, "An"): print(piece, end="")
"""


def load(run_dir, device=None):
    """Load a trained run directory -> (model, tokenizer). `device`: "CPU", "CUDA", ... or None for the default."""
    from tinygpt.checkpoint import load_run
    run = load_run(run_dir, device=device)
    return run.model, run.tokenizer


def generate(*args, **kwargs):
    """Stream generated text pieces; see tinygpt.generation.generate (imported lazily: tinygrad loads only when used)."""
    from tinygpt.generation import generate as _generate
    return _generate(*args, **kwargs)
