"""Fast byte-pair encoding of pre-split chunks: a cache for repeated chunks, numpy for the rest.

Encoding one chunk means: start from its bytes, then repeatedly take the adjacent pair with the lowest rank
(the merge learned first) and merge every occurrence of it, left to right, until no pair is a known merge. A
merge always creates a token with a higher rank than both its parts, so this equals tiktoken's "lowest rank
first" loop. As tiktoken does, a chunk whose bytes are exactly one token becomes that token directly.

Speed comes from three layers:
- a dict cache from chunk text to its ids: English text repeats its chunks a lot;
- for few short new chunks, the plain Python loop above (`merge_python`), which is what minbpe does;
- for many new chunks (Chinese text: long, mostly unique chunks), `merge_numpy` runs the loop on all chunks at
  once: each round finds every chunk's lowest-ranked pair with one `np.minimum.reduceat`, merges all of them,
  and looks up only the ranks of the pairs that changed in a numpy hash table. The work is linear in the text
  (a long run like "aaaa..." halves in length per round), so pathological inputs stay fast.
"""
from itertools import repeat

import numpy as np

NO_MERGE = np.iinfo(np.int32).max  # the rank of a pair that is not a merge
_KEY_SHIFT = 21  # pair key = left << 21 | right, so ids must stay below 2**21
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
PYTHON_MAX_BYTES = 2048  # below this many new bytes in one call, the Python loop beats numpy's fixed costs
PYTHON_MAX_CHUNK = 64  # the Python loop is quadratic in the chunk length: long chunks always go to numpy
CACHE_LIMIT = 1 << 18  # chunks kept between calls; the cache restarts empty when it grows past this


