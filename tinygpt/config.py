"""The model's shape: a small dataclass that round-trips through JSON (`config.json` in a run directory)."""
from dataclasses import asdict, dataclass, fields

from tinygpt.errors import TinyGPTError

POSITION_KINDS = ("learned", "rope")


@dataclass
class GPTConfig:
    """Hyper-parameters that fix the model's parameter shapes (plus dropout and the position scheme)."""
    vocab_size: int = 512
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    dropout: float = 0.0
    pos: str = "learned"  # "learned" absolute position embeddings, or "rope" (rotary, no position parameters)

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise TinyGPTError (one line) for a config that cannot build a model."""
        for name in ("vocab_size", "n_layer", "n_head", "n_embd", "block_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TinyGPTError(f"{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise TinyGPTError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): "
                               f"pick e.g. --n-embd {self.n_head * max(1, round(self.n_embd / self.n_head))}")
        if self.pos not in POSITION_KINDS:
            raise TinyGPTError(f"pos must be one of {', '.join(POSITION_KINDS)}, got {self.pos!r}")
        if self.pos == "rope" and self.head_dim % 2 != 0:
            raise TinyGPTError(f"rope needs an even head size, got n_embd/n_head = {self.head_dim}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise TinyGPTError(f"dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        """Build from a dict (e.g. config.json), ignoring unknown keys and naming a missing one."""
        names = {f.name for f in fields(cls)}
        required = ("vocab_size", "n_layer", "n_head", "n_embd", "block_size")
        missing = [k for k in required if k not in d]
        if missing:
            raise TinyGPTError(f"model config is missing {', '.join(missing)}")
        return cls(**{k: v for k, v in d.items() if k in names})
