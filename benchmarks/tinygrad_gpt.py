"""Standalone tinygrad GPT (the tinygpt architecture) used by the benchmarks when BENCH_MODEL=standalone.

Experiment switches (environment): EMB=gather|onehot|onehotmm|nn, ATTN=manual|sdpa, CONTIG=comma list of
gelu, attn, ln (store GELU output / attention probabilities / LayerNorm outputs: the measured wins), and
gelub, geluD, attnb, qkvb, qkvf, qkvsplit, logits (variants that did not help). Defaults: fastest measured.
"""
import math, os, time
from tinygrad import Tensor, nn, TinyJit, dtypes, UOp
from tinygrad import helpers

def training():
  """Training mode context: Context(TRAINING=1) in tinygrad 0.14, Tensor.train() in 0.13."""
  return helpers.Context(TRAINING=1) if hasattr(helpers, "TRAINING") else Tensor.train()

EMB = os.environ.get("EMB", "gather")
ATTN = os.environ.get("ATTN", "manual")
CONTIG = os.environ.get("CONTIG", "gelu,attn,ln")  # comma list: gelu,gelub,attn,ln,logits

def normal(*shape, std=0.02): return (Tensor.randn(*shape) * std)

class Linear:
  def __init__(self, cin, cout, bias=True, std=0.02):
    self.weight = normal(cout, cin, std=std)
    self.bias = Tensor.zeros(cout) if bias else None
  def __call__(self, x): return x.linear(self.weight.T, self.bias)

class LayerNorm:
  def __init__(self, c): self.weight, self.bias = Tensor.ones(c), Tensor.zeros(c)
  def __call__(self, x):
    y = x.layernorm(eps=1e-5) * self.weight + self.bias
    return y.contiguous() if "ln" in CONTIG.split(",") else y

class Block:
  def __init__(self, C, H, L, maxT):
    self.H = H
    self.ln_1, self.ln_2 = LayerNorm(C), LayerNorm(C)
    self.c_attn = Linear(C, 3 * C)
    self.c_proj = Linear(C, C, std=0.02 / math.sqrt(2 * L))
    self.c_fc = Linear(C, 4 * C)
    self.mlp_proj = Linear(4 * C, C, std=0.02 / math.sqrt(2 * L))
    self.maxT = maxT

  def attn(self, x, start_pos=None):
    B, T, C = x.shape
    if "qkvsplit" in CONTIG:  # three matmuls on slices of the fused weight: separate dq, dk, dv kernels
      W, bb = self.c_attn.weight, self.c_attn.bias
      q, k, v = [x.linear(W[i*C:(i+1)*C].T, bb[i*C:(i+1)*C]).reshape(B, T, self.H, C // self.H).transpose(1, 2) for i in range(3)]
    else:
      qkv = self.c_attn(x).reshape(B, T, 3, self.H, C // self.H).permute(2, 0, 3, 1, 4)
      q, k, v = qkv[0], qkv[1], qkv[2]
    if "qkvb" in CONTIG: q, k, v = q.contiguous_backward(), k.contiguous_backward(), v.contiguous_backward()
    if "qkvf" in CONTIG: q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    if start_pos is None:
      if ATTN == "sdpa": y = q.scaled_dot_product_attention(k, v, is_causal=True)
      else:
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // self.H))
        mask = Tensor.ones(T, T, dtype=dtypes.bool).tril()
        p = mask.where(att, float("-inf")).softmax(-1)
        if "attn" in CONTIG: p = p.contiguous()
        if "attnb" in CONTIG: p = p.contiguous_backward()
        y = p @ v
    else:
      if getattr(self, "cache_kv", None) is None:
        self.cache_kv = Tensor.zeros(2, B, self.H, self.maxT, C // self.H).contiguous().realize()
      store = self.cache_kv[:, :, :, start_pos:start_pos + T, :].uop.store(Tensor.stack(k, v).uop)
      kv = Tensor(self.cache_kv.uop.after(store))
      k, v = kv[0, :, :, 0:start_pos + T, :], kv[1, :, :, 0:start_pos + T, :]
      mask = Tensor.full((1, 1, T, start_pos + T), float("-inf")).triu(start_pos + 1) if T > 1 else None
      y = q.scaled_dot_product_attention(k, v, attn_mask=mask)
    return self.c_proj(y.transpose(1, 2).reshape(B, T, C))

  def __call__(self, x, start_pos=None):
    x = x + self.attn(self.ln_1(x), start_pos)
    h = self.c_fc(self.ln_2(x))
    if "gelub" in CONTIG: h = h.contiguous_backward()
    if "geluD" in CONTIG:  # value gelu(h); gradient uses a stored gelu'(h) instead of recomputing the tanh
      hd = h.detach()
      t = (math.sqrt(2 / math.pi) * (hd + 0.044715 * hd * hd * hd)).tanh()
      d = (0.5 * (1 + t) + 0.5 * hd * (1 - t * t) * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * hd * hd)).contiguous()
      g = (0.5 * hd * (1 + t)).contiguous() + (h - hd) * d
    else:
      g = h.gelu()
    if "gelu" in CONTIG.split(","): g = g.contiguous()
    return x + self.mlp_proj(g)

class GPT:
  def __init__(self, V, L, H, C, maxT):
    self.V, self.maxT = V, maxT
    self.wte = normal(V, C)
    self.wpe = normal(maxT, C)
    self.h = [Block(C, H, L, maxT) for _ in range(L)]
    self.ln_f = LayerNorm(C)

  def embed(self, idx):
    if EMB == "onehot":
      return (Tensor.arange(self.V) == idx.unsqueeze(-1)).unsqueeze(-1).where(self.wte, 0).sum(-2)
    if EMB == "onehotmm":
      return idx.one_hot(self.V).float() @ self.wte
    if EMB == "nn":
      from tinygrad.nn import Embedding
      e = Embedding.__new__(Embedding); e.weight = self.wte
      return e(idx)
    return self.wte[idx]

  def __call__(self, idx, start_pos=None):
    B, T = idx.shape
    sp = 0 if start_pos is None else start_pos
    x = self.embed(idx) + self.wpe[sp:sp + T]
    for b in self.h: x = b(x, start_pos)
    logits = self.ln_f(x) @ self.wte.T
    return logits.contiguous_backward() if "logits" in CONTIG else logits

def reset_cache(m, B=1):
  for b in m.h:
    b.cache_kv = Tensor.zeros(2, B, b.H, b.maxT, b.c_attn.weight.shape[1] // b.H).contiguous().realize()

GPT.reset_cache = reset_cache
GPT.forward_cached = lambda self, idx, start_pos: self(idx, start_pos)

def params(m): return [t for k, t in nn.state.get_state_dict(m).items() if "cache_kv" not in k]  # weights only

def make_step(model, lr=1e-3, jit=True):
  ps = params(model)
  opt = nn.optim.AdamW(ps, lr=lr, b1=0.9, b2=0.95, weight_decay=0.1)
  def step(x, y):
    with training():
      opt.zero_grad()
      loss = model(x).sparse_categorical_crossentropy(y)
      loss.backward()
      opt.step()
      return loss.realize()
  return (TinyJit(step) if jit else step), opt
