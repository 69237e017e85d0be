"""One forward pass of a real checkpoint, stage by stage, with the real numbers.

    model, tok = tinygpt.load("runs/names")
    ex = explain_forward(model, tok, "Emm")
    print(render(ex))          # text -> tokens -> embeddings -> each block's attention -> logits -> top-5

`explain_forward` recomputes what `GPT.__call__` (tinygpt/model.py) does, one line per step, with the model's
own weights and submodules, and keeps the intermediate values as numpy arrays to show them. Its final logits
equal `model(idx)`'s (tests/test_learn.py checks it), so what you read is what the model computes.
"""
import json
import math
from dataclasses import dataclass, field

import numpy as np

from tinygpt.errors import TinyGPTError


@dataclass
class BlockTrace:
    """What one transformer block did: the attention weights of every head and the residual stream's size."""
    attention: np.ndarray        # (n_head, T, T): row t = how position t spreads its attention over 0..t
    norm_after_attn: np.ndarray  # (T,) L2 norm of each position's residual vector after x + attn(ln_1(x))
    norm_after_mlp: np.ndarray   # (T,) ... after x + mlp(ln_2(x)): the block's output


@dataclass
class Explanation:
    prompt: str
    ids: list[int]
    labels: list[str]                   # a short readable label per token
    segments: list                      # bpe.display.token_segments: for the coloured boundaries
    token_emb: np.ndarray               # (T, C) rows of the token embedding table
    pos_emb: np.ndarray | None          # (T, C) learned position embeddings, or None with rope
    pos_kind: str
    input_norm: np.ndarray              # (T,) norm of token + position embedding
    blocks: list[BlockTrace] = field(default_factory=list)
    logits: np.ndarray | None = None    # (T, vocab_size): the model's output
    truncated: int = 0                  # prompt tokens dropped to fit block_size
    label_of: object = None             # token id -> label, for tokens outside the prompt

    def top_next(self, k: int = 5) -> list[tuple[int, str, float]]:
        """The k most likely next tokens after the last position: (id, label, probability)."""
        last = self.logits[-1].astype(np.float64)
        probs = np.exp(last - last.max())
        probs /= probs.sum()
        order = np.argsort(-probs, kind="stable")[:k]
        return [(int(i), self.label_of(int(i)), float(probs[i])) for i in order]


def token_label(tokenizer, token_id: int) -> str:
    """A token as short readable text: special tokens as themselves, other bytes JSON-escaped (newline = \\n)."""
    data = tokenizer.token_bytes(token_id)
    text = data.decode("utf-8", errors="replace")
    if token_id in tokenizer.special_tokens.values():
        return text
    return json.dumps(text, ensure_ascii=False)[1:-1]


def prompt_ids(tokenizer, prompt: str, block_size: int, after_separator: bool = False) -> tuple[list[int], int]:
    """Token ids of the prompt (special-token text is plain text), cut to the last block_size tokens, and how
    many were cut.

    after_separator=True puts the document separator first, the way a model trained one document per line
    (names) saw the start of every document; an empty prompt is the separator alone.
    """
    from tinygpt.data import DOC_SEPARATOR
    ids = tokenizer.encode_ordinary(prompt)
    separator = tokenizer.special_tokens.get(DOC_SEPARATOR)
    if separator is not None and (after_separator or not ids):
        ids = [separator] + ids
    if not ids:
        raise TinyGPTError("the prompt is empty and the tokenizer has no separator token; give a --prompt")
    dropped = max(0, len(ids) - block_size)
    return ids[dropped:], dropped


def explain_forward(model, tokenizer, prompt: str, after_separator: bool = False) -> Explanation:
    """Run the model on `prompt` step by step (batch of one), keeping every intermediate value for display.

    after_separator: start with the document separator (see prompt_ids), for models trained in docs mode.
    """
    from tinygrad import Context, Tensor, dtypes, nn
    from bpe.display import token_segments
    from tinygpt.model import apply_rope, rope_tables

    config = model.config
    device = nn.state.get_parameters(model)[0].device
    ids, dropped = prompt_ids(tokenizer, prompt, config.block_size, after_separator)
    if max(ids) >= config.vocab_size:
        raise TinyGPTError(f"token id {max(ids)} is outside the model's vocabulary of {config.vocab_size}")
    T, C, H, D = len(ids), config.n_embd, config.n_head, config.head_dim
    idx = Tensor([ids], dtype=dtypes.int32, device=device)

    with Context(TRAINING=0):
        # 1. embeddings: each token id picks a row of the table wte; learned positions add a row of wpe
        tok = model.embed_tokens(idx)                                   # (1, T, C)
        pos = model.wpe.weight[0:T] if config.pos == "learned" else None
        x = tok + pos if pos is not None else tok
        rope = rope_tables(D, T) if config.pos == "rope" else None      # rope rotates q and k instead
        if rope is not None:
            rope = tuple(t.to(device) for t in rope)
        causal = Tensor.ones(T, T, dtype=dtypes.bool, device=device).tril()  # position t sees 0..t only
        ex = Explanation(prompt, ids, [token_label(tokenizer, i) for i in ids], token_segments(tokenizer, ids),
                         tok.numpy()[0], None if pos is None else pos.numpy(), config.pos,
                         np.linalg.norm(x.numpy()[0], axis=-1), truncated=dropped)
        for block in model.h:
            # 2. attention: queries meet keys of earlier positions; softmax weights mix their values
            q, k, v = [t.reshape(1, T, H, D).transpose(1, 2) for t in block.attn.c_attn(block.ln_1(x)).split(C, dim=-1)]
            if rope is not None:
                q, k = apply_rope(q, *rope), apply_rope(k, *rope)
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(D)            # (1, H, T, T)
            weights = causal.where(scores, float("-inf")).softmax(-1)    # the causal mask: no peeking ahead
            heads = (weights @ v).transpose(1, 2).reshape(1, T, C)       # the heads side by side
            x = x + block.attn.c_proj(heads)                             # residual: add, never replace
            after_attn = x.numpy()[0]
            # 3. MLP: each position on its own, widened 4x, GELU, projected back, added to the residual stream
            x = x + block.mlp(block.ln_2(x))
            ex.blocks.append(BlockTrace(weights.numpy()[0], np.linalg.norm(after_attn, axis=-1),
                                        np.linalg.norm(x.numpy()[0], axis=-1)))
        # 4. final LayerNorm, then the LM head: the token embedding table again (weight tying)
        ex.logits = (model.ln_f(x) @ model.wte.weight.T).numpy()[0]
    ex.label_of = lambda i: token_label(tokenizer, i)
    return ex


