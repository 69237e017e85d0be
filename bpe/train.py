"""Byte-level BPE training: learn merges from unique pre-split chunks and their counts.

The rule (the same as rustbpe's, so merges compare exactly): at every step merge the adjacent pair of tokens
with the highest count, counted over all chunks and weighted by how often each chunk occurs; ties go to the
smallest (left id, right id). Inside a chunk a merge replaces occurrences left to right without overlap
(`a a a` with the pair (a, a) becomes `aa a`). Training stops early when no pair is left.

How it stays fast in pure Python:
- Each unique chunk is a `str` with one character per token (character code = token id), so a merge inside a
  chunk is `str.replace`, done in C.
- Pair counts live in a dict, and a heap orders them. A pair's count only goes down after the step that creates
  it (every new pair contains the newly made token), so a heap entry is either right or too high: pop the top,
  and if its count is stale push it back corrected ("lazy invalidation").
- An index maps each pair to the chunks holding it, so a merge visits only those chunks and updates the counts
  of the neighbouring pairs by the difference (+/- deltas), never recounting everything.
- A merge touching many chunks joins them into one string for a single `str.replace`, and numpy finds and
  counts the new token's neighbours (`_merge_bulk`); a merge touching few loops over them (`_merge`).
- New pairs seen once are not recorded. When the best count left is 1, every pair occurs once, in a single
  chunk, and a heap of bare pair codes, rebuilt from the chunks, finishes the job (`_merge_singletons`).
"""
import gc
from heapq import heapify, heappop, heappush, heapreplace
from operator import itemgetter
from typing import Callable, Mapping

import numpy as np

# A pair (left, right) is one int: left << ID_BITS | right. A heap entry is -count << PAIR_BITS | pair, so the
# smallest entry has the highest count, then the smallest pair.
ID_BITS = 21
ID_MASK = (1 << ID_BITS) - 1
PAIR_BITS = 2 * ID_BITS
PAIR_MASK = (1 << PAIR_BITS) - 1
MAX_ID = 0x10FFFE  # token ids are character codes; 0x10FFFF separates chunks in _merge_bulk
SEPARATOR_ID = 0x10FFFF
SEPARATOR = chr(SEPARATOR_ID)
BULK_CHUNKS = 256  # merges touching at least this many chunks are done on all of them at once, with numpy


def train_merges(chunk_counts: Mapping[bytes, int], num_merges: int,
                 progress: Callable[[int, int], None] | None = None) -> list[tuple[int, int]]:
    """Learn up to `num_merges` merges from {chunk bytes: count}; merge i makes token 256 + i from (left, right).

    Returns fewer merges when the chunks run out of pairs. `progress(done, total)` is called every ~1%.
    """
    if num_merges < 0:
        raise ValueError(f"num_merges must be >= 0, got {num_merges}")
    if 256 + num_merges > MAX_ID:
        raise ValueError(f"num_merges must be <= {MAX_ID - 256}, got {num_merges}")
    # Training creates millions of small lists that never form cycles; the cyclic garbage collector would scan
    # them again and again (about 40% of the time), so it is paused meanwhile.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _train(chunk_counts, num_merges, progress)
    finally:
        if gc_was_enabled:
            gc.enable()


