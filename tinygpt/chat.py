"""An interactive loop over a base (not instruction-tuned) model: you type text, the model continues the transcript.

Each line you type is appended to the conversation as it is (no template: the model only knows its corpus) and the
model's continuation follows it, ending at a stop string (a blank line by default), the `<|endoftext|>` separator
or max_new_tokens. An empty line lets the model go on. The conversation is kept as token ids, the model's own
tokens included, trimmed to the last block_size tokens. Lines starting with "/" are commands:

    /help  /quit  /reset  /settings  /set NAME VALUE   (e.g. /set temperature 0.7, /set top_k 0, /set stop \\n)
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from tinygpt.errors import TinyGPTError
from tinygpt.generation import (DEFAULT_MAX_NEW_TOKENS, DEFAULT_REPETITION_PENALTY, DEFAULT_TEMPERATURE,
                              DEFAULT_TOP_K, DEFAULT_TOP_P, SEPARATOR, generate, parse_escapes)
from tinygpt.sampling import validate_sampling

HELP = ("commands: /quit, /reset (forget the conversation), /settings, /set NAME VALUE with NAME one of "
        "temperature, top_k, top_p, repetition_penalty, max_new_tokens, seed, stop "
        "(e.g. /set temperature 0.7, /set stop \\n, /set stop none)")


@dataclass
class ChatSettings:
    """The sampling settings of a chat session (the same meaning as generate's arguments)."""
    temperature: float = DEFAULT_TEMPERATURE
    top_k: int = DEFAULT_TOP_K
    top_p: float = DEFAULT_TOP_P
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    seed: int | None = None
    stop: tuple[str, ...] = field(default=("\n\n",))

    def validate(self) -> None:
        validate_sampling(self.temperature, self.top_k, self.top_p, self.repetition_penalty)
        if self.max_new_tokens < 1:
            raise TinyGPTError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if any(not stop for stop in self.stop):
            raise TinyGPTError("a stop string must not be empty")

    def with_value(self, name: str, text: str) -> "ChatSettings":
        """A copy with one setting parsed from text ("top-p" and "top_p" both work); TinyGPTError if invalid."""
        key = name.replace("-", "_")
        kinds = {f.name: f for f in fields(self)}
        if key not in kinds:
            raise TinyGPTError(f"unknown setting {name!r}; settable: {', '.join(kinds)}")
        try:
            if key == "stop":
                value = () if text.lower() == "none" else (parse_escapes(text),)
            elif key == "seed":
                value = None if text.lower() == "none" else int(text)
            elif key in ("top_k", "max_new_tokens"):
                value = int(text)
            else:
                value = float(text)
        except ValueError:
            raise TinyGPTError(f"{name} needs a {'number' if key != 'stop' else 'string'}, got {text!r}") from None
        updated = replace(self, **{key: value})
        updated.validate()
        return updated

    def describe(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in asdict(self).items())


class ChatSession:
    """The state of one conversation: history (token ids), settings and the random stream.

    `handle(line)` yields what to print for one input line (a reply in pieces, or one line answering a command);
    `finished` turns true after /quit. Errors in commands are answered as "error: ..." lines, the session goes on.
    """

    def __init__(self, model, tokenizer, settings: ChatSettings | None = None, use_cache: bool = True,
                 bos: bool | None = None):
        self.model, self.tokenizer, self.use_cache, self.bos = model, tokenizer, use_cache, bos
        self.settings = settings or ChatSettings()
        self.settings.validate()
        self.rng = np.random.default_rng(self.settings.seed)
        self.finished = False
        self.last_stats = None
        self.reset()

    def reset(self) -> None:
        """Forget the conversation: it starts again from the separator token (see generate's `bos`)."""
        separator = self.tokenizer.special_tokens.get(SEPARATOR)
        self.history: list[int] = [] if separator is None or self.bos is False else [separator]

    def handle(self, line: str) -> Iterator[str]:
        """Process one input line: a command, or text the model continues."""
        line = line.rstrip("\r\n")
        if line.startswith("/"):
            yield self._command(line) + "\n"
            return
        yield from self._reply(line)

    def _command(self, line: str) -> str:
        name, _, arg = line[1:].strip().partition(" ")
        if name in ("quit", "exit", "q"):
            self.finished = True
            return "bye"
        if name == "reset":
            self.reset()
            return "conversation cleared"
        if name in ("settings", "show"):
            return self.settings.describe()
        if name == "help":
            return HELP
        if name == "set":
            key, _, value = arg.strip().partition(" ")
            if not key or not value.strip():
                return "error: usage: /set NAME VALUE (e.g. /set temperature 0.7)"
            try:
                self.settings = self.settings.with_value(key, value.strip())
            except TinyGPTError as e:
                return f"error: {e}"
            if key == "seed":
                self.rng = np.random.default_rng(self.settings.seed)
            return f"{key.replace('-', '_')} = {getattr(self.settings, key.replace('-', '_'))!r}"
        return f"error: unknown command /{name} (try /help)"

    def _reply(self, text: str) -> Iterator[str]:
        s = self.settings
        if text:
            self.history += self.tokenizer.encode_ordinary(text)
        block_size = self.model.config.block_size
        self.history = self.history[-block_size:]
        if not self.history:  # no separator and nothing typed: nothing to continue
            return
        reply = generate(self.model, self.tokenizer, self.history, max_new_tokens=s.max_new_tokens,
                         temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
                         repetition_penalty=s.repetition_penalty, seed=self.rng, stop=s.stop,
                         use_cache=self.use_cache)
        yield from reply
        yield "\n"
        self.history += reply.tokens  # the model's own tokens, stop string included, stay in the conversation
        if reply.stats.stop_reason == "separator":
            self.history.append(self.tokenizer.special_tokens[SEPARATOR])
        self.last_stats = reply.stats


def terminal_lines(prompt: str = "> ") -> Iterator[str]:
    """Lines typed at a terminal, with line editing and history (readline) and a prompt; ends at Ctrl-D."""
    try:
        import readline  # noqa: F401  (importing it gives input() editing and history)
    except ImportError:  # pragma: no cover - Windows
        pass
    while True:
        try:
            yield input(prompt)
        except EOFError:
            return


def run_chat(session: ChatSession, lines: Iterable[str], write, interactive: bool = True) -> None:
    """Feed input lines to the session and `write(text)` its output piece by piece, until /quit or end of input.

    Interactive (lines from `terminal_lines`, which shows the prompt): Ctrl-C ends a reply, not the session.
    Otherwise (piped input) each input line is written back after "> ", so the output reads as a transcript.
    """
    for line in lines:
        line = line.rstrip("\r\n")
        if not interactive:
            write(f"> {line}\n")
        try:
            for piece in session.handle(line):
                write(piece)
        except KeyboardInterrupt:
            if not interactive:
                raise
            write("\n[interrupted]\n")
        if session.finished:
            return
