"""Fast byte-pair encoding of pre-split chunks: a cache for repeated chunks, numpy for the rest.

Encoding one chunk means: start from its bytes, then repeatedly take the adjacent pair with the lowest rank
(the merge learned first) and merge every occurrence of it, left to right, until no pair is a known merge. A
merge always creates a token with a higher rank than both its parts, so this equals tiktoken's "lowest rank
first" loop. As tiktoken does, a chunk whose bytes are exactly one token becomes that token directly.

How it gets fast (every step below gives exactly the ids of that loop; the tests check it against the loop and
against tiktoken):
- English repeats its chunks: a dict cache maps chunk text to ids; few short new chunks use the plain loop
  (`merge_python`, minbpe style).
- Many new chunks (Chinese: long, mostly unique) are merged all at once with numpy (`_merge_rounds`). Each round
  merges, in every chunk, its lowest-ranked pair (found with `np.minimum.reduceat`) and also every pair that no
  lower-ranked merge can ever take a token from. That test uses a "wall" per token boundary, a lower bound on
  the rank of any merge that could ever join across it, from the vocabulary alone (`walls`). Only the pairs
  next to a merge are looked up again, in a numpy hash table (`PairRanks`).
- Chunks are cut where the wall is infinite (no token spans the boundary): the pieces are independent, and each
  distinct short piece is merged once. Characters start from their own precomputed merges (`_char_tables`),
  as far as the walls around them allow, so Chinese text starts with one entry per character, not per byte.
- The work is linear in the text: a run like "aaaa..." halves in length per round.
"""
from itertools import repeat

import numpy as np

NO_MERGE = np.iinfo(np.int32).max  # the rank of a pair that is not a merge
_KEY_SHIFT = 21  # pair key = left << 21 | right, so ids must stay below 2**21
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
PYTHON_MAX_BYTES = 2048  # below this many new bytes in one call, the Python loop beats numpy's fixed costs
PYTHON_MAX_CHUNK = 64  # the Python loop is quadratic in the chunk length: long chunks always go to numpy
CACHE_LIMIT = 1 << 18  # chunks kept between calls; the cache restarts empty when it grows past this
CACHE_MAX_CHUNK = 256  # longer chunks are not kept
WHOLE_TEXT_MIN_CHUNKS = 4096  # a text with at least this many chunks, of which more than this share are new,
WHOLE_TEXT_NEW_SHARE = 0.25  # skips the cache and goes through numpy whole
WHOLE_TEXT_MIN_CHARS = 1 << 16  # (so does a long text made of a few huge chunks)