class PairRanks:
    """A numpy open-addressing hash table from a token pair (left, right) to its merge rank (= the new id)."""

    def __init__(self, merges: list[tuple[int, int]], first_id: int = 256):
        n = len(merges)
        pairs = np.array(merges, dtype=np.int64).reshape(n, 2)
        keys = pairs[:, 0] << _KEY_SHIFT | pairs[:, 1]
        self.bits = max(8, (4 * n).bit_length())  # load factor <= 1/4: almost every lookup takes one probe
        self.mask = (1 << self.bits) - 1
        self.keys = np.full(1 << self.bits, -1, dtype=np.int64)
        self.values = np.zeros(1 << self.bits, dtype=np.int32)
        slots = self._hash(keys)
        pending = np.arange(n)
        while pending.size:  # insert with linear probing; on a clash the first pending pair wins the slot
            s = slots[pending]
            free = self.keys[s] == -1
            won_slots, first = np.unique(s[free], return_index=True)
            winners = pending[free][first]
            self.keys[won_slots] = keys[winners]
            self.values[won_slots] = first_id + winners
            placed = np.zeros(n, dtype=bool)
            placed[winners] = True
            pending = pending[~placed[pending]]
            slots[pending] = (slots[pending] + 1) & self.mask

    def _hash(self, keys: np.ndarray) -> np.ndarray:
        return ((keys.astype(np.uint64) * _GOLDEN) >> np.uint64(64 - self.bits)).astype(np.int64)

    def lookup(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """The rank of each pair (left[i], right[i]), or NO_MERGE, as an int32 array."""
        keys = left.astype(np.int64) << _KEY_SHIFT | right
        ranks = np.full(len(keys), NO_MERGE, dtype=np.int32)
        slots = self._hash(keys)
        todo = np.arange(len(keys))
        while todo.size:
            found_keys = self.keys[slots]
            hit = found_keys == keys
            ranks[todo[hit]] = self.values[slots[hit]]
            go_on = ~hit & (found_keys != -1)
            todo, keys, slots = todo[go_on], keys[go_on], (slots[go_on] + 1) & self.mask
        return ranks


class ChunkEncoder:
    """Encodes pre-split chunks to ids with one tokenizer's merges; keeps a cache of chunks seen before.

    `merges[i]` is the pair (left id, right id) that creates id 256 + i; `byte_ids[b]` is the id of byte b
    (the identity for trained tokenizers, a permutation for tiktoken's cl100k); `token_bytes` lists the bytes
    of ids 0 .. 255 + len(merges).
    """

    def __init__(self, merges: list[tuple[int, int]], byte_ids: list[int], token_bytes: list[bytes]):
        if 256 + len(merges) >= 1 << _KEY_SHIFT:
            raise ValueError(f"at most {(1 << _KEY_SHIFT) - 256} merges are supported")
        self.merges = merges
        self.byte_ids = byte_ids
        self.identity_bytes = byte_ids == list(range(256))
        self.ranks = {pair: 256 + i for i, pair in enumerate(merges)}
        self.whole_token = {}  # bytes -> id, the lowest id when two tokens share their bytes
        for i in range(len(token_bytes) - 1, -1, -1):
            self.whole_token[token_bytes[i]] = i
        self.cache: dict[str, list[int]] = {}
        self._tables = None  # numpy tables, built on the first numpy call

    # ---- one call: many chunks -------------------------------------------------------------------------

    def encode_chunks(self, chunk_lists: list[list[str]]) -> list[list[int]]:
        """The ids of each list of chunks (one list per text). Raises UnicodeEncodeError on a lone surrogate."""
        missing = set().union(*chunk_lists).difference(self.cache)
        if missing:
            if len(self.cache) + len(missing) > CACHE_LIMIT:
                self.cache = {}
                missing = set().union(*chunk_lists)
            self.add_to_cache(missing)
        get = self.cache.__getitem__
        results = []
        for chunks in chunk_lists:
            out = []
            for ids in map(get, chunks):
                out += ids
            results.append(out)
        return results

    def add_to_cache(self, missing: set[str]) -> None:
        """Encode chunks not seen before and remember them."""
        cache = self.cache
        whole_token = self.whole_token
        texts, datas = [], []
        total = 0
        longest = 0
        for text in missing:
            data = text.encode("utf-8")
            token = whole_token.get(data)
            if token is not None:
                cache[text] = [token]
            else:
                texts.append(text)
                datas.append(data)
                total += len(data)
                if len(data) > longest:
                    longest = len(data)
        if not datas:
            return
        if total <= PYTHON_MAX_BYTES and longest <= PYTHON_MAX_CHUNK:
            for text, data in zip(texts, datas):
                cache[text] = self.merge_python(data)
        else:
            for text, ids in zip(texts, self.merge_numpy(datas)):
                cache[text] = ids

    # ---- the plain loop ----------------------------------------------------------------------------------

    def merge_python(self, data: bytes) -> list[int]:
        """BPE on one chunk's bytes, minbpe style: merge the lowest-ranked pair everywhere, repeat."""
        ids = list(data) if self.identity_bytes else [self.byte_ids[b] for b in data]
        ranks = self.ranks
        while len(ids) >= 2:
            rank = min(map(ranks.get, zip(ids, ids[1:]), repeat(NO_MERGE)))
            if rank == NO_MERGE:
                break
            left, right = self.merges[rank - 256]
            merged, i, n = [], 0, len(ids)
            while i < n:
                if i < n - 1 and ids[i] == left and ids[i + 1] == right:
                    merged.append(rank)
                    i += 2
                else:
                    merged.append(ids[i])
                    i += 1
            ids = merged
        return ids

    # ---- many chunks at once -----------------------------------------------------------------------------

    def _numpy_tables(self):
        if self._tables is None:
            pair_ranks = PairRanks(self.merges)
            byte_ids = np.array(self.byte_ids, dtype=np.int32)
            # the rank of every pair of raw bytes, for the first round
            first = np.repeat(byte_ids, 256)
            second = np.tile(byte_ids, 256)
            byte_pair_ranks = pair_ranks.lookup(first, second)
            self._tables = pair_ranks, byte_ids, byte_pair_ranks
        return self._tables

    def merge_numpy(self, datas: list[bytes]) -> list[list[int]]:
        """BPE on many chunks at once; returns the ids of each chunk, in order."""
        pair_ranks, byte_ids, byte_pair_ranks = self._numpy_tables()
        raw = np.frombuffer(b"".join(datas), dtype=np.uint8)
        lens = np.fromiter(map(len, datas), dtype=np.int64, count=len(datas))
        tokens = byte_ids[raw]
        # rank[i] is the rank of the pair (tokens[i], tokens[i + 1]); NO_MERGE at the last token of a chunk
        rank = np.empty(len(raw), dtype=np.int32)
        rank[:-1] = byte_pair_ranks[raw[:-1].astype(np.int32) << 8 | raw[1:]]
        starts = np.cumsum(lens) - lens
        rank[starts + lens - 1] = NO_MERGE
        chunk_ids = np.arange(len(datas))
        results: list[list[int]] = [None] * len(datas)
        while len(lens):
            lowest = np.minimum.reduceat(rank, starts)
            done = lowest == NO_MERGE
            if done.any():  # chunks with nothing left to merge leave the arrays
                done_tokens = np.repeat(done, lens)
                finished = tokens[done_tokens].tolist()
                offset = 0
                for chunk, n in zip(chunk_ids[done].tolist(), lens[done].tolist()):
                    results[chunk] = finished[offset:offset + n]
                    offset += n
                live = ~done
                if not live.any():
                    break
                live_tokens = ~done_tokens
                tokens, rank = tokens[live_tokens], rank[live_tokens]
                lens, chunk_ids, lowest = lens[live], chunk_ids[live], lowest[live]
                starts = np.cumsum(lens) - lens
            pos = np.flatnonzero(rank == np.repeat(lowest, lens))
            if len(pos) > 1 and (pos[1:] == pos[:-1] + 1).any():
                pos = _leftmost_non_overlapping(pos)
            tokens[pos] = rank[pos]
            keep = np.ones(len(tokens), dtype=bool)
            keep[pos + 1] = False
            chunk_of_pos = np.searchsorted(starts, pos, side="right") - 1
            lens = lens - np.bincount(chunk_of_pos, minlength=len(lens))
            tokens, rank = tokens[keep], rank[keep]
            new_pos = pos - np.arange(len(pos))  # each earlier merge removed one token before this one
            starts = np.cumsum(lens) - lens
            at_end = new_pos == starts[chunk_of_pos] + lens[chunk_of_pos] - 1
            rank[new_pos[at_end]] = NO_MERGE
            p = new_pos[~at_end]
            rank[p] = pair_ranks.lookup(tokens[p], tokens[p + 1])
            q = new_pos[new_pos != starts[chunk_of_pos]] - 1
            rank[q] = pair_ranks.lookup(tokens[q], tokens[q + 1])
        return results


def _leftmost_non_overlapping(pos: np.ndarray) -> np.ndarray:
    """In runs of consecutive positions (the pair x,x in "x x x x"), keep every other one from the left."""
    index = np.arange(len(pos))
    run_start = np.ones(len(pos), dtype=bool)
    run_start[1:] = pos[1:] != pos[:-1] + 1
    first_of_run = np.maximum.accumulate(np.where(run_start, index, 0))
    return pos[(index - first_of_run) % 2 == 0]