def _train(chunk_counts, num_merges, progress):
    """train_merges, with its arguments checked."""
    words: list[str] = []
    freqs: list[int] = []
    for chunk, count in chunk_counts.items():
        if len(chunk) >= 2 and count > 0:
            words.append(chunk.decode("latin-1"))  # one character per byte, character code = byte value
            freqs.append(count)
    freqs_array = np.asarray(freqs, dtype=np.int64)
    pairs = _count_byte_pairs(words, freqs_array)  # pair -> [weighted count, chunks that may hold it]; new
    # pairs enter it only when seen more than once
    heap = [-(entry[0] << PAIR_BITS) | pair for pair, entry in pairs.items()]
    heapify(heap)

    merges: list[tuple[int, int]] = []
    report_every = max(1, num_merges // 100)
    while len(merges) < num_merges and heap:
        top = heap[0]
        pair = top & PAIR_MASK
        count = pairs[pair][0]
        if count != -(top >> PAIR_BITS):  # stale entry: counts only go down, so fix it and look again
            if count > 1:
                heapreplace(heap, -(count << PAIR_BITS) | pair)
            else:
                heappop(heap)
            continue
        if count == 1:  # every pair left occurs once (pairs seen once are never pushed): finish the simple way
            break
        heappop(heap)
        left, right = pair >> ID_BITS, pair & ID_MASK
        new_id = 256 + len(merges)
        merges.append((left, right))
        chunk_ids = pairs.pop(pair)[1]
        if len(chunk_ids) >= BULK_CHUNKS:
            lefts, rights = _merge_bulk(words, freqs_array, chunk_ids, left, right, new_id)
        else:
            lefts, rights = _merge(words, freqs, chunk_ids, left, right, new_id)
        # Every pair touching the new token is new; the pair it replaced is gone: (x, left) on the left of
        # the new token, (right, y) on its right, and (right, left) between two new tokens. A new pair seen once
        # is not recorded at all: only the singleton phase can merge it, and that one starts from the chunks.
        for x, entry in lefts.items():
            x = ord(x)
            n = entry[0]
            if n > 1:
                new_pair = x << ID_BITS | new_id
                pairs[new_pair] = entry
                heappush(heap, -(n << PAIR_BITS) | new_pair)
            old_pair = (right if x == new_id else x) << ID_BITS | left
            if old_pair != pair:
                old = pairs.get(old_pair)
                if old is not None:
                    old[0] -= n
        for y, entry in rights.items():
            y = ord(y)
            n = entry[0]
            if n > 1:
                new_pair = new_id << ID_BITS | y
                pairs[new_pair] = entry
                heappush(heap, -(n << PAIR_BITS) | new_pair)
            old_pair = right << ID_BITS | y
            if old_pair != pair:
                old = pairs.get(old_pair)
                if old is not None:
                    old[0] -= n
        if progress is not None and len(merges) % report_every == 0:
            progress(len(merges), num_merges)
    if len(merges) < num_merges:
        _merge_singletons(words, merges, num_merges, progress, report_every)
    if progress is not None:
        progress(len(merges), num_merges)
    return merges


def _merge_singletons(words, merges, num_merges, progress, report_every):
    """The end of training, when every pair left occurs exactly once: merge the smallest pair, again and again.

    A pair seen once lives in one chunk seen once, so each merge touches one chunk, and the pairs it makes are
    also seen once. A heap of pair codes and {pair: its chunk} are all it takes.
    """
    chunk_of: dict[int, int] = {}
    for i, word in enumerate(words):
        if len(word) > 1:
            for a, b in zip(word, word[1:]):
                pair = ord(a) << ID_BITS | ord(b)
                assert pair not in chunk_of, "a pair seen twice in the singleton phase"
                chunk_of[pair] = i
    heap = sorted(chunk_of)  # a sorted list is a heap
    while len(merges) < num_merges and heap:
        pair = heappop(heap)
        i = chunk_of.pop(pair, None)
        if i is None:  # a neighbouring merge took it
            continue
        left, right = pair >> ID_BITS, pair & ID_MASK
        new_id = 256 + len(merges)
        merges.append((left, right))
        new = chr(new_id)
        merged = words[i] = words[i].replace(chr(left) + chr(right), new)
        x, _, y = merged.partition(new)
        if x:
            x = ord(x[-1])
            del chunk_of[x << ID_BITS | left]
            new_pair = x << ID_BITS | new_id
            chunk_of[new_pair] = i
            heappush(heap, new_pair)
        if y:
            y = ord(y[0])
            del chunk_of[right << ID_BITS | y]
            new_pair = new_id << ID_BITS | y
            chunk_of[new_pair] = i
            heappush(heap, new_pair)
        if progress is not None and len(merges) % report_every == 0:
            progress(len(merges), num_merges)


def _count_byte_pairs(words: list[str], freqs: np.ndarray) -> dict[int, list]:
    """The pairs of bytes in the chunks: {pair: [weighted count, chunks holding it]}, computed with numpy."""
    if not words:
        return {}
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    tokens = np.frombuffer("".join(words).encode("latin-1"), dtype=np.uint8).astype(np.uint16)
    chunk_of = np.repeat(np.arange(len(words)), lengths)
    weight = np.repeat(freqs, lengths)
    inside = chunk_of[:-1] == chunk_of[1:]  # adjacent positions within one chunk
    byte_pairs = (tokens[:-1] << 8 | tokens[1:])[inside]  # 16 bits, so numpy sorts them with a radix sort
    grouped = _group(byte_pairs, chunk_of[:-1][inside], weight[:-1][inside])
    return {(byte_pair >> 8) << ID_BITS | byte_pair & 0xFF: entry for byte_pair, entry in grouped.items()}


def _group(keys: np.ndarray, chunk_of: np.ndarray, weight: np.ndarray) -> dict[int, list]:
    """{key: [total weight, array of its distinct chunks in increasing order]} from parallel arrays."""
    if len(keys) == 0:
        return {}
    if keys.dtype.itemsize > 2 and keys.max() <= 0xFFFF:
        keys = keys.astype(np.uint16)  # numpy sorts 16-bit keys with a radix sort, in linear time
    order = np.argsort(keys, kind="stable")
    keys, chunk_of, weight = keys[order], chunk_of[order], weight[order]
    starts = np.flatnonzero(np.diff(keys, prepend=keys[0] ^ 1))
    totals = np.add.reduceat(weight, starts).tolist()
    distinct = np.ones(len(keys), dtype=bool)  # a chunk holding a pair twice is listed once
    distinct[1:] = (keys[1:] != keys[:-1]) | (chunk_of[1:] != chunk_of[:-1])
    kept_chunks = chunk_of[distinct]
    kept_keys = keys[distinct]
    bounds = np.flatnonzero(np.diff(kept_keys, prepend=kept_keys[0] ^ 1)).tolist() + [len(kept_chunks)]
    return {key: [totals[k], kept_chunks[bounds[k]:bounds[k + 1]]] for k, key in enumerate(keys[starts].tolist())}


def _merge(words, freqs, chunk_ids, left, right, new_id):
    """Merge (left, right) -> new_id in the listed chunks (a superset of those holding the pair).

    Returns the neighbours of the new token, as characters: {x: [weighted count, chunks]} for the pairs
    (x, new) on its left ((new, new) included) and {y: [weighted count, chunks]} for the pairs (new, y) on its right.
    """
    if type(chunk_ids) is not list:
        chunk_ids = chunk_ids.tolist()
    old, new = chr(left) + chr(right), chr(new_id)
    lefts: dict[str, list] = {}  # neighbour character -> [weighted count, chunks]
    rights: dict[str, list] = {}
    for i in chunk_ids:
        word = words[i]
        merged = word.replace(old, new)
        if merged is word:  # the pair went away in an earlier merge
            continue
        words[i] = merged
        f = freqs[i]
        if len(word) - len(merged) == 1:  # one occurrence, the usual case
            x, _, y = merged.partition(new)
            if x:
                x = x[-1]
                entry = lefts.get(x)
                if entry is None:
                    lefts[x] = [f, [i]]
                else:
                    entry[0] += f
                    entry[1].append(i)
            if y:
                y = y[0]
                entry = rights.get(y)
                if entry is None:
                    rights[y] = [f, [i]]
                else:
                    entry[0] += f
                    entry[1].append(i)
            continue
        pieces = merged.split(new)  # the text between new tokens
        last = len(pieces) - 1
        for k, piece in enumerate(pieces):
            if piece:
                if k > 0:
                    _add(rights, piece[0], f, i)
                if k < last:
                    _add(lefts, piece[-1], f, i)
            elif 0 < k < last:  # two new tokens side by side
                _add(lefts, new, f, i)
    return lefts, rights


def _add(neighbours: dict, token: str, f: int, i: int) -> None:
    """Count one more pair with `token` in chunk i (weight f), listing the chunk once."""
    entry = neighbours.get(token)
    if entry is None:
        neighbours[token] = [f, [i]]
    else:
        entry[0] += f
        if entry[1][-1] != i:
            entry[1].append(i)


def _merge_bulk(words, freqs, chunk_ids, left, right, new_id):
    """`_merge` on many chunks at once: one `str.replace` on all of them joined, then numpy for the neighbours."""
    chunk_array = np.asarray(chunk_ids)
    chunk_ids = chunk_array.tolist()
    pieces = itemgetter(*chunk_ids)(words) if len(chunk_ids) > 1 else [words[chunk_ids[0]]]
    merged = SEPARATOR.join(pieces).replace(chr(left) + chr(right), chr(new_id))
    for i, word in zip(chunk_ids, merged.split(SEPARATOR)):
        words[i] = word
    tokens = np.frombuffer((SEPARATOR + merged + SEPARATOR).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    separators = np.flatnonzero(tokens == SEPARATOR_ID)
    pos = np.flatnonzero(tokens == new_id)
    ids = chunk_array[np.searchsorted(separators, pos) - 1]
    weight = freqs[ids]
    x, y = tokens[pos - 1].astype(np.int64), tokens[pos + 1].astype(np.int64)
    on_left = x != SEPARATOR_ID
    on_right = (y != SEPARATOR_ID) & (y != new_id)  # (new, new) is counted on the left of the second one
    lefts = _group(x[on_left], ids[on_left], weight[on_left])
    rights = _group(y[on_right], ids[on_right], weight[on_right])
    return {chr(x): entry for x, entry in lefts.items()}, {chr(y): entry for y, entry in rights.items()}
