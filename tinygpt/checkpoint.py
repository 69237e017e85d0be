"""Run directories: everything needed to continue training or to sample, written atomically, loaded with checks.

    RUN_DIR/config.json          {"model": GPTConfig, "train": training arguments, "data": corpus and docs mode}
    RUN_DIR/tokenizer.json       the bpe tokenizer (bpe's JSON format)
    RUN_DIR/model.safetensors    the weights (float32, names like "h.0.attn.c_attn.weight")
    RUN_DIR/optimizer.safetensors AdamW moments
    RUN_DIR/state.json           step, data-sampling RNG, tinygrad RNG, elapsed time (written last)
    RUN_DIR/metrics.jsonl        one JSON object per logged step

Every file is written to a temporary file and renamed, so a crash never leaves a half-written file; the step is
stored in both safetensors headers and in state.json, so a checkpoint interrupted between files is detected.
The safetensors reader checks the header against the file size, so truncated or corrupt files are one clear line.
"""
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bpe.atomic import atomic_write_bytes, atomic_write_text
from tinygpt.config import GPTConfig
from tinygpt.errors import TinyGPTError

CONFIG, TOKENIZER, MODEL, OPTIMIZER, STATE, METRICS = (
    "config.json", "tokenizer.json", "model.safetensors", "optimizer.safetensors", "state.json", "metrics.jsonl")

_DTYPES = {"F32": np.float32, "U32": np.uint32, "I32": np.int32, "F16": np.float16}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}


# --- safetensors, in plain numpy --------------------------------------------------------------------------------
def write_safetensors(path, arrays: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Write arrays to a .safetensors file atomically (temporary file + rename)."""
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        blob = arr.tobytes()
        header[name] = {"dtype": _NAMES[arr.dtype], "shape": list(arr.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the format aligns the data to 8 bytes
    atomic_write_bytes(path, struct.pack("<Q", len(head)) + head + b"".join(blobs))


def read_safetensors(path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(arrays, metadata) of a .safetensors file; a missing, truncated or corrupt file raises one TinyGPTError line."""
    path = Path(path)
    if not path.is_file():
        raise TinyGPTError(f"{path}: file missing; the run directory is incomplete")
    data = path.read_bytes()

    def corrupt(why):
        return TinyGPTError(f"{path}: corrupt or truncated safetensors file ({why}); restore it or retrain")

    if len(data) < 8:
        raise corrupt(f"only {len(data)} bytes")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise corrupt(f"header says {n} bytes but the file has {len(data) - 8}")
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise corrupt("header is not JSON") from None
    if not isinstance(header, dict):
        raise corrupt("header is not a JSON object")
    metadata = header.pop("__metadata__", {}) or {}
    body = memoryview(data)[8 + n:]
    arrays = {}
    for name, info in header.items():
        try:
            dtype = np.dtype(_DTYPES[info["dtype"]])
            shape = tuple(int(s) for s in info["shape"])
            start, end = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise corrupt(f"bad entry for {name!r}") from None
        if not 0 <= start <= end <= len(body) or end - start != dtype.itemsize * int(np.prod(shape)):
            raise corrupt(f"tensor {name!r} does not fit the file")
        arrays[name] = np.frombuffer(body[start:end], dtype=dtype).reshape(shape).copy()
    return arrays, metadata


# --- the run directory ------------------------------------------------------------------------------------------
@dataclass
class Run:
    """A loaded run directory: the model (weights loaded, on `device`), its tokenizer and its saved state."""
    run_dir: Path
    config: GPTConfig
    model: object
    tokenizer: object
    state: dict = field(default_factory=dict)
    train_args: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)


def save_run_config(run_dir, config: GPTConfig, train_args: dict, data: dict) -> None:
    """Write config.json: the model config, the training arguments and where the data came from."""
    doc = {"model": config.to_dict(), "train": train_args, "data": data}
    atomic_write_text(Path(run_dir) / CONFIG, json.dumps(doc, indent=2) + "\n")


def save_tokenizer(run_dir, tokenizer) -> None:
    """Write tokenizer.json in bpe's format (bpe writes it atomically)."""
    tokenizer.save(Path(run_dir) / TOKENIZER)


def save_checkpoint(run_dir, model, optimizer_tensors: dict, state: dict) -> None:
    """Write model.safetensors, optimizer.safetensors, then state.json (the file that says which step is saved)."""
    run_dir = Path(run_dir)
    step = str(state["step"])
    write_safetensors(run_dir / MODEL, {k: t.numpy() for k, t in model.state_dict().items()}, {"step": step})
    write_safetensors(run_dir / OPTIMIZER, {k: t.numpy() for k, t in optimizer_tensors.items()}, {"step": step})
    atomic_write_text(run_dir / STATE, json.dumps(state, indent=1) + "\n")


