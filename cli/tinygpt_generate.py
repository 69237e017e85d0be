"""`tinygpt generate` and `tinygpt chat`: sample text from a run directory (the logic is in tinygpt.generation/chat)."""
import sys

import click

from tinygpt.generation import (DEFAULT_MAX_NEW_TOKENS, DEFAULT_REPETITION_PENALTY, DEFAULT_TEMPERATURE,
                              DEFAULT_TOP_K, DEFAULT_TOP_P)


def sampling_options(fn):
    """The sampling flags shared by generate and chat."""
    options = [
        click.option("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS, show_default=True,
                     help="Most tokens to generate (per sample / per reply)."),
        click.option("--temperature", type=float, default=DEFAULT_TEMPERATURE, show_default=True,
                     help="Softmax temperature; 0 = greedy (always the most likely token)."),
        click.option("--top-k", type=int, default=DEFAULT_TOP_K, show_default=True,
                     help="Sample only among the K most likely tokens; 0 = off."),
        click.option("--top-p", type=float, default=DEFAULT_TOP_P, show_default=True,
                     help="Nucleus sampling: the smallest set of tokens reaching probability P; 1 = off."),
        click.option("--repetition-penalty", type=float, default=DEFAULT_REPETITION_PENALTY, show_default=True,
                     help="Penalise tokens already in the context (>1 penalises); 1 = off."),
        click.option("--seed", type=int, default=None, show_default="random",
                     help="Random seed: the same seed on the same device gives the same text."),
        click.option("--device", default="auto", show_default=True,
                     help="CPU, CUDA, METAL, ... or auto (tinygrad's default)."),
        click.option("--no-cache", is_flag=True, help="Run the whole context every token instead of the KV cache "
                                                      "(slower; same text)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _load(run_dir, device):
    import tinygpt
    return tinygpt.load(run_dir, device=None if device == "auto" else device)


@click.command("generate")
@click.argument("run_dir")
@click.option("--prompt", default="", show_default=True,
              help="Text to continue; empty starts a new document from the <|endoftext|> separator.")
@sampling_options
@click.option("--num-samples", type=int, default=1, show_default=True, help="How many samples to draw.")
@click.option("--stop", multiple=True, metavar="STRING",
              help="End a sample at this string (not printed); repeatable. Escapes like \\n are understood.")
@click.option("--no-echo", is_flag=True, help="Print only the generated text, not the prompt.")
@click.option("--allow-special", is_flag=True,
              help="Encode special-token text in the prompt (e.g. <|endoftext|>) as special tokens.")
def generate(run_dir, prompt, max_new_tokens, temperature, top_k, top_p, repetition_penalty, seed, device,
             no_cache, num_samples, stop, no_echo, allow_special):
    """Continue a prompt with a trained model from RUN_DIR, streaming the text as it is produced.

    Timings (first-token latency, tokens/s) go to stderr.
    """
    import numpy as np

    from tinygpt.errors import TinyGPTError
    from tinygpt.generation import generate as generate_text
    from tinygpt.generation import parse_escapes, run_starts_documents, special_text_in
    from tinygpt.sampling import validate_sampling
    validate_sampling(temperature, top_k, top_p, repetition_penalty)  # before the (slow) model load
    if num_samples < 1:
        raise TinyGPTError(f"--num-samples must be >= 1, got {num_samples}")
    model, tokenizer = _load(run_dir, device)
    bos = run_starts_documents(run_dir)
    if not allow_special and (found := special_text_in(tokenizer, prompt)):
        click.echo(f"note: the prompt's {', '.join(found)} is read as plain text; "
                   "pass --allow-special to encode it as a special token", err=True)
    rng = np.random.default_rng(seed)
    for i in range(num_samples):
        if i:
            click.echo("\n---")
        if not no_echo:
            click.echo(prompt, nl=False)
        pieces = generate_text(model, tokenizer, prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                               top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty, seed=rng,
                               stop=[parse_escapes(s) for s in stop], use_cache=not no_cache,
                               allow_special=allow_special, bos=bos)
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
        click.echo()
        click.echo(f"[sample {i + 1}/{num_samples}: {pieces.stats.summary()}]", err=True)


@click.command("chat")
@click.argument("run_dir")
@sampling_options
@click.option("--stop", multiple=True, metavar="STRING", default=["\\n\\n"], show_default=True,
              help="End a reply at this string; repeatable. Escapes like \\n are understood.")
def chat(run_dir, max_new_tokens, temperature, top_k, top_p, repetition_penalty, seed, device, no_cache, stop):
    """Talk to a trained model from RUN_DIR: each line you type is continued by the model.

    Commands: /help, /quit, /reset, /settings, /set NAME VALUE (e.g. /set temperature 0.7).
    Works with piped input too: `printf 'ROMEO:\\n/quit\\n' | tinygpt chat RUN_DIR`.
    """
    from tinygpt.chat import ChatSession, ChatSettings, run_chat, terminal_lines
    from tinygpt.generation import parse_escapes, run_starts_documents
    settings = ChatSettings(temperature=temperature, top_k=top_k, top_p=top_p,
                            repetition_penalty=repetition_penalty, max_new_tokens=max_new_tokens, seed=seed,
                            stop=tuple(parse_escapes(s) for s in stop))
    settings.validate()
    model, tokenizer = _load(run_dir, device)
    session = ChatSession(model, tokenizer, settings, use_cache=not no_cache, bos=run_starts_documents(run_dir))
    interactive = sys.stdin.isatty()
    if interactive:
        click.echo("chatting with a base model: type text for it to continue; /help for commands, /quit to leave",
                   err=True)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    run_chat(session, terminal_lines() if interactive else sys.stdin, write, interactive=interactive)
