"""The `bpe` command: train, inspect and export byte-level BPE tokenizers. A thin layer over the `bpe` library."""
import os
import sys
import time

import click

from cli.common import run_group

DEFAULT_TOKENIZER = "tokenizer.json"
TOKENIZER_OPTION = click.option("-t", "--tokenizer", "tokenizer_path", default=DEFAULT_TOKENIZER,
                                type=click.Path(dir_okay=True), help="Tokenizer file written by `bpe train`.")
ERRORS_OPTION = click.option("--errors", type=click.Choice(["strict", "replace"]), default="strict",
                             help="What to do with bytes that are not UTF-8: stop with an error, or "
                                  "replace them with U+FFFD.")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
def bpe():
    """Train, inspect and export byte-level BPE tokenizers (tiktoken- and Hugging Face-compatible)."""


# ----------------------------------------------------------------------------------------------- train
@bpe.command()
@click.argument("corpus", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("--vocab", "vocab_size", type=int, default=1000,
              help="Vocabulary size: 256 byte tokens + merges + special tokens.")
@click.option("--pattern", default="gpt4",
              help="Pre-split regex: gpt4 (alias cl100k), gpt2, o200k, or a regex of your own.")
@click.option("--special", "specials", multiple=True, default=(), show_default="none",
              help="A special token string, e.g. '<|endoftext|>' (repeat for more); ids follow the merges.")
@click.option("-o", "--output", default=DEFAULT_TOKENIZER, type=click.Path(),
              help="Where to write the trained tokenizer (JSON).")
@ERRORS_OPTION
@click.option("-q", "--quiet", is_flag=True, show_default="off", help="No progress on stderr.")
def train(corpus, vocab_size, pattern, specials, output, errors, quiet):
    """Train a tokenizer on one or more UTF-8 text files."""
    from bpe import Tokenizer
    from bpe.atomic import atomic_path
    from bpe.display import text_stats
    from bpe.errors import TokenizerError
    from bpe.patterns import resolve_pattern
    from bpe.textio import check_text_files, read_text_blocks, total_bytes

    paths = check_text_files(corpus)
    pattern = resolve_pattern(pattern)  # a bad regex fails now, not after reading the corpus
    if os.path.isdir(output):
        raise TokenizerError(f"-o {output} is a directory; give a file name such as {os.path.join(output, DEFAULT_TOKENIZER)}")

    size = total_bytes(paths)
    progress = Progress(quiet)
    start = time.perf_counter()
    blocks = read_text_blocks(paths, errors=errors, progress=lambda done: progress("counting", done, size, fmt_bytes))
    tok = Tokenizer.train(blocks, vocab_size, pattern=pattern, special_tokens=list(specials),
                          progress=lambda done, total: progress("merging", done, total, fmt_count))
    seconds = time.perf_counter() - start
    stats = text_stats(tok, read_text_blocks(paths, errors=errors,
                                             progress=lambda done: progress("measuring", done, size, fmt_bytes)))
    progress.done()
    with atomic_path(output) as tmp:
        tok.save(tmp)
    click.echo(f"trained {tok.vocab_size} tokens (256 bytes + {tok.vocab_size - 256 - len(specials)} merges + "
               f"{len(specials)} special) on {fmt_bytes(size)} in {seconds:.2f} s")
    click.echo(f"{stats.bytes_per_token:.2f} bytes per token on the corpus ({stats.tokens:,} tokens)")
    click.echo(f"saved {output}")


# ---------------------------------------------------------------------------------------------- encode
@bpe.command()
@TOKENIZER_OPTION
@click.argument("text", required=False)
@click.option("--file", "file_path", type=click.Path(dir_okay=True), default=None, show_default="none",
              help="Encode this file instead of TEXT (with neither, read stdin).")
@click.option("--allow-special", is_flag=True, show_default="off", help="Encode special-token strings in the text as their ids.")
@click.option("--ordinary", is_flag=True, show_default="off", help="Encode special-token strings as plain text.")
@click.option("--json", "as_json", is_flag=True, show_default="off", help="Print the ids as a JSON list.")
@ERRORS_OPTION
def encode(tokenizer_path, text, file_path, allow_special, ordinary, as_json, errors):
    """Print the token ids of TEXT (or --file, or stdin)."""
    from bpe.errors import TokenizerError
    if allow_special and ordinary:
        raise TokenizerError("--allow-special and --ordinary contradict each other; pass one of them")
    tok = load_tokenizer(tokenizer_path)
    text = input_text(text, file_path, errors)
    if ordinary:
        ids = tok.encode_ordinary(text)
    else:
        try:
            ids = tok.encode(text, allowed_special="all" if allow_special else set())
        except ValueError as e:
            found = [s for s in tok.special_tokens if s in text]
            problem = f"the text contains the special token {found[0]!r}" if found else first_line(e)
            raise TokenizerError(f"{problem}; pass --allow-special to encode special tokens as their ids, "
                                 f"or --ordinary to encode them as plain text") from None
    click.echo(("[" + ", ".join(map(str, ids)) + "]") if as_json else " ".join(map(str, ids)))


# ---------------------------------------------------------------------------------------------- decode
@bpe.command(context_settings={"ignore_unknown_options": True})
@TOKENIZER_OPTION
@click.argument("ids", nargs=-1)
@click.option("-n", "--no-newline", is_flag=True, show_default="off", help="Do not print a newline after the text.")
def decode(tokenizer_path, ids, no_newline):
    """Print the text of token IDS ("1 2 3", "1,2,3" or "[1, 2, 3]"; with none, read stdin)."""
    from bpe.display import parse_ids
    tok = load_tokenizer(tokenizer_path)
    words = ids or [sys.stdin.read()]
    click.echo(tok.decode(parse_ids(words, tok.vocab_size)), nl=not no_newline)


# ------------------------------------------------------------------------------------------------ show
@bpe.command()
@TOKENIZER_OPTION
@click.argument("text", required=False)
@click.option("--file", "file_path", type=click.Path(dir_okay=True), default=None, show_default="none",
              help="Show this file instead of TEXT (with neither, read stdin).")
@click.option("--color/--no-color", default=None, show_default="colour when stdout is a terminal",
              help="Colour each token's background; without colour, tokens are separated by --separator.")
@click.option("--separator", default="|", help="Mark between tokens when not in colour.")
@click.option("--ids/--no-ids", default=True, help="Print the token ids after the text.")
@ERRORS_OPTION
def show(tokenizer_path, text, file_path, color, separator, ids, errors):
    """Print TEXT with its token boundaries marked, then its ids."""
    from bpe.display import TextStats, render_segments, token_segments
    tok = load_tokenizer(tokenizer_path)
    text = input_text(text, file_path, errors)
    if color is None:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    token_ids = tok.encode(text, allowed_special="all")
    click.echo(render_segments(token_segments(tok, token_ids), color=color, separator=separator), color=color)
    stats = TextStats()
    stats.add(text, token_ids)
    click.echo(f"{stats.tokens} tokens, {stats.bytes} bytes, {stats.bytes_per_token:.2f} bytes per token")
    if ids:
        click.echo(" ".join(map(str, token_ids)))


# ----------------------------------------------------------------------------------------------- stats
@bpe.command()
@TOKENIZER_OPTION
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("--top", default=10, type=click.IntRange(min=0), help="How many of the most frequent tokens to list.")
@ERRORS_OPTION
def stats(tokenizer_path, files, top, errors):
    """Print how the tokenizer cuts FILES: tokens, bytes per token, most frequent tokens."""
    from bpe.display import text_stats, token_label
    from bpe.textio import check_text_files, read_text_blocks
    tok = load_tokenizer(tokenizer_path)
    paths = check_text_files(files)
    s = text_stats(tok, (block for p in paths for block in read_text_blocks([p], errors=errors)))
    click.echo(f"files:            {', '.join(paths)}")
    click.echo(f"bytes:            {s.bytes:,}")
    click.echo(f"characters:       {s.chars:,}")
    click.echo(f"tokens:           {s.tokens:,}")
    click.echo(f"bytes per token:  {s.bytes_per_token:.2f}")
    click.echo(f"chars per token:  {s.chars_per_token:.2f}")
    click.echo(f"distinct tokens:  {len(s.counts):,} of {tok.vocab_size:,}")
    if top:
        click.echo(f"most frequent tokens:\n{'rank':>6} {'id':>7} {'count':>10} {'share':>7}  token")
        for rank, (token_id, count) in enumerate(s.counts.most_common(top), 1):
            click.echo(f"{rank:>6} {token_id:>7} {count:>10,} {100 * count / s.tokens:>6.2f}%  {token_label(tok, token_id)}")


# ---------------------------------------------------------------------------------------------- export
@bpe.command()
@TOKENIZER_OPTION
@click.option("--format", "fmt", type=click.Choice(["tiktoken", "huggingface"]), default="tiktoken",
              help="tiktoken: a ranks file for tiktoken.load.load_tiktoken_bpe; huggingface: a tokenizer.json "
                   "for tokenizers.Tokenizer.from_file.")
@click.option("-o", "--output", default=None, type=click.Path(),
              show_default="the tokenizer's name with .tiktoken or .hf.json",
              help="Where to write the exported file.")
def export(tokenizer_path, fmt, output):
    """Write the tokenizer in tiktoken's or Hugging Face's format (same ids)."""
    from bpe.atomic import atomic_path
    from bpe.errors import TokenizerError
    tok = load_tokenizer(tokenizer_path)
    if output is None:
        output = os.path.splitext(tokenizer_path)[0] + (".tiktoken" if fmt == "tiktoken" else ".hf.json")
    if os.path.isdir(output):
        raise TokenizerError(f"-o {output} is a directory; give a file name")
    with atomic_path(output) as tmp:
        (tok.save_tiktoken if fmt == "tiktoken" else tok.save_huggingface)(tmp)
    click.echo(f"wrote {output} ({fmt}, {tok.vocab_size} tokens)")
    if fmt == "tiktoken":
        click.echo("note: a .tiktoken file holds only the ranks; give tiktoken.Encoding the pattern "
                   "(tok.pattern) and special_tokens yourself")


# --------------------------------------------------------------------------------------------- helpers
def load_tokenizer(path):
    """Load a tokenizer file, with one-line errors for a missing path, a directory or a non-tokenizer file."""
    from bpe import Tokenizer
    from bpe.errors import TokenizerError
    if os.path.isdir(path):
        raise TokenizerError(f"-t {path} is a directory, not a tokenizer file")
    if not os.path.exists(path):
        raise TokenizerError(f"tokenizer file {path} not found; train one with `bpe train CORPUS -o {path}` "
                             f"or pass -t FILE")
    try:
        return Tokenizer.load(path)
    except TokenizerError:
        raise
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise TokenizerError(f"{path} is not a readable tokenizer file: {first_line(e)}") from None


def input_text(text, file_path, errors):
    """The text to work on: the TEXT argument, else the --file, else stdin (decoded as UTF-8)."""
    from bpe.errors import TokenizerError
    from bpe.textio import read_text
    if text is not None and file_path is not None:
        raise TokenizerError("give either TEXT or --file, not both")
    if text is not None:
        return text
    if file_path is not None:
        return read_text(file_path, errors=errors, allow_empty=True)
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        raise TokenizerError(f"stdin is not valid UTF-8: byte 0x{data[e.start]:02x} at offset {e.start}; "
                             f"use --errors replace") from None


def first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def fmt_count(n: float) -> str:
    return f"{n:,.0f}"


class Progress:
    """Progress on stderr: one live line on a terminal, one line per finished phase otherwise."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.live = sys.stderr.isatty()
        self.phase, self.phase_start, self.last_draw, self.line = None, time.perf_counter(), 0.0, ""

    def __call__(self, phase: str, done: float, total: float, fmt) -> None:
        if self.quiet:
            return
        now = time.perf_counter()
        if phase != self.phase:
            self._finish_phase(now)
            self.phase, self.phase_start = phase, now
        pct = f" ({100 * done / total:.0f}%)" if total else ""
        self.line = f"{phase} {fmt(done)} / {fmt(total)}{pct}"
        if self.live and (now - self.last_draw > 0.1 or done >= total):
            click.echo("\r" + self.line + "\x1b[K", nl=False, err=True)
            self.last_draw = now

    def _finish_phase(self, now: float) -> None:
        if self.phase is None:
            return
        line = f"{self.line}, {now - self.phase_start:.2f} s"
        click.echo(("\r" + line + "\x1b[K") if self.live else line, err=True)

    def done(self) -> None:
        """End the last phase's line."""
        if not self.quiet:
            self._finish_phase(time.perf_counter())
            self.phase = None


def main(args=None):
    run_group(bpe, args)


if __name__ == "__main__":
    main()