class PairRanks:
    """A numpy open-addressing hash table from a token pair (left, right) to its merge rank (= the new id)."""

    EMPTY = np.uint64(2**64 - 1)

    def __init__(self, merges: list[tuple[int, int]], first_id: int = 256):
        n = len(merges)
        pairs = np.array(merges, dtype=np.uint64).reshape(n, 2)
        keys = pairs[:, 0] << np.uint64(_KEY_SHIFT) | pairs[:, 1]
        self.bits = max(8, (4 * n).bit_length())  # load factor <= 1/4: almost every lookup takes one probe
        self.shift = np.uint64(64 - self.bits)
        self.mask = np.uint64((1 << self.bits) - 1)
        self.keys = np.full(1 << self.bits, self.EMPTY, dtype=np.uint64)
        self.values = np.zeros(1 << self.bits, dtype=np.int32)
        slots = (keys * _GOLDEN) >> self.shift
        pending = np.arange(n)
        while pending.size:  # insert with linear probing; on a clash the first pending pair wins the slot
            s = slots[pending]
            free = self.keys[s] == self.EMPTY
            won_slots, first = np.unique(s[free], return_index=True)
            winners = pending[free][first]
            self.keys[won_slots] = keys[winners]
            self.values[won_slots] = first_id + winners
            placed = np.zeros(n, dtype=bool)
            placed[winners] = True
            pending = pending[~placed[pending]]
            slots[pending] = (slots[pending] + np.uint64(1)) & self.mask

    def lookup(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """The rank of each pair (left[i], right[i]), or NO_MERGE, as an int32 array."""
        keys = left.astype(np.uint64) << np.uint64(_KEY_SHIFT)
        keys |= right.astype(np.uint64)
        slots = keys * _GOLDEN
        slots >>= self.shift
        found = self.keys[slots]
        hit = found == keys
        ranks = np.where(hit, self.values[slots], np.int32(NO_MERGE))
        hit |= found == self.EMPTY
        probe_on = np.flatnonzero(~hit)  # a clash: look at the next slots (rare)
        while probe_on.size:
            slots_on = (slots[probe_on] + np.uint64(1)) & self.mask
            slots[probe_on] = slots_on
            found = self.keys[slots_on]
            hit = found == keys[probe_on]
            ranks[probe_on[hit]] = self.values[slots_on[hit]]
            probe_on = probe_on[~hit & (found != self.EMPTY)]
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
        self.whole_token = {}  # chunk text -> id, for tokens that are whole UTF-8 text (the lowest id on a tie)
        for i in range(len(token_bytes) - 1, -1, -1):
            try:
                self.whole_token[token_bytes[i].decode("utf-8")] = i
            except UnicodeDecodeError:
                pass
        self.token_bytes = token_bytes
        self.cache: dict[str, list[int]] = {}  # chunk text -> ids
        self._tables = None  # numpy tables, built on the first call that needs them (see `prepare`)

    # ---- one call: many texts ----------------------------------------------------------------------------

    def encode_texts(self, texts: list[str], chunk_lists: list[list[str]]) -> list[list[int]]:
        """The ids of each text, given its pre-split chunks. Raises UnicodeEncodeError on a lone surrogate.

        Text whose chunks are mostly new (Chinese) goes through numpy in one piece; the rest share the cache.
        """
        results: list[list[int] | None] = [None] * len(texts)
        cached, missing = [], None
        for i, (text, chunks) in enumerate(zip(texts, chunk_lists)):
            if len(chunks) >= WHOLE_TEXT_MIN_CHUNKS or len(text) >= WHOLE_TEXT_MIN_CHARS:
                missing = set(chunks).difference(self.cache)
                if len(missing) > WHOLE_TEXT_NEW_SHARE * len(chunks):
                    results[i] = self.encode_text_numpy(text, chunks)
                    continue
            cached.append(i)
        if cached:
            known = missing if len(texts) == 1 else None  # one text: its new chunks are known already
            for i, ids in zip(cached, self.encode_cached([chunk_lists[i] for i in cached], known)):
                results[i] = ids
        return results

    def encode_cached(self, chunk_lists: list[list[str]], missing: set[str] | None = None) -> list[list[int]]:
        """Encode through the chunk cache: look each chunk up, encode the new ones (`missing`, when known) first."""
        if missing is None:
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
        for text in missing:  # keep long one-off chunks ("=" * 100000) out of the cache
            if len(text) > CACHE_MAX_CHUNK:
                del self.cache[text]
        return results

    def add_to_cache(self, missing: set[str]) -> None:
        """Encode chunks not seen before and remember them."""
        cache = self.cache
        whole_token = self.whole_token
        texts, datas = [], []
        total = 0
        longest = 0
        for text in missing:
            token = whole_token.get(text)
            if token is not None:
                cache[text] = [token]
                continue
            data = text.encode("utf-8")
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
            lens = np.fromiter(map(len, datas), dtype=np.int64, count=len(datas))
            raw = np.frombuffer(b"".join(datas), dtype=np.uint8)
            tokens, counts = self.merge_numpy(raw, np.cumsum(lens) - lens)
            ids, at = tokens.tolist(), 0
            for text, n in zip(texts, counts.tolist()):
                cache[text] = ids[at:at + n]
                at += n

    def encode_text_numpy(self, text: str, chunks: list[str]) -> list[int]:
        """Encode one whole text with numpy, no cache: for text whose chunks are mostly unique."""
        if not chunks:
            return []
        data = text.encode("utf-8")
        char_lens = np.fromiter(map(len, chunks), dtype=np.int64, count=len(chunks))
        if int(char_lens.sum()) == len(text):  # the chunks tile the text
            char_starts = np.cumsum(char_lens) - char_lens
            if len(data) == len(text):
                tokens, counts = self.merge_numpy(np.frombuffer(data, dtype=np.uint8), char_starts)
            else:
                codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
                tokens, counts = self.merge_characters(codes, char_starts)
        else:  # a custom pattern that skips characters
            datas = [chunk.encode("utf-8") for chunk in chunks]
            lens = np.fromiter(map(len, datas), dtype=np.int64, count=len(datas))
            data, starts = b"".join(datas), np.cumsum(lens) - lens
            tokens, counts = self.merge_numpy(np.frombuffer(data, dtype=np.uint8), starts)
        ids = tokens.tolist()
        # tiktoken's shortcut: a chunk that is exactly one token becomes it, even where BPE would split it
        whole = np.fromiter(map(self.whole_token.get, chunks, repeat(-1)), dtype=np.int64, count=len(chunks))
        is_whole = np.flatnonzero(whole >= 0)
        offsets = np.cumsum(counts) - counts
        differs = is_whole[(counts[is_whole] != 1) | (tokens[offsets[is_whole]] != whole[is_whole])]
        for chunk in differs[::-1].tolist():  # rare: patch from the end so offsets stay valid
            ids[offsets[chunk]:offsets[chunk] + counts[chunk]] = [int(whole[chunk])]
        return ids

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

    def prepare(self) -> None:
        """Build the numpy tables now rather than in the first long encode (they take 0.1-1 s for big vocabularies)."""
        self._numpy_tables()

    def _numpy_tables(self):
        if self._tables is None:
            pair_ranks = PairRanks(self.merges)
            byte_ids = np.array(self.byte_ids, dtype=np.int32)
            # the rank of every pair of raw bytes, for the first round
            byte_pair_ranks = pair_ranks.lookup(np.repeat(byte_ids, 256), np.tile(byte_ids, 256))
            # first_join[b1 << 8 | b2]: the rank of the first merge that joins a token ending in byte b1 to one
            # starting with b2. No merge ranked lower can ever join the two sides of that byte boundary.
            first_join = np.full(1 << 16, NO_MERGE, dtype=np.int32)
            tb = self.token_bytes
            boundary = np.array([tb[left][-1] << 8 | tb[right][0] for left, right in self.merges], dtype=np.int64)
            np.minimum.at(first_join, boundary, np.arange(256, 256 + len(self.merges), dtype=np.int32))
            first_byte = np.array([b[0] for b in tb], dtype=np.int32)
            last_byte = np.array([b[-1] for b in tb], dtype=np.int32)
            char_tables = _char_tables(pair_ranks, byte_ids)
            self._tables = pair_ranks, byte_ids, byte_pair_ranks, first_join, first_byte, last_byte, char_tables
            # join_after[t]: the first merge whose left part ends with token t's bytes; join_before[t]: whose
            # right part starts with them. Tokens only grow, so whatever joins token a to the token b after it
            # is such a merge for both: its rank is at least both (and the first join of their boundary bytes).
            self._join_after, self._join_before = _join_bounds(self.merges, tb)
            self._first_join, self._first_byte, self._last_byte = first_join, first_byte, last_byte
        return self._tables

    def walls(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """A lower bound on the rank of any merge that can ever join token left[i] to the token right[i] after it."""
        wall = self._first_join[self._last_byte[left] << 8 | self._first_byte[right]]
        np.maximum(wall, self._join_after[left], out=wall)
        np.maximum(wall, self._join_before[right], out=wall)
        return wall

    def merge_numpy(self, raw: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """BPE on the chunks raw[starts[i]:starts[i + 1]] all at once: all their ids, and how many each got.

        Chunks are first cut where no token holds the two bytes on either side of the cut (in Chinese text,
        mostly between characters): the pieces encode independently, are short, and repeat, so each distinct
        short piece is encoded once.
        """
        first_join = self._numpy_tables()[3]
        cut = np.empty(len(raw), dtype=bool)
        cut[1:] = first_join[raw[:-1].astype(np.int32) << 8 | raw[1:]] == NO_MERGE
        cut[starts] = True
        piece_starts = np.flatnonzero(cut)
        piece_lens = np.diff(piece_starts, append=len(raw))
        # a piece of up to 7 bytes is a number: its bytes, little-endian, plus its length in the top byte
        short = np.flatnonzero(piece_lens <= 7)
        long = np.flatnonzero(piece_lens > 7)
        windows = np.lib.stride_tricks.sliding_window_view(np.append(raw, np.zeros(8, np.uint8)), 8)
        keys = np.ascontiguousarray(windows[piece_starts[short]]).view(np.uint64).ravel()
        short_lens = piece_lens[short].astype(np.uint64)
        keys = keys & ((np.uint64(1) << (short_lens * np.uint64(8))) - np.uint64(1)) | short_lens << np.uint64(56)
        _, first, which = np.unique(keys, return_index=True, return_inverse=True)
        # encode the distinct short pieces and every long one, gathered into one array
        todo_starts = np.concatenate([piece_starts[short[first]], piece_starts[long]])
        todo_lens = np.concatenate([piece_lens[short[first]], piece_lens[long]])
        tokens, todo_counts = self.bpe_numpy(raw[_ranges(todo_starts, todo_lens)], np.cumsum(todo_lens) - todo_lens)
        return _scatter_back(tokens, todo_counts, piece_starts, short, which, long, len(first), starts)

    def merge_characters(self, codes: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`merge_numpy` for chunks given as code points (codes[starts[i]:starts[i + 1]]), with less work for
        text that is mostly multi-byte characters: the arrays start one entry per character, not per byte."""
        _, byte_ids, _, first_join, _, _, char_tables = self._numpy_tables()
        first = _first_byte(codes)
        last = np.where(codes < 0x80, codes, 0x80 | codes & 0x3F)
        # walls between characters; cut the chunks where nothing can ever join across
        between = np.empty(len(codes), dtype=np.int32)
        between[:-1] = first_join[last[:-1] << 8 | first[1:]]
        between[-1] = NO_MERGE
        between[starts[1:] - 1] = NO_MERGE
        cut = np.empty(len(codes), dtype=bool)
        cut[0] = True
        cut[1:] = between[:-1] == NO_MERGE
        piece_starts = np.flatnonzero(cut)
        piece_lens = np.diff(piece_starts, append=len(codes))
        # pieces of up to 3 characters are a number (code point + 1 in 21 bits each): encode each one once
        short = np.flatnonzero(piece_lens <= 3)
        long = np.flatnonzero(piece_lens > 3)
        at = piece_starts[short]
        size = piece_lens[short]
        padded = np.append(codes + 1, [0, 0])
        keys = padded[at] | np.where(size > 1, padded[at + 1], 0) << 21 | np.where(size > 2, padded[at + 2], 0) << 42
        _, first_of, which = np.unique(keys, return_index=True, return_inverse=True)
        todo_starts = np.concatenate([piece_starts[short[first_of]], piece_starts[long]])
        todo_lens = np.concatenate([piece_lens[short[first_of]], piece_lens[long]])
        chars = _ranges(todo_starts, todo_lens)
        tokens, todo_counts = self._merge_rounds(*_start_from_code_points(
            codes[chars], first[chars], last[chars], between[chars], np.cumsum(todo_lens) - todo_lens,
            todo_lens, byte_ids, char_tables, self._numpy_tables(), self.walls))
        return _scatter_back(tokens, todo_counts, piece_starts, short, which, long, len(first_of), starts)

    def bpe_numpy(self, raw: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """BPE on the byte strings raw[starts[i]:starts[i + 1]] all at once (no whole-token shortcut).

        Returns all their ids, in order, and how many ids each string got.

        Each round merges, in every string, (1) every occurrence of its lowest-ranked pair and (2) every pair
        that nothing can take a token from before its turn: `wall[i]`, the first rank able to join anything
        across the boundary after token i, only depends on the bytes there, so a pair whose rank is below the
        wall on its left and not above the wall on its right merges now exactly as it would in its turn.
        """
        pair_ranks, byte_ids, byte_pair_ranks, first_join, first_byte, last_byte, char_tables = self._numpy_tables()
        lens = np.diff(starts, append=len(raw))
        if (raw >= 0xC2).any():  # 2- and 3-byte characters start from their precomputed tokens
            tokens, starts, lens = _start_from_characters(raw, starts, lens, byte_ids, first_join, char_tables)
            # rank[i] is the rank of the pair (tokens[i], tokens[i + 1]); NO_MERGE at the last token of a string
            rank = np.empty(len(tokens), dtype=np.int32)
            rank[:-1] = pair_ranks.lookup(tokens[:-1], tokens[1:])
            wall = np.empty(len(tokens), dtype=np.int32)
            wall[:-1] = self.walls(tokens[:-1], tokens[1:])
        else:
            tokens = byte_ids[raw]
            bigrams = raw[:-1].astype(np.int32) << 8 | raw[1:]
            rank = np.empty(len(raw), dtype=np.int32)
            rank[:-1] = byte_pair_ranks[bigrams]
            wall = np.empty(len(raw), dtype=np.int32)
            wall[:-1] = self.walls(tokens[:-1], tokens[1:])
        ends = starts + lens - 1
        rank[ends] = wall[ends] = NO_MERGE
        return self._merge_rounds(tokens, rank, wall, starts, lens)

    def _merge_rounds(self, tokens, rank, wall, starts, lens) -> tuple[np.ndarray, np.ndarray]:
        """The merge rounds of `bpe_numpy`, from starting tokens, their pair ranks and walls."""
        pair_ranks = self._numpy_tables()[0]
        n = len(starts)
        owner = np.arange(n)  # which string each live segment is
        finished_tokens, finished_owners = [], []
        while len(lens):
            lowest = np.minimum.reduceat(rank, starts)
            done = lowest == NO_MERGE
            # strings with nothing left to merge leave the arrays, in bulk (once they hold a quarter of them)
            if done.all() or (done.any() and 4 * int(lens[done].sum()) >= len(tokens)):
                done_tokens = np.repeat(done, lens)
                finished_tokens.append(tokens[done_tokens])
                finished_owners.append(np.repeat(owner[done], lens[done]))
                live = np.flatnonzero(~done)
                if not len(live):
                    break
                live_tokens = np.flatnonzero(~done_tokens)  # one index array, then `take`s: faster than masks
                tokens, rank, wall = tokens[live_tokens], rank[live_tokens], wall[live_tokens]
                lens, owner, lowest, done = lens[live], owner[live], lowest[live], done[live]
                starts = np.cumsum(lens) - lens
            merge = rank == np.repeat(np.where(done, -1, lowest), lens)
            free = rank < NO_MERGE
            free[1:] &= wall[:-1] > rank[1:]  # nothing joins into token i from the left before this rank
            free[:-1] &= wall[1:] >= rank[:-1]  # nor into token i + 1 from the right
            pos = np.flatnonzero(merge | free)
            if len(pos) > 1 and (pos[1:] == pos[:-1] + 1).any():
                pos = _leftmost_non_overlapping(pos)
            tokens[pos] = rank[pos]
            wall[pos] = wall[pos + 1]  # the merged token's right boundary is token i + 1's
            keep = np.ones(len(tokens), dtype=bool)
            keep[pos + 1] = False
            segment_of_pos = np.searchsorted(starts, pos, side="right") - 1
            lens = lens - np.bincount(segment_of_pos, minlength=len(lens))
            kept = np.flatnonzero(keep)
            tokens, rank, wall = tokens[kept], rank[kept], wall[kept]
            new_pos = pos - np.arange(len(pos))  # each earlier merge removed one token before this one
            starts = np.cumsum(lens) - lens
            at_end = new_pos == starts[segment_of_pos] + lens[segment_of_pos] - 1
            rank[new_pos[at_end]] = NO_MERGE
            p = new_pos[~at_end]
            rank[p] = pair_ranks.lookup(tokens[p], tokens[p + 1])
            wall[p] = self.walls(tokens[p], tokens[p + 1])  # a bigger token: maybe a higher wall
            # the pair on the left of each merged token, unless that is a merged token too (done just above)
            left_new = np.ones(len(new_pos), dtype=bool)
            left_new[1:] = new_pos[:-1] != new_pos[1:] - 1
            q = new_pos[left_new & (new_pos != starts[segment_of_pos])] - 1
            rank[q] = pair_ranks.lookup(tokens[q], tokens[q + 1])
            wall[q] = self.walls(tokens[q], tokens[q + 1])
        owners = np.concatenate(finished_owners)
        order = np.argsort(owners, kind="stable")  # each round's output is already sorted: a cheap merge
        return np.concatenate(finished_tokens)[order], np.bincount(owners, minlength=n)


def _char_tables(pair_ranks: PairRanks, byte_ids: np.ndarray) -> tuple[np.ndarray, ...]:
    """BPE of every 2- and 3-byte character on its own, by code point: the ranks of its first and second
    merge (NO_MERGE when there is none), and its tokens after 0, 1 and 2 merges (tokens[cp, level, :count]).
    """
    cps = np.arange(0x80, 0x10000)
    cps = cps[(cps < 0xD800) | (cps > 0xDFFF)]
    two = cps < 0x800
    b0 = np.where(two, 0xC0 | cps >> 6, 0xE0 | cps >> 12)
    b1 = np.where(two, 0x80 | cps & 0x3F, 0x80 | (cps >> 6) & 0x3F)
    b2 = 0x80 | cps & 0x3F
    t0, t1, t2 = byte_ids[b0], byte_ids[b1], byte_ids[b2]
    r01 = pair_ranks.lookup(t0, t1)
    r12 = np.where(two, NO_MERGE, pair_ranks.lookup(t1, t2))
    left_first = r01 < r12  # the two pairs differ (a lead byte is never a continuation byte), so no tie
    first = np.minimum(r01, r12)
    once_left = np.where(left_first, r01, t0)  # the tokens after the first merge
    once_right = np.where(left_first, t2, r12)
    second = np.where(two | (first == NO_MERGE), NO_MERGE, pair_ranks.lookup(once_left, once_right))
    tokens = np.zeros((0x10000, 3, 3), dtype=np.int32)
    counts = np.zeros((0x10000, 3), dtype=np.int8)
    tokens[cps, 0] = np.stack([t0, t1, t2], axis=1)
    counts[cps, 0] = np.where(two, 2, 3)
    tokens[cps, 1, 0] = np.where(two, r01, once_left)
    tokens[cps, 1, 1] = once_right
    counts[cps, 1] = np.where(two, 1, 2)
    tokens[cps, 2, 0] = second
    counts[cps, 2] = 1
    first_rank = np.full(0x10000, NO_MERGE, dtype=np.int32)
    second_rank = np.full(0x10000, NO_MERGE, dtype=np.int32)
    first_rank[cps], second_rank[cps] = first, second
    return first_rank, second_rank, tokens, counts


def _start_from_characters(raw, starts, lens, byte_ids, first_join, char_tables):
    """The starting tokens of each string: bytes, except that whole 2- and 3-byte characters start merged.

    The walls around a character (first-join ranks of the bytes on each side) bound when anything can first be
    joined to it; every merge inside it ranked below that happens the same whatever surrounds it, so it is
    taken from the per-character table. Returns tokens, starts and lens.
    """
    first_rank, second_rank, table, table_counts = char_tables
    size = len(raw)
    lead = np.flatnonzero((raw >= 0xC2) & (raw < 0xF0))
    width = np.where(raw[lead] >= 0xE0, 3, 2)
    last = lead + width - 1
    string_start = np.repeat(starts, lens)
    string_end = string_start + np.repeat(lens, lens)  # one past the end of each byte's string
    whole = (last < size) & (last < string_end[lead])  # a string may end (or a piece be cut) inside a character
    lead, width, last = lead[whole], width[whole], last[whole]
    b = raw.astype(np.int32)
    two = width == 2
    cp = np.where(two, (b[lead] & 0x1F) << 6 | b[lead + 1] & 0x3F,
                  (b[lead] & 0x0F) << 12 | (b[lead + 1] & 0x3F) << 6 | b[np.minimum(lead + 2, size - 1)] & 0x3F)
    has_before = lead > string_start[lead]
    has_after = last + 1 < string_end[lead]
    wall_before = np.where(has_before, first_join[b[lead - 1] << 8 | b[lead]], NO_MERGE)
    wall_after = np.where(has_after, first_join[b[last] << 8 | b[np.minimum(last + 1, size - 1)]], NO_MERGE)
    limit = np.minimum(wall_before, wall_after)
    level = (first_rank[cp] < limit).astype(np.int64) + (second_rank[cp] < limit)
    made = table_counts[cp, level]
    count = np.ones(size, dtype=np.int64)
    count[lead + 1] = 0
    count[lead[~two] + 2] = 0
    count[lead] = made
    out = np.cumsum(count) - count
    tokens = np.empty(int(out[-1] + count[-1]), dtype=np.int32)
    single = count == 1
    single[lead] = False
    tokens[out[single]] = byte_ids[raw[single]]
    for k in range(3):
        has = made > k
        tokens[out[lead[has]] + k] = table[cp[has], level[has], k]
    new_starts = out[starts]
    return tokens, new_starts, np.diff(new_starts, append=len(tokens))


def _join_bounds(merges, token_bytes) -> tuple[np.ndarray, np.ndarray]:
    """join_after[t] / join_before[t]: the rank of the first merge whose left part ends with / right part starts
    with the bytes of token t (NO_MERGE when none does)."""
    ids = {}
    for token in range(len(token_bytes) - 1, -1, -1):
        ids[token_bytes[token]] = token
    join_after = np.full(len(token_bytes), NO_MERGE, dtype=np.int32)
    join_before = np.full(len(token_bytes), NO_MERGE, dtype=np.int32)
    after, before = {}, {}
    for i, (left, right) in enumerate(merges):  # in rank order: the first one found is the lowest
        data = token_bytes[left]
        for k in range(len(data)):
            t = ids.get(data[k:])
            if t is not None and t not in after:
                after[t] = 256 + i
        data = token_bytes[right]
        for k in range(1, len(data) + 1):
            t = ids.get(data[:k])
            if t is not None and t not in before:
                before[t] = 256 + i
    join_after[list(after)] = list(after.values())
    join_before[list(before)] = list(before.values())
    return join_after, join_before


def _first_byte(codes: np.ndarray) -> np.ndarray:
    """The first UTF-8 byte of each code point."""
    return np.where(codes < 0x80, codes, np.where(codes < 0x800, 0xC0 | codes >> 6,
                                                  np.where(codes < 0x10000, 0xE0 | codes >> 12, 0xF0 | codes >> 18)))


def _start_from_code_points(codes, first, last, between, starts, lens, byte_ids, char_tables, tables, walls):
    """Starting tokens, pair ranks and walls for strings of characters (see `_start_from_characters`):
    ASCII is its byte, 2- and 3-byte characters come merged as far as their walls allow, 4-byte ones as bytes.
    `between[i]` is the wall between character i and i + 1 (NO_MERGE at the end of a string)."""
    pair_ranks, _, _, first_join, first_byte, last_byte, _ = tables
    first_rank, second_rank, table, table_counts = char_tables
    n = len(codes)
    wall_before = np.empty(n, dtype=np.int32)
    wall_before[0] = NO_MERGE
    wall_before[1:] = between[:-1]
    wall_before[starts] = NO_MERGE
    limit = np.minimum(wall_before, between)
    bmp = np.minimum(codes, 0xFFFF)
    level = (first_rank[bmp] < limit).astype(np.int64) + (second_rank[bmp] < limit)
    ascii_ = codes < 0x80
    astral = codes >= 0x10000
    count = np.where(ascii_, 1, np.where(astral, 4, table_counts[bmp, level].astype(np.int64)))
    out = np.cumsum(count) - count
    tokens = np.empty(int(out[-1] + count[-1]) if n else 0, dtype=np.int32)
    tokens[out[ascii_]] = byte_ids[codes[ascii_]]
    table_chars = np.flatnonzero(~ascii_ & ~astral)
    made = count[table_chars]
    where = out[table_chars]
    flat = table.reshape(-1)
    entry = (codes[table_chars] * 3 + level[table_chars]) * 3  # table[cp, level, 0] in the flat table
    tokens[where] = flat[entry]
    for k in (1, 2):
        more = np.flatnonzero(made > k)
        tokens[where[more] + k] = flat[entry[more] + k]
    four = np.flatnonzero(astral)
    c = codes[four]
    for k, byte in enumerate((0xF0 | c >> 18, 0x80 | (c >> 12) & 0x3F, 0x80 | (c >> 6) & 0x3F, 0x80 | c & 0x3F)):
        tokens[out[four] + k] = byte_ids[byte]
    new_starts = out[starts]
    new_lens = np.diff(new_starts, append=len(tokens))
    wall = np.empty(len(tokens), dtype=np.int32)
    wall[:-1] = walls(tokens[:-1], tokens[1:])
    rank = np.full(len(tokens), NO_MERGE, dtype=np.int32)
    joinable = np.flatnonzero(wall[:-1] < NO_MERGE)  # elsewhere no merge can ever join the two tokens
    rank[joinable] = pair_ranks.lookup(tokens[joinable], tokens[joinable + 1])
    ends = new_starts + new_lens - 1
    rank[ends] = wall[ends] = NO_MERGE
    return tokens, rank, wall, new_starts, new_lens


class ByteTable:
    """The bytes of every id packed in one buffer, to decode long id lists with numpy."""

    def __init__(self, token_bytes: dict[int, bytes]):
        size = max(token_bytes) + 1
        self.lens = np.full(size, -1, dtype=np.int32)  # -1: no token has this id
        self.offsets = np.zeros(size, dtype=np.int64)
        ids = sorted(token_bytes)
        self.lens[ids] = [len(token_bytes[i]) for i in ids]
        self.offsets[ids] = np.cumsum(self.lens[ids]) - self.lens[ids]
        self.buffer = np.frombuffer(b"".join(token_bytes[i] for i in ids), dtype=np.uint8)

    def join(self, ids: np.ndarray) -> bytes | None:
        """The bytes of the ids, or None when one of them is not a token."""
        if len(ids) == 0:
            return b""
        if ids.min() < 0 or ids.max() >= len(self.lens):
            return None
        lens = self.lens[ids]
        if lens.min() < 0:
            return None
        ends = np.cumsum(lens, dtype=np.int64)
        total = int(ends[-1])
        offsets = self.offsets[ids]
        # the byte index runs up by one inside a token and jumps to the next token's offset at its start
        index_type = np.int32 if max(total, len(self.buffer)) < 1 << 31 else np.int64  # int32: half the memory
        step = np.ones(total, dtype=index_type)
        step[0] = offsets[0]
        step[ends[:-1]] = offsets[1:] - (offsets[:-1] + lens[:-1]) + 1
        return self.buffer[np.cumsum(step, dtype=index_type)].tobytes()


def _scatter_back(tokens, todo_counts, piece_starts, short, which, long, n_short, starts):
    """Spread the tokens of each distinct encoded piece back to every piece, in text order.

    Pieces `short` were encoded once per distinct string (`which` says which one, of the first `n_short`);
    pieces `long` were encoded one by one after them. Returns (ids, tokens per chunk of `starts`).
    """
    source = np.empty(len(piece_starts), dtype=np.int64)
    source[short] = which.ravel()
    source[long] = n_short + np.arange(len(long))
    counts = todo_counts[source]
    ids = tokens[_ranges((np.cumsum(todo_counts) - todo_counts)[source], counts)]
    return ids, np.add.reduceat(counts, np.searchsorted(piece_starts, starts))


def _ranges(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """The indexes starts[0] .. starts[0] + lens[0] - 1, then the same for starts[1], and so on."""
    ends = np.cumsum(lens)
    return np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(starts - (ends - lens), lens)


def _leftmost_non_overlapping(pos: np.ndarray) -> np.ndarray:
    """In runs of consecutive positions (the pair x,x in "x x x x"), keep every other one from the left."""
    index = np.arange(len(pos), dtype=np.int32)
    run_start = np.empty(len(pos), dtype=bool)
    run_start[0] = True
    np.not_equal(pos[1:], pos[:-1] + 1, out=run_start[1:])
    first_of_run = np.maximum.accumulate(np.where(run_start, index, np.int32(0)))
    return pos[((index - first_of_run) & 1) == 0]
