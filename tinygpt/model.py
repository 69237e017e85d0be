"""A GPT-2 style decoder in tinygrad: the whole model in one readable file (after nanoGPT's model.py).

    tokens -> token embedding (+ learned positions) -> n_layer x Block -> LayerNorm -> logits (tied to the embedding)
    Block:  x + attn(ln_1(x)),  then  x + mlp(ln_2(x))          (pre-LayerNorm, residual connections)

Two forward paths share every weight:
- `model(idx)`: the full causal forward over a (B, T) batch, used for training and evaluation;
- `model.forward_cached(idx, start_pos)`: generation with a key/value cache. Each layer keeps a realized
  (2, B, n_head, block_size, head_dim) tensor; new keys/values are assigned into positions
  [start_pos, start_pos+T) and attention reads [0, start_pos+T). `start_pos` may be a bound tinygrad Variable, so
  one TinyJit capture serves every position (the way tinygrad's own llama example does it).
"""
import math

from tinygrad import Context, Tensor, UOp, dtypes, nn
from tinygrad.helpers import TRAINING

from tinygpt import cpu_gemm, cpu_graph, cpu_kernels, program_cache
from tinygpt.config import GPTConfig


def rope_tables(head_dim: int, length: int, theta: float = 10000.0) -> tuple[Tensor, Tensor]:
    """cos and sin tables of shape (length, head_dim // 2) for rotary position embeddings."""
    freqs = 1.0 / (theta ** (Tensor.arange(0, head_dim, 2, dtype=dtypes.float32) / head_dim))
    angles = Tensor.arange(length, dtype=dtypes.float32).unsqueeze(1) * freqs.unsqueeze(0)
    return angles.cos().contiguous().realize(), angles.sin().contiguous().realize()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the two halves of each head's features of x (B, H, T, D) by position-dependent angles."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.reshape(1, 1, *cos.shape), sin.reshape(1, 1, *sin.shape)
    return (x1 * cos - x2 * sin).cat(x2 * cos + x1 * sin, dim=-1)


