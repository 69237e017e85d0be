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
"""
from heapq import heapify, heappop, heappush, heapreplace
from typing import Callable, Mapping

import numpy as np

# A pair (left, right) is one int: left << ID_BITS | right. A heap entry is -count << PAIR_BITS | pair, so the
# smallest entry has the highest count, then the smallest pair.
ID_BITS = 21
ID_MASK = (1 << ID_BITS) - 1
PAIR_BITS = 2 * ID_BITS
PAIR_MASK = (1 << PAIR_BITS) - 1
MAX_ID = 0x10FFFF  # token ids are character codes


def train_merges(chunk_counts: Mapping[bytes, int], num_merges: int,
                 progress: Callable[[int, int], None] | None = None) -> list[tuple[int, int]]:
    """Learn up to `num_merges` merges from {chunk bytes: count}; merge i makes token 256 + i from (left, right).

    Returns fewer merges when the chunks run out of pairs. `progress(done, total)` is called every ~1%.
    """
    if num_merges < 0:
        raise ValueError(f"num_merges must be >= 0, got {num_merges}")
    if 256 + num_merges > MAX_ID:
        raise ValueError(f"num_merges must be <= {MAX_ID - 256}, got {num_merges}")
    words: list[str] = []
    freqs: list[int] = []
    for chunk, count in chunk_counts.items():
        if len(chunk) >= 2 and count > 0:
            words.append(chunk.decode("latin-1"))  # one character per byte, character code = byte value
            freqs.append(count)
    pair_counts, where = _count_byte_pairs(words, freqs)
    heap = [-(count << PAIR_BITS) | pair for pair, count in pair_counts.items()]
    heapify(heap)

    merges: list[tuple[int, int]] = []
    report_every = max(1, num_merges // 100)
    while len(merges) < num_merges and heap:
        top = heap[0]
        pair = top & PAIR_MASK
        count = pair_counts.get(pair, 0)
        if count != -(top >> PAIR_BITS):  # stale entry: counts only go down, so fix it and look again
            if count > 0:
                heapreplace(heap, -(count << PAIR_BITS) | pair)
            else:
                heappop(heap)
            continue
        heappop(heap)
        left, right = pair >> ID_BITS, pair & ID_MASK
        new_id = 256 + len(merges)
        merges.append((left, right))
        del pair_counts[pair]
        added, added_where = _merge(words, freqs, where.pop(pair), left, right, new_id, pair_counts)
        for new_pair, new_count in added.items():
            pair_counts[new_pair] = new_count
            heappush(heap, -(new_count << PAIR_BITS) | new_pair)
        where.update(added_where)
        if progress is not None and len(merges) % report_every == 0:
            progress(len(merges), num_merges)
    if progress is not None:
        progress(len(merges), num_merges)
    return merges


def _count_byte_pairs(words: list[str], freqs: list[int]) -> tuple[dict[int, int], dict[int, list[int]]]:
    """Initial pair counts {pair: weighted count} and index {pair: chunk numbers}, computed with numpy."""
    if not words:
        return {}, {}
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    tokens = np.frombuffer("".join(words).encode("latin-1"), dtype=np.uint8).astype(np.int64)
    chunk_of = np.repeat(np.arange(len(words)), lengths)
    weight = np.repeat(np.asarray(freqs, dtype=np.int64), lengths)
    inside = chunk_of[:-1] == chunk_of[1:]  # adjacent positions within one chunk
    pairs = (tokens[:-1] << ID_BITS | tokens[1:])[inside]
    chunk_of, weight = chunk_of[:-1][inside], weight[:-1][inside]
    order = np.argsort(pairs, kind="stable")
    pairs, chunk_of, weight = pairs[order], chunk_of[order], weight[order]
    starts = np.flatnonzero(np.diff(pairs, prepend=-1))
    totals = np.add.reduceat(weight, starts)
    unique_pairs = pairs[starts].tolist()
    bounds = starts.tolist() + [len(pairs)]
    chunk_list = chunk_of.tolist()
    where = {p: chunk_list[bounds[i]:bounds[i + 1]] for i, p in enumerate(unique_pairs)}
    return dict(zip(unique_pairs, totals.tolist())), where


def _merge(words, freqs, chunk_ids, left, right, new_id, pair_counts):
    """Merge (left, right) -> new_id in the listed chunks; subtract the vanished pairs from `pair_counts`.

    Returns the new pairs (all contain new_id) with their counts, and the chunks holding each.
    Looking at the merged string: every pair touching the new token was created, and the pair it replaced
    was (p, left) on its left or (right, q) on its right ((right, left) between two new tokens).
    """
    old, new = chr(left) + chr(right), chr(new_id)
    removed: dict[int, int] = {}
    added: dict[int, int] = {}
    added_where: dict[int, list[int]] = {}
    merged_pair = left << ID_BITS | right
    right_left = right << ID_BITS | left
    new_new = new_id << ID_BITS | new_id
    for i in chunk_ids:
        word = words[i]
        merged = word.replace(old, new)
        if merged is word:  # the index is a superset: this chunk lost the pair to an earlier merge
            continue
        words[i] = merged
        f = freqs[i]
        last = len(merged) - 1
        j = merged.find(new)
        while j >= 0:
            if j > 0:
                p = ord(merged[j - 1])
                if p != new_id:  # (new, new) was counted as the right pair of the previous token
                    a = p << ID_BITS | new_id
                    added[a] = added.get(a, 0) + f
                    added_where.setdefault(a, []).append(i)
                    r = p << ID_BITS | left
                    removed[r] = removed.get(r, 0) + f
            if j < last:
                q = ord(merged[j + 1])
                if q == new_id:
                    a, r = new_new, right_left
                else:
                    a, r = new_id << ID_BITS | q, right << ID_BITS | q
                added[a] = added.get(a, 0) + f
                added_where.setdefault(a, []).append(i)
                removed[r] = removed.get(r, 0) + f
            j = merged.find(new, j + 1)
    for r, n in removed.items():
        if r != merged_pair:
            pair_counts[r] -= n
    return added, added_where
