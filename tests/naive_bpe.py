"""A deliberately simple BPE trainer (minbpe style), the oracle the fast trainer is tested against.

Every step recounts all adjacent pairs from scratch, weighted by chunk count, and merges the most frequent one;
ties go to the smallest (left, right) pair. Quadratic and slow: use it on small corpora only.
"""


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of `pair` in `ids`, left to right without overlap, by `new_id`."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def naive_train_merges(chunk_counts: dict[bytes, int], num_merges: int) -> list[tuple[int, int]]:
    """Up to `num_merges` merges, each (left id, right id) making id 256 + its index; stops when no pair is left."""
    words = [(list(chunk), count) for chunk, count in chunk_counts.items() if count > 0]
    merges = []
    for step in range(num_merges):
        stats: dict[tuple[int, int], int] = {}
        for ids, count in words:
            for pair in zip(ids, ids[1:]):
                stats[pair] = stats.get(pair, 0) + count
        if not stats:
            break
        best = min(stats, key=lambda pair: (-stats[pair], pair))
        merges.append(best)
        words = [(merge(ids, best, 256 + step), count) for ids, count in words]
    return merges