def read_json(path) -> dict:
    """A JSON object from `path`, or one TinyGPTError line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise TinyGPTError(f"{path}: file missing; is this a run directory written by `tinygpt train`?")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TinyGPTError(f"{path}: not valid JSON ({e.__class__.__name__} at {getattr(e, 'pos', '?')}); "
                           "the file is damaged") from None
    if not isinstance(doc, dict):
        raise TinyGPTError(f"{path}: expected a JSON object")
    return doc


def read_run_config(run_dir) -> tuple[GPTConfig, dict, dict]:
    """(model config, training arguments, data description) from config.json."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TinyGPTError(f"{run_dir}: no such run directory")
    doc = read_json(run_dir / CONFIG)
    if not isinstance(doc.get("model"), dict):
        raise TinyGPTError(f"{run_dir / CONFIG}: has no \"model\" section")
    try:
        config = GPTConfig.from_dict(doc["model"])
    except (TypeError, TinyGPTError) as e:
        raise TinyGPTError(f"{run_dir / CONFIG}: {e}") from None
    return config, doc.get("train", {}), doc.get("data", {})


def read_state(run_dir) -> dict:
    """state.json of a run (the saved step, RNG states, ...)."""
    state = read_json(Path(run_dir) / STATE)
    if not isinstance(state.get("step"), int):
        raise TinyGPTError(f"{Path(run_dir) / STATE}: has no integer \"step\"")
    return state


def load_tokenizer(run_dir):
    """The run's bpe Tokenizer, or one TinyGPTError line naming tokenizer.json."""
    from bpe import Tokenizer
    from bpe.errors import TokenizerError
    path = Path(run_dir) / TOKENIZER
    if not path.is_file():
        raise TinyGPTError(f"{path}: file missing; the run directory is incomplete")
    try:
        return Tokenizer.load(path)
    except TokenizerError as e:
        raise TinyGPTError(str(e) if str(path) in str(e) else f"{path}: {e}") from None


def load_tensors_into(path, targets: dict, expected_step: int | None = None) -> None:
    """Assign the arrays of a safetensors file to `targets` (name -> realized Tensor), checking names and shapes."""
    from tinygrad import Tensor
    arrays, metadata = read_safetensors(path)
    missing = [k for k in targets if k not in arrays]
    if missing:
        raise TinyGPTError(f"{path}: missing tensor {missing[0]!r} ({len(missing)} missing); "
                           "it does not belong to this model config")
    for name, target in targets.items():
        arr = arrays[name]
        if tuple(arr.shape) != tuple(target.shape):
            raise TinyGPTError(f"{path}: tensor {name!r} has shape {tuple(arr.shape)} but the config needs "
                               f"{tuple(target.shape)}")
        target.assign(Tensor(arr, device=target.device, dtype=target.dtype))
    Tensor.realize(*targets.values())
    if expected_step is not None and metadata.get("step") not in (None, str(expected_step)):
        raise TinyGPTError(f"{path}: holds step {metadata.get('step')} but state.json says step {expected_step}; "
                           "the checkpoint was interrupted while being written")


def load_run(run_dir, device=None) -> Run:
    """Load a run directory for sampling or evaluation: config, weights (on `device`), tokenizer and state."""
    from tinygrad import Tensor
    from tinygpt.device import default_device, resolve_device
    from tinygpt.model import GPT
    run_dir = Path(run_dir)
    config, train_args, data = read_run_config(run_dir)
    tokenizer = load_tokenizer(run_dir)
    if tokenizer.vocab_size > config.vocab_size:
        raise TinyGPTError(f"{run_dir / TOKENIZER}: has {tokenizer.vocab_size} tokens but the model only "
                           f"{config.vocab_size}; the files come from different runs")
    state = read_state(run_dir) if (run_dir / STATE).exists() else {}
    dev = resolve_device(device)
    with default_device(dev):
        model = GPT(config)
        params = model.state_dict()
        for t in params.values():  # skip the random init: weights come from the file
            t.replace(Tensor.empty(*t.shape, dtype=t.dtype, device=dev))
        load_tensors_into(run_dir / MODEL, params, state.get("step"))
    return Run(run_dir, config, model, tokenizer, state, train_args, data)


# --- metrics.jsonl ----------------------------------------------------------------------------------------------
def append_metrics(run_dir, record: dict) -> None:
    """Append one JSON line to metrics.jsonl (a line is written with a single write call)."""
    with open(Path(run_dir) / METRICS, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def truncate_metrics(run_dir, last_step: int) -> None:
    """Drop metrics lines logged after `last_step` (they belong to steps a resumed run will redo)."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= last_step:
                keep.append(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash
    atomic_write_text(path, "".join(l + "\n" for l in keep))


def read_metrics(run_dir) -> list[dict]:
    """All records of metrics.jsonl (lines cut by a crash are skipped)."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def run_exists(run_dir) -> bool:
    """True when `run_dir` already holds a checkpoint (state.json)."""
    return (Path(run_dir) / STATE).is_file()


__all__ = ["Run", "load_run", "save_checkpoint", "save_run_config", "save_tokenizer", "read_run_config",
           "read_state", "load_tokenizer", "load_tensors_into", "write_safetensors", "read_safetensors",
           "append_metrics", "truncate_metrics", "read_metrics", "run_exists"]
