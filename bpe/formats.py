"""Files: our own JSON format (save/load), tiktoken ranks files (in and out), Hugging Face tokenizer.json (out).

Our format is one JSON file a person can read:
    {"format": "bpe-tokenizer", "version": 1, "pattern": "...", "special_tokens": {"<|endoftext|>": 1000},
     "merges": [["t", "h"], ["th", "e"], [" ", "the"], ...]}
Each merge names its two parts by their bytes, written as text: valid UTF-8 as itself, a backslash as "\\\\",
any other byte as "\\xHH". (A part whose bytes two tokens share is written as its id instead.) Merge i makes
id 256 + i. "byte_ids" appears only when the single bytes are not ids 0..255 in order (tiktoken's cl100k).
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import re
import sys
from collections import Counter

from bpe.atomic import atomic_write_text
from bpe.errors import TokenizerError
from bpe.patterns import pattern_name, resolve_pattern

# base64 that rejects stray characters (binascii's strict mode is the fast way, from Python 3.11)
if sys.version_info >= (3, 11):
    def _b64decode(text: str) -> bytes:
        return binascii.a2b_base64(text, strict_mode=True)
else:
    def _b64decode(text: str) -> bytes:
        return base64.b64decode(text, validate=True)

FORMAT_NAME = "bpe-tokenizer"
FORMAT_VERSION = 1


# ---- readable byte strings -------------------------------------------------------------------------------

def bytes_to_text(data: bytes) -> str:
    """Write bytes as readable text: UTF-8 as itself, a backslash as two, other bytes as \\xHH."""
    out = []
    for ch in data.decode("utf-8", errors="surrogateescape"):
        if "\udc80" <= ch <= "\udcff":  # a byte that is not part of valid UTF-8
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ch == "\\":
            out.append("\\\\")
        else:
            out.append(ch)
    return "".join(out)


_ESCAPES = re.compile(r"(\\x[0-9a-fA-F]{2}|\\\\)")


def text_to_bytes(text: str) -> bytes:
    """The inverse of `bytes_to_text`; ValueError on a malformed escape."""
    out = bytearray()
    for i, part in enumerate(_ESCAPES.split(text)):
        if i % 2:
            out += b"\\" if part == "\\\\" else bytes([int(part[2:], 16)])
        elif "\\" in part:
            raise ValueError(f"bad escape in {text!r} (use \\\\ or \\xHH)")
        else:
            out += part.encode("utf-8")
    return bytes(out)


# ---- our JSON format -------------------------------------------------------------------------------------

def _all_token_bytes(tok) -> list[bytes]:
    return [tok.token_bytes(i) for i in range(256 + len(tok.merges))]


def save_json(tok, path) -> None:
    """Write `tok` as one versioned JSON file, atomically."""
    token_bytes = _all_token_bytes(tok)
    shared = {b for b, n in Counter(token_bytes).items() if n > 1}

    def name(token: int):
        data = token_bytes[token]
        return token if data in shared else bytes_to_text(data)

    doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "pattern": tok.pattern,
           "pattern_name": pattern_name(tok.pattern), "vocab_size": tok.vocab_size, "num_merges": len(tok.merges),
           "special_tokens": tok.special_tokens}
    if tok.byte_ids != list(range(256)):
        doc["byte_ids"] = tok.byte_ids
    lines = json.dumps(doc, ensure_ascii=False, indent=1)[:-2]  # drop the closing "\n}"
    merges = ",\n  ".join(json.dumps([name(a), name(b)], ensure_ascii=False) for a, b in tok.merges)
    atomic_write_text(path, f'{lines},\n "merges": [\n  {merges}\n ]\n}}\n' if merges else f'{lines},\n "merges": []\n}}\n')


def _read_text(path, what: str) -> str:
    path = os.fspath(path)
    if os.path.isdir(path):
        raise TokenizerError(f"{path} is a directory, not a {what}")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise TokenizerError(f"{path}: no such file (give the path of a {what})") from None
    except OSError as e:
        raise TokenizerError(f"{path}: cannot read it ({e.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TokenizerError(f"{path} is not a {what}: it is not UTF-8 text (byte {e.start})") from None


def load_json(path):
    """Read a file written by `save_json`; any problem raises TokenizerError naming the file."""
    from bpe.tokenizer import Tokenizer

    text = _read_text(path, "tokenizer file")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise TokenizerError(f"{path} is not valid JSON (truncated or edited?): {e.msg} at line {e.lineno} "
                             f"column {e.colno}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        hint = " (it looks like a Hugging Face tokenizer.json)" if isinstance(doc, dict) and "model" in doc else ""
        raise TokenizerError(f"{path} is not a bpe tokenizer file{hint}: expected \"format\": \"{FORMAT_NAME}\"")
    if doc.get("version") != FORMAT_VERSION:
        raise TokenizerError(f"{path} has format version {doc.get('version')!r}, but this bpe reads version "
                             f"{FORMAT_VERSION}: re-save it with a matching bpe version")
    try:
        pattern = doc["pattern"]
        specials = doc["special_tokens"]
        merges_doc = doc["merges"]
    except KeyError as e:
        raise TokenizerError(f"{path} is damaged: field {e.args[0]!r} is missing") from None
    if not isinstance(pattern, str):
        raise TokenizerError(f"{path} is damaged: \"pattern\" must be a string")
    if not isinstance(specials, dict) or not all(isinstance(v, int) for v in specials.values()):
        raise TokenizerError(f"{path} is damaged: \"special_tokens\" must map strings to ids")
    if not isinstance(merges_doc, list):
        raise TokenizerError(f"{path} is damaged: \"merges\" must be a list of [left, right] pairs")
    byte_ids = doc.get("byte_ids", list(range(256)))
    if not (isinstance(byte_ids, list) and sorted(byte_ids) == list(range(256))):
        raise TokenizerError(f"{path} is damaged: \"byte_ids\" must list each id 0..255 once")
    ids_of = {bytes([b]): token for b, token in enumerate(byte_ids)}
    token_bytes = {token: bytes([b]) for b, token in enumerate(byte_ids)}
    merges = []
    for i, entry in enumerate(merges_doc):
        new_id = 256 + i
        if not (isinstance(entry, list) and len(entry) == 2):
            raise TokenizerError(f"{path} is damaged: merge {i} (id {new_id}) must be a [left, right] pair, got "
                                 f"{json.dumps(entry, ensure_ascii=False)[:60]}")
        pair = []
        for part in entry:
            if isinstance(part, int) and not isinstance(part, bool) and 0 <= part < new_id:
                pair.append(part)
                continue
            try:
                pair.append(ids_of[text_to_bytes(part)])
            except (KeyError, TypeError, ValueError):
                raise TokenizerError(f"{path} is damaged: merge {i} (id {new_id}) names {part!r}, which is not a "
                                     f"token made before it") from None
        merges.append(tuple(pair))
        data = token_bytes[pair[0]] + token_bytes[pair[1]]
        token_bytes[new_id] = data
        ids_of.setdefault(data, new_id)
    if "num_merges" in doc and doc["num_merges"] != len(merges):
        raise TokenizerError(f"{path} is damaged: it says {doc['num_merges']} merges but holds {len(merges)} "
                             f"(truncated or edited?)")
    try:
        tok = Tokenizer(merges, resolve_pattern(pattern), specials, byte_ids)
    except TokenizerError as e:
        raise TokenizerError(f"{path} is damaged: {e}") from None
    if "vocab_size" in doc and doc["vocab_size"] != tok.vocab_size:
        raise TokenizerError(f"{path} is damaged: it says vocab_size {doc['vocab_size']} but holds "
                             f"{tok.vocab_size} ids (truncated or edited?)")
    return tok


# ---- tiktoken ranks files --------------------------------------------------------------------------------

def load_tiktoken(path, pattern: str, special_tokens: dict[str, int]):
    """Read a tiktoken ranks file ("<base64 token> <rank>" per line) into a Tokenizer with the same ids.

    The file lists tokens, not merges. Each token's merge is found by running BPE on the token's own bytes with
    only the tokens ranked below it, and taking the last two pieces: that is the pair tiktoken itself joins.
    The ranks must be 0..N-1 with the 256 single bytes first (in any order), as in OpenAI's files.
    """
    from bpe.tokenizer import Tokenizer

    text = _read_text(path, "tiktoken ranks file")
    ranks: dict[bytes, int] = {}
    try:
        fields = text.split()
        if len(fields) % 2:
            raise ValueError
        for token_b64, rank in zip(fields[::2], fields[1::2]):
            ranks[_b64decode(token_b64)] = int(rank)
    except (ValueError, binascii.Error):
        for lineno, line in enumerate(text.splitlines(), 1):  # find the line to name in the error
            try:
                token_b64, rank = line.split()
                _b64decode(token_b64), int(rank)
            except (ValueError, binascii.Error):
                raise TokenizerError(f"{path} is not a tiktoken ranks file: line {lineno} is not "
                                     f"'<base64 token> <rank>': {line[:40]!r}") from None
        raise TokenizerError(f"{path} is not a tiktoken ranks file: expected '<base64 token> <rank>' lines") from None
    tokens = sorted(ranks, key=ranks.__getitem__)
    if [ranks[t] for t in tokens] != list(range(len(tokens))):
        raise TokenizerError(f"{path}: the ranks must be 0..{len(tokens) - 1} without gaps or repeats")
    if len(tokens) < 256 or sorted(tokens[:256]) != [bytes([b]) for b in range(256)]:
        raise TokenizerError(f"{path}: ranks 0..255 must be the 256 single bytes (this reader needs a byte-level "
                             f"ranks file such as cl100k_base)")
    byte_ids = [ranks[bytes([b])] for b in range(256)]
    merges = []
    for rank in range(256, len(tokens)):
        parts = _last_two_pieces(tokens[rank], ranks, rank)
        if len(parts) != 2:
            raise TokenizerError(f"{path}: token {rank} ({tokens[rank]!r}) cannot be built from two lower-ranked "
                                 f"tokens, so it is not a BPE ranks file")
        merges.append((ranks[parts[0]], ranks[parts[1]]))
    return Tokenizer(merges, pattern, special_tokens, byte_ids)


def _last_two_pieces(token: bytes, ranks: dict[bytes, int], limit: int) -> list[bytes]:
    """Run tiktoken's BPE on `token` using only ranks below `limit` (lowest rank first, leftmost on a tie)."""
    if len(token) == 2:
        return [token[:1], token[1:]]
    get = ranks.get
    bounds = list(range(len(token) + 1))  # piece k is token[bounds[k]:bounds[k + 1]]
    pair_ranks = [get(token[i:i + 2], limit) for i in range(len(token) - 1)]  # pieces k and k + 1 joined
    while len(pair_ranks) > 1:
        best = min(pair_ranks)
        if best >= limit:
            break
        k = pair_ranks.index(best)
        del bounds[k + 1], pair_ranks[k]
        if k < len(pair_ranks):
            pair_ranks[k] = get(token[bounds[k]:bounds[k + 2]], limit)
        if k > 0:
            pair_ranks[k - 1] = get(token[bounds[k - 1]:bounds[k + 1]], limit)
    return [token[bounds[k]:bounds[k + 1]] for k in range(len(bounds) - 1)]


