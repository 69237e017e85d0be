"""AdamW with GPT-2 style parameter groups, and the learning-rate schedule (linear warmup, cosine decay).

Weight decay: every matrix (2-D tensor) is decayed -- the attention/MLP weights and the token/position embeddings
(the token embedding is also the output projection, tied) -- while biases and LayerNorm gains/offsets are not,
as in nanoGPT. tinygrad's AdamW decays every tensor it is given, so the two groups are two AdamW optimizers
joined by an OptimizerGroup. The decay is decoupled (AdamW): the update is lr * (adam_step + wd * weight).
"""
import math

from tinygrad import Tensor
from tinygrad.nn.optim import AdamW, OptimizerGroup


def param_groups(named_params: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Split parameters by name into (decayed: 2-D and larger, not decayed: biases and LayerNorm)."""
    decay = {n: t for n, t in named_params.items() if t.ndim >= 2}
    no_decay = {n: t for n, t in named_params.items() if t.ndim < 2}
    return decay, no_decay


def make_optimizer(named_params: dict[str, Tensor], lr: float, weight_decay: float = 0.1,
                   betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8) -> OptimizerGroup:
    """AdamW over both groups; `optimizer.optimizers` is (decayed group, not-decayed group)."""
    decay, no_decay = param_groups(named_params)
    groups = [AdamW(list(decay.values()), lr=lr, b1=betas[0], b2=betas[1], eps=eps, weight_decay=weight_decay)]
    if no_decay:
        groups.append(AdamW(list(no_decay.values()), lr=lr, b1=betas[0], b2=betas[1], eps=eps, weight_decay=0.0))
    return OptimizerGroup(*groups)


def optimizer_state(optimizer: OptimizerGroup) -> dict[str, Tensor]:
    """Every tensor of the optimizer's state (moments and bias-correction products), by a stable name."""
    state = {}
    for g, opt in enumerate(optimizer.optimizers):
        state[f"group{g}.b1_t"], state[f"group{g}.b2_t"] = opt.b1_t, opt.b2_t
        for i, (m, v) in enumerate(zip(opt.m, opt.v)):
            state[f"group{g}.m.{i}"], state[f"group{g}.v.{i}"] = m, v
    return state


def set_lr(optimizer: OptimizerGroup, lr: Tensor) -> None:
    """Point every group at the learning rate `lr` (a (1,) tensor: an input of the compiled step)."""
    for opt in optimizer.optimizers:
        opt.lr.assign(lr)


def lr_at(step: int, max_lr: float, warmup: int, total_steps: int, min_lr_ratio: float = 0.1) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup to max_lr over `warmup` steps, then a
    cosine decay to min_lr_ratio * max_lr at `total_steps`."""
    if warmup > 0 and step < warmup:
        return max_lr * (step + 1) / warmup
    min_lr = max_lr * min_lr_ratio
    span = max(1, total_steps - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)