# --- rendering --------------------------------------------------------------------------------------------------
def _vec(values: np.ndarray, n: int) -> str:
    shown = " ".join(f"{v:+.3f}" for v in values[:n])
    return f"[{shown}{' ...' if len(values) > n else ''}]"


def _cell(label: str, width: int) -> str:
    return (label if len(label) <= width else label[:width - 1] + "~").rjust(width)


def render(ex: Explanation, head: int = 0, color: bool = False, max_positions: int = 10, first_values: int = 4,
           top_k: int = 5) -> str:
    """The explanation as terminal text; attention tables show the last `max_positions` positions of `head`."""
    from bpe.display import render_segments
    n_head = ex.blocks[0].attention.shape[0] if ex.blocks else 1
    if not 0 <= head < n_head:
        raise TinyGPTError(f"--head must be between 0 and {n_head - 1}, got {head}")
    T, C = ex.token_emb.shape
    out = []
    say = out.append

    say("1. Text -> tokens. The bpe tokenizer cuts the prompt into tokens (boundaries shown) and maps each to an id.")
    say(f"   {render_segments(ex.segments, color=color)}")
    say(f"   {T} token{'s' if T != 1 else ''}: " + ", ".join(f"{i}={lab!r}" for i, lab in zip(ex.ids, ex.labels)))
    if ex.truncated:
        say(f"   (the first {ex.truncated} tokens were dropped: the model sees at most block_size = {T} tokens)")

    say("")
    say("2. Embeddings. Each id selects a row of the token embedding table wte "
        f"(vocab x {C}); the result has shape ({T}, {C}).")
    if ex.pos_emb is not None:
        say(f"   Learned positions: row t of wpe is added to the token at position t. First {first_values} values:")
    else:
        say("   RoPE: no position vectors are added; attention rotates queries and keys by their position instead.")
    shown = range(max(0, T - max_positions), T)
    for t in shown:
        line = f"   pos {t:>3} {_cell(ex.labels[t], 8)}  token {_vec(ex.token_emb[t], first_values)}"
        if ex.pos_emb is not None:
            line += f" + position {_vec(ex.pos_emb[t], first_values)}"
        say(line + f"   |x| = {ex.input_norm[t]:.2f}")

    for b, trace in enumerate(ex.blocks):
        say("")
        say(f"3.{b} Block {b}: x = x + attention(LayerNorm(x)); x = x + MLP(LayerNorm(x)).")
        say(f"   Attention of head {head} (of {n_head}) in %: row = a position, columns = the tokens it looks at "
            "(the causal mask hides later ones).")
        cols = list(shown)
        width = 7
        say("   " + " " * 12 + "".join(_cell(ex.labels[c], width) for c in cols))
        for t in cols:
            cells = [f"{100 * trace.attention[head, t, c]:.0f}".rjust(width) if c <= t else " " * width for c in cols]
            hidden = f"  (+{100 * trace.attention[head, t, :cols[0]].sum():.0f}% earlier)" if cols[0] > 0 else ""
            say(f"   {t:>3} {_cell(ex.labels[t], 8)}" + "".join(cells) + hidden)
        say("   residual stream norm |x| per position, after attention: "
            + " ".join(f"{v:.2f}" for v in trace.norm_after_attn[cols[0]:])
            + " ; after MLP: " + " ".join(f"{v:.2f}" for v in trace.norm_after_mlp[cols[0]:]))

    say("")
    V = ex.logits.shape[1]
    last = ex.logits[-1]
    say(f"4. Logits. A final LayerNorm, then x @ wte.T (the embedding table again: weight tying) gives shape "
        f"({T}, {V}): one score per vocabulary token at every position.")
    say(f"   last position ({ex.labels[-1]!r}): scores from {last.min():+.2f} to {last.max():+.2f}, "
        f"first values {_vec(last, first_values)}")
    say("")
    say(f"5. Next token. softmax(scores) at the last position; the top {top_k}:")
    for rank, (i, label, p) in enumerate(ex.top_next(top_k), 1):
        bar = "#" * max(1, round(30 * p))
        say(f"   {rank}. {label!r:<14} id {i:>6}  p = {p:.3f}  {bar}")
    return "\n".join(out)


def explain_run(run_dir, prompt: str, device=None) -> Explanation:
    """Load a run directory and explain one forward pass on `prompt` (after the separator for a docs-mode run)."""
    from pathlib import Path
    from tinygpt.checkpoint import load_run
    if not Path(run_dir).is_dir():
        raise TinyGPTError(f"{run_dir}: no such run directory; train one with `tinygpt train --out {run_dir}`")
    run = load_run(run_dir, device=device)
    return explain_forward(run.model, run.tokenizer, prompt, after_separator=bool(run.data.get("docs")))


__all__ = ["Explanation", "BlockTrace", "explain_forward", "explain_run", "render", "token_label", "prompt_ids"]