def chunked_matmul(x: Tensor, weight_t: Tensor) -> Tensor:
    """x @ weight_t for activations x (..., K) and a weight weight_t (K, M): in training, the weight gradient is
    summed over chunks of tokens.

    The gradient of a weight is x^T @ dy, a sum over every token of the batch. As one kernel it streams all
    B*T rows of dy for each block of outputs it keeps in registers, and for a big batch those rows no longer fit
    in the cache (config B's MLP: 17 GFLOP/s). Here the weight is expanded over chunks of tokens (a view: the
    forward is the same matmul) and the gradient of that expanded copy is stored (`contiguous_backward`): tinygrad
    then computes one partial gradient per chunk, whose rows stay in cache, and adds the partials (B's MLP weight
    gradient alone: 4x faster; B's step: 1.16x; `_token_chunks` decides, docs/performance.md). Only the order of
    the additions changes.
    """
    *lead, K = x.shape
    n, M = math.prod(lead), weight_t.shape[1]
    chunks = _token_chunks(n, K, M) if TRAINING.value else 1
    if chunks == 1:
        return x @ weight_t
    w = weight_t.reshape(1, K, M).expand(chunks, K, M).contiguous_backward()
    return (x.reshape(chunks, n // chunks, K) @ w).reshape(*lead, M)


def _token_chunks(n_tokens: int, k: int, m: int, cache_bytes: int = 2 << 20, tokens_per_chunk: int = 64,
                  partials_bytes: int = 16 << 20) -> int:
    """How many chunks `chunked_matmul` cuts n_tokens into: 1 while the output gradient (n_tokens x m floats)
    fits in cache_bytes (measured: chunking then costs more than it saves), else the most chunks that divide
    n_tokens evenly, hold at least tokens_per_chunk tokens each and keep the partial gradients (chunks x k x m
    floats) within partials_bytes."""
    if 4 * n_tokens * m <= cache_bytes:
        return 1
    most = max(1, min(n_tokens // tokens_per_chunk, partials_bytes // (4 * k * m)))
    return max(c for c in range(1, most + 1) if n_tokens % c == 0)


GEMM_MIN_ROWS = 64  # fewer rows (generating a token, say) read the weight once: tinygrad's kernel is as good


def linear_matmul(x: Tensor, weight: Tensor) -> Tensor:
    """x @ weight.T for activations x (..., K) and a weight stored as nn.Linear stores it, (M, K).

    On the CPU, batches of at least `GEMM_MIN_ROWS` tokens go through tinygpt.cpu_gemm (BLAS-style kernels: config
    B's training step 2.4x faster than with tinygrad's own); everything else through `chunked_matmul`.
    """
    *lead, K = x.shape
    n, M = math.prod(lead), weight.shape[0]
    if _use_gemm(x, weight, rows=n):
        return cpu_gemm.matmul(x.reshape(n, K), weight, trans_b=True).reshape(*lead, M)
    return chunked_matmul(x, weight.T)


def batched_matmul(a: Tensor, b: Tensor, transpose_b: bool = False) -> Tensor:
    """a @ b (or a @ b^T) for stacks of matrices with the same leading shape, such as attention's (B, H, T, D);
    through tinygpt.cpu_gemm where it applies, like `linear_matmul`."""
    if _use_gemm(a, b, rows=a.shape[-2]):
        return cpu_gemm.matmul(a, b, trans_b=transpose_b)
    return a @ (b.transpose(-2, -1) if transpose_b else b)


def _use_gemm(a: Tensor, b: Tensor, rows) -> bool:
    """Whether a product of a and b with `rows` output rows per matrix goes through tinygpt.cpu_gemm: every size
    known (not a symbolic position), enough rows, and tensors cpu_gemm takes."""
    return all(isinstance(size, int) for size in a.shape + b.shape) and rows >= GEMM_MIN_ROWS \
        and cpu_gemm.use_for(a, b)


class Linear(nn.Linear):
    """nn.Linear (same parameters, same numbers up to float rounding) computed by `linear_matmul`."""

    def __call__(self, x: Tensor) -> Tensor:
        y = linear_matmul(x, self.weight)
        return y + self.bias if self.bias is not None else y


class CausalSelfAttention:
    """Multi-head self-attention where each position sees only itself and earlier positions."""

    def __init__(self, config: GPTConfig):
        self.n_head, self.head_dim, self.dropout = config.n_head, config.head_dim, config.dropout
        self.c_attn = Linear(config.n_embd, 3 * config.n_embd)   # query, key, value projections in one matmul
        self.c_proj = Linear(config.n_embd, config.n_embd)       # back to the residual stream
        self._cache_kv: Tensor | None = None

    def _qkv(self, x: Tensor, rope: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor, Tensor]:
        B, T, C = x.shape
        # .contiguous_backward() (identity forward) stores the gradients of q, k, v as (B, H, T, D) and of the
        # whole projection as (B, T, 3C): otherwise tinygrad fuses the three attention backward matmuls into one
        # kernel writing the concatenated (B, T, 3C) gradient (3 masked reduces, ~15x slower on CPU)
        q, k, v = [t.reshape(B, T, self.n_head, self.head_dim).transpose(1, 2).contiguous_backward()
                   for t in self.c_attn(x).contiguous_backward().split(C, dim=-1)]
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        return q, k, v

    def _merge_heads(self, y: Tensor) -> Tensor:
        B, _, T, _ = y.shape
        # stored as (B, T, C) so c_proj (forward and weight gradient) is a plain matmul over one K axis
        return self.c_proj(y.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim).contiguous())

    def __call__(self, x: Tensor, rope: tuple[Tensor, Tensor] | None = None) -> Tensor:
        q, k, v = self._qkv(x, rope)
        T = x.shape[1]
        att = batched_matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(self.head_dim))
        causal = Tensor.ones(T, T, dtype=dtypes.bool, device=x.device).tril()
        # the probabilities are stored (otherwise tinygrad recomputes the softmax inside every matmul that reads
        # them), and in training the softmax's backward reads them: see _softmax_stored. Dropout acts only then.
        if TRAINING.value:
            probs = _softmax_stored(att, causal).dropout(self.dropout)
        else:
            probs = causal.where(att, float("-inf")).softmax(-1).contiguous()
        # stored (B, H, T, D) before the head merge: P @ V writing (B, T, H*D) directly is a slow kernel on CPU
        return self._merge_heads(batched_matmul(probs, v).contiguous()).dropout(self.dropout)

    def forward_cached(self, x: Tensor, start_pos, rope: tuple[Tensor, Tensor] | None) -> Tensor:
        """Attend over the cache plus x, writing x's keys/values into the cache at [start_pos, start_pos+T)."""
        T = x.shape[1]
        q, k, v = self._qkv(x, rope)
        self._cache_kv[:, :, :, start_pos:start_pos + T, :].assign(Tensor.stack(k, v))
        keys = self._cache_kv[0, :, :, 0:start_pos + T, :]
        values = self._cache_kv[1, :, :, 0:start_pos + T, :]
        mask = None
        if T > 1:  # query i (at position start_pos+i) may see cache positions <= start_pos+i
            mask = Tensor.full((1, 1, T, start_pos + T), float("-inf"), device=x.device).triu(start_pos + 1)
        return self._merge_heads(q.scaled_dot_product_attention(keys, values, attn_mask=mask))


def _softmax_stored(att: Tensor, mask: Tensor) -> Tensor:
    """softmax(where(mask, att, -inf), -1), stored, with a backward that reads the stored probabilities.

    Forward: the same numbers as Tensor.softmax, with exp computed once (stored) instead of twice.
    Backward: tinygrad's autograd through softmax recomputes att, the max and exp(); instead the result is written
    as p + p * (d - sum(p * d)) with p the stored probabilities (detached) and d = att - att.detach(): d is 0, so the
    value is exactly p, and the gradient w.r.t. att is p * (g - sum(g * p)), the softmax backward (0 where masked).
    """
    x = mask.where(att, float("-inf"))
    e = (x - x.max(-1, keepdim=True).detach()).exp().contiguous()
    p = (e * e.sum(-1, keepdim=True).reciprocal()).detach().contiguous()
    d = att - att.detach()
    return (p + p * (d - (p * d).sum(-1, keepdim=True))).contiguous()


def _gelu_stored(h: Tensor) -> Tensor:
    """h.gelu() (tanh form) with tanh computed once and stored; the backward reads it (d tanh = 1 - tanh^2)
    instead of recomputing tanh inside the MLP's backward matmul. Same value: u - u.detach() is 0."""
    u = math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)
    t = u.tanh().detach().contiguous()
    return 0.5 * h * (1 + (t + (u - u.detach()) * (1 - t * t)))


class MLP:
    """The position-wise feed-forward network: widen 4x, GELU, project back."""

    def __init__(self, config: GPTConfig):
        self.c_fc = Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = Linear(4 * config.n_embd, config.n_embd)
        self.dropout = config.dropout

    def __call__(self, x: Tensor) -> Tensor:
        # stored: the c_fc output, its tanh (inside _gelu_stored) and the GELU output, so that no matmul recomputes
        # them for every element it reads, forward or backward (docs/performance.md: 2x per step). Without a
        # backward (evaluation, generation) only the GELU output is worth a kernel of its own.
        h = self.c_fc(x).contiguous_backward()  # its gradient stored once, not recomputed inside both matmuls
        h = _gelu_stored(h.contiguous()) if TRAINING.value else h.gelu()
        return self.c_proj(h.contiguous()).dropout(self.dropout)


class Block:
    """One transformer layer: pre-LayerNorm attention and MLP, each added to the residual stream."""

    def __init__(self, config: GPTConfig):
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def __call__(self, x: Tensor, rope=None) -> Tensor:
        x = x + self.attn(self.ln_1(x), rope)
        return x + self.mlp(self.ln_2(x))

    def forward_cached(self, x: Tensor, start_pos, rope=None) -> Tensor:
        x = x + self.attn.forward_cached(self.ln_1(x), start_pos, rope)
        return x + self.mlp(self.ln_2(x))


class GPT:
    """The language model. Parameters are tinygrad Tensors found by `nn.state.get_state_dict(model)`."""

    def __init__(self, config: GPTConfig):
        config.validate()
        cpu_kernels.install()  # register-blocked CPU matmuls, 5x faster (tinygpt/cpu_kernels.py); once per process
        program_cache.use()  # kernels compiled by earlier runs come from disk (tinygpt/program_cache.py)
        cpu_graph.install()  # jitted CPU kernels replayed from C, slices on all cores (tinygpt/cpu_graph.py)
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)  # also the LM head (weight tying)
        if config.pos == "learned":
            self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.h = [Block(config) for _ in range(config.n_layer)]
        self.ln_f = nn.LayerNorm(config.n_embd)
        self._init_weights()
        if config.pos == "rope":  # constant tables, not parameters (kept out of the state dict by the underscore)
            self._rope_cos, self._rope_sin = rope_tables(config.head_dim, config.block_size)

    def _init_weights(self) -> None:
        """GPT-2 initialisation: N(0, 0.02) weights, zero biases, residual projections scaled by 1/sqrt(2*n_layer)."""
        std, c = 0.02, self.config
        self.wte.weight = Tensor.normal(c.vocab_size, c.n_embd, std=std)
        if c.pos == "learned":
            self.wpe.weight = Tensor.normal(c.block_size, c.n_embd, std=std)
        for block in self.h:
            for lin in (block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc, block.mlp.c_proj):
                proj_std = std / math.sqrt(2 * c.n_layer) if lin in (block.attn.c_proj, block.mlp.c_proj) else std
                lin.weight = Tensor.normal(*lin.weight.shape, std=proj_std)
                lin.bias = Tensor.zeros(*lin.bias.shape)

    def state_dict(self) -> dict[str, Tensor]:
        """The parameters by name ("h.0.attn.c_attn.weight", ...); caches and rope tables (names starting
        with "_") are not parameters and are left out."""
        return {name: t for name, t in nn.state.get_state_dict(self).items()
                if not any(part.startswith("_") for part in name.split("."))}

    def parameters(self) -> list[Tensor]:
        return list(self.state_dict().values())

    def num_params(self) -> int:
        """Number of trainable numbers (the tied LM head is counted once)."""
        return sum(t.numel() for t in self.parameters())

    # --- pieces shared by both forward paths -------------------------------------------------------------------
    def embed_tokens(self, idx: Tensor) -> Tensor:
        """Token ids (B, T) -> vectors (B, T, C). The one place the lookup happens, so it can be swapped."""
        return self.wte(idx)

    def _positions(self, start_pos, T: int):
        """(position embeddings (T, C) or None, rope tables for positions [start_pos, start_pos+T) or None)."""
        if self.config.pos == "learned":
            return self.wpe.weight[start_pos:start_pos + T], None
        return None, (self._rope_cos[start_pos:start_pos + T], self._rope_sin[start_pos:start_pos + T])

    def _logits(self, x: Tensor) -> Tensor:
        return linear_matmul(self.ln_f(x), self.wte.weight)  # LM head tied to the token embedding

    # --- full forward -------------------------------------------------------------------------------------------
    def __call__(self, idx: Tensor) -> Tensor:
        """Token ids (B, T) with T <= block_size -> logits (B, T, vocab_size); position t sees tokens 0..t."""
        T = idx.shape[1]
        assert T <= self.config.block_size, f"sequence length {T} exceeds block_size {self.config.block_size}"
        pos_emb, rope = self._positions(0, T)
        x = self.embed_tokens(idx)
        if pos_emb is not None:
            x = x + pos_emb
        x = x.dropout(self.config.dropout)
        for block in self.h:
            x = block(x, rope)
        return self._logits(x)

    # --- KV-cache forward for generation --------------------------------------------------------------------------
    def reset_cache(self, batch_size: int = 1) -> None:
        """Start a new sequence: every layer gets a zeroed, realized (2, B, n_head, block_size, head_dim) cache.

        For the same batch size the existing buffers are zeroed in place, so a TinyJit that captured them stays
        valid; a new batch size allocates new buffers (and needs a new TinyJit).
        """
        c = self.config
        for block in self.h:
            cache = block.attn._cache_kv
            if cache is not None and cache.shape[1] == batch_size:
                cache.assign(Tensor.zeros(*cache.shape, device=cache.device)).realize()
            else:
                block.attn._cache_kv = Tensor.zeros(2, batch_size, c.n_head, c.block_size, c.head_dim,
                                                    device=self.wte.weight.device).contiguous().realize()

    def forward_cached(self, idx: Tensor, start_pos: "int | UOp") -> Tensor:
        """Logits (B, T, V) for tokens idx (B, T) sitting at positions [start_pos, start_pos+T) of the sequence.

        Earlier positions come from the cache filled by previous calls; start_pos + T must be <= block_size.
        `start_pos` may be a bound Variable (`UOp.variable("start_pos", 0, block_size-1).bind(n)`), so that a
        TinyJit-wrapped call compiles once for T=1 and replays at every position. Dropout is never applied.
        """
        B, T = idx.shape
        cache = self.h[0].attn._cache_kv
        if cache is None or cache.shape[1] != B:
            self.reset_cache(B)
        with Context(TRAINING=0):
            pos_emb, rope = self._positions(start_pos, T)
            x = self.embed_tokens(idx)
            if pos_emb is not None:
                x = x + pos_emb
            for block in self.h:
                x = block.forward_cached(x, start_pos, rope)
            return self._logits(x)