def _unique_token_bytes(tok, what: str) -> list[bytes]:
    token_bytes = _all_token_bytes(tok)
    if len(set(token_bytes)) != len(token_bytes):
        data = next(b for b, n in Counter(token_bytes).items() if n > 1)
        raise TokenizerError(f"cannot write a {what}: two tokens have the same bytes {data!r}, which that format "
                             f"cannot tell apart")
    return token_bytes


def save_tiktoken(tok, path) -> None:
    """Write the ranks file tiktoken reads: one "<base64 bytes> <id>" line per byte and merge token."""
    lines = [f"{base64.b64encode(data).decode('ascii')} {token}\n"
             for token, data in enumerate(_unique_token_bytes(tok, "tiktoken ranks file"))]
    atomic_write_text(path, "".join(lines))


# ---- Hugging Face tokenizer.json -------------------------------------------------------------------------

def byte_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in character for each byte, which Hugging Face's ByteLevel uses."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def huggingface_regex(pattern: str) -> str:
    """Our pattern for Hugging Face's Oniguruma regex engine, where `{1,3}+` is not possessive but "repeat".

    A possessive bounded repeat at the end of an alternative matches the same as a greedy one, so drop the `+`.
    """
    return re.sub(r"(\{\d+(?:,\d*)?\})\+", r"\1", pattern)


def save_huggingface(tok, path) -> None:
    """Write a tokenizer.json: Split (our regex) + ByteLevel pre-tokenizer, BPE model, special tokens added."""
    token_bytes = _unique_token_bytes(tok, "Hugging Face tokenizer.json")
    alphabet = byte_to_unicode()

    def as_unicode(data: bytes) -> str:
        return "".join(alphabet[b] for b in data)

    vocab = {as_unicode(data): token for token, data in enumerate(token_bytes)}
    # special tokens go in the model's vocab too, or Hugging Face renumbers them after the last merge
    vocab.update(tok.special_tokens)
    merges = [[as_unicode(token_bytes[a]), as_unicode(token_bytes[b])] for a, b in tok.merges]
    added = [{"id": token, "content": text, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for text, token in tok.special_tokens.items()]
    doc = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": huggingface_regex(tok.pattern)}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        # ignore_merges: a chunk that is exactly one token becomes that token, as in tiktoken and in our encoder
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": vocab, "merges": merges},
    }
    atomic_write_text(path, json.dumps(doc, ensure_ascii=False, indent=1))
