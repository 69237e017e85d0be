"""A minbpe-style naive trainer (after Karpathy's minbpe RegexTokenizer.train), the baseline learners start from.

Every merge recounts every pair of every chunk occurrence, then rewrites every chunk: O(merges x corpus) in
pure Python. The one change from minbpe is the tie-break: the highest count wins, then the smallest
(left, right) pair (rustbpe's rule), so its merges can be compared exactly with ours and rustbpe's.
"""
import regex

from bpe.patterns import resolve_pattern


def get_stats(ids, counts=None):
    """Count each adjacent pair in `ids` into `counts`."""
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids, pair, idx):
    """Replace every occurrence of `pair` in `ids` with `idx`."""
    out, i = [], 0
    while i < len(ids):
        if i < len(ids) - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(idx)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train(text: str, vocab_size: int, pattern: str = "gpt4") -> list[tuple[int, int]]:
    """The merges (left id, right id) -> 256 + i of a byte-level BPE trained on `text`, the slow obvious way."""
    chunks = regex.findall(resolve_pattern(pattern), text)
    ids = [list(chunk.encode("utf-8")) for chunk in chunks]
    merges = []
    for i in range(vocab_size - 256):
        stats = {}
        for chunk_ids in ids:
            get_stats(chunk_ids, stats)
        if not stats:
            break  # every chunk is a single token: nothing left to merge
        pair = max(stats, key=lambda p: (stats[p], -p[0], -p[1]))
        ids = [merge(chunk_ids, pair, 256 + i) for chunk_ids in ids]
        merges.append(pair)
    return merges
