"""The compiled inner loops of term matching (numba).

Written by hand because this is the hot path: a Python loop over the words of
a 1 MB query takes seconds, these loops take milliseconds, and every step is
linear in the text (no regular expression, no backtracking, no ReDoS).

Text arrives as canonical letters (``normalise.canonical_letters``): a uint8
array of ``a``-``z`` and spaces. Words are looked up in an open-addressing
hash table of polynomial hashes: every list word, and every one-letter deletion
of each long list word. A query word is one edit from a long list word
exactly when the two share a spelling after deleting at most one letter from
each (symmetric deletion), so a query word costs one look-up, plus one for
each of its letters when it is long. Every hit is then checked letter by
letter, so a hash collision never makes a match.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["split_words", "variant_hashes", "build_table", "match_terms"]

_BASE = np.uint64(0x100000001B3)  # odd, so that every letter's weight differs
_SPACE = 32


@njit(cache=True, nogil=True)
def split_words(letters: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rules 6 and 7 of the normaliser, in one pass: words split at spaces,
    runs of single letters joined ("v e l v e t" -> "velvet"), repeated
    letters collapsed. Returns the words' letters (back to back) and each
    word's start and end in them."""
    n = len(letters)
    out = np.empty(n, np.uint8)
    starts = np.empty(n // 2 + 1, np.int64)
    ends = np.empty(n // 2 + 1, np.int64)
    words = 0
    pos = 0
    joining = False  # the last word came from single letters, and may take more
    i = 0
    while i < n:
        if letters[i] == _SPACE:
            i += 1
            continue
        single = i + 1 == n or letters[i + 1] == _SPACE
        if single and joining:
            if out[pos - 1] != letters[i]:  # join it to the last word
                out[pos] = letters[i]
                pos += 1
                ends[words - 1] = pos
            i += 1
            continue
        starts[words] = pos
        first = pos
        while i < n and letters[i] != _SPACE:
            if pos == first or out[pos - 1] != letters[i]:
                out[pos] = letters[i]
                pos += 1
            i += 1
        ends[words] = pos
        words += 1
        joining = single
    return out[:pos], starts[:words], ends[:words]


@njit(cache=True, nogil=True)
def _mix(h: np.uint64) -> np.uint64:
    """MurmurHash3's finaliser: a polynomial hash's low bits depend only on
    the letters' low bits, and the table is indexed by low bits."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


@njit(cache=True, nogil=True)
def _spelling_hashes(buf: np.ndarray, start: int, end: int, deletions: bool, out: np.ndarray) -> int:
    """The hash of buf[start:end] into out[0] and, with ``deletions``, the
    hash of the word without letter k into out[k + 1]; returns how many.

    A polynomial hash, so that each deletion's hash comes from a prefix and a
    suffix hash in constant time (the word costs O(length), not O(length^2))."""
    length = end - start
    h = np.uint64(0)
    for j in range(start, end):
        out[j - start + 1] = h  # prefix hash of the letters before j
        h = h * _BASE + np.uint64(buf[j])
    out[0] = _mix(h)
    if not deletions:
        return 1
    suffix = np.uint64(0)
    power = np.uint64(1)
    for k in range(length - 1, -1, -1):
        # word without letter k = prefix(k) * B^(length-1-k) + suffix after k
        out[k + 1] = out[k + 1] * power + suffix
        suffix = np.uint64(buf[start + k]) * power + suffix
        power = power * _BASE
    for k in range(1, length + 1):
        out[k] = _mix(out[k])
    return length + 1


@njit(cache=True, nogil=True)
def variant_hashes(
    buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, typo_min: int, typo_max: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each list word: its hash, and if ``typo_min`` <= its length <=
    ``typo_max``, the hash of each one-letter deletion. Returns (hashes, word ids)."""
    total = 0
    longest = 0
    for w in range(len(starts)):
        length = ends[w] - starts[w]
        longest = max(longest, length)
        total += 1 + (length if typo_min <= length <= typo_max else 0)
    hashes = np.empty(total, np.uint64)
    ids = np.empty(total, np.int64)
    scratch = np.empty(longest + 1, np.uint64)
    n = 0
    for w in range(len(starts)):
        length = ends[w] - starts[w]
        count = _spelling_hashes(buf, starts[w], ends[w], typo_min <= length <= typo_max, scratch)
        hashes[n : n + count] = scratch[:count]
        ids[n : n + count] = w
        n += count
    return hashes, ids


@njit(cache=True, nogil=True)
def build_table(hashes: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An open-addressing table (linear probing, at most half full) of
    (hash, word id) pairs, an empty slot having id -1; and a bit filter of
    the hashes, small enough to stay in the CPU cache, that turns away most
    words before they cost a trip to the table in main memory."""
    size = 16
    while size < 2 * len(hashes):
        size *= 2
    keys = np.zeros(size, np.uint64)
    values = np.full(size, -1, np.int64)
    mask = size - 1
    for i in range(len(hashes)):
        slot = np.int64(hashes[i] & np.uint64(mask))
        while values[slot] >= 0:
            if keys[slot] == hashes[i] and values[slot] == ids[i]:
                break  # the same pair twice (two deletions of one word can agree)
            slot = (slot + 1) & mask
        keys[slot] = hashes[i]
        values[slot] = ids[i]
    bits = 1 << 16
    while bits < 8 * len(hashes):
        bits *= 2
    filter_bits = np.zeros(bits // 64, np.uint64)
    for i in range(len(hashes)):
        bit = _filter_bit(hashes[i], bits)
        filter_bits[bit >> 6] |= np.uint64(1) << np.uint64(bit & 63)
    return keys, values, filter_bits


@njit(cache=True, nogil=True)
def _filter_bit(h: np.uint64, bits: int) -> np.int64:
    return np.int64((h >> np.uint64(24)) & np.uint64(bits - 1))


@njit(cache=True, nogil=True)
def _one_edit_apart(a: np.ndarray, a0: int, a1: int, b: np.ndarray, b0: int, b1: int) -> bool:
    """Optimal string alignment distance <= 1 between a[a0:a1] and b[b0:b1]."""
    la = a1 - a0
    lb = b1 - b0
    if la - lb > 1 or lb - la > 1:
        return False
    i = 0
    shortest = min(la, lb)
    while i < shortest and a[a0 + i] == b[b0 + i]:
        i += 1
    if i == la and i == lb:
        return True
    if la == lb:
        # one substitution, or a swap of neighbours
        if np.array_equal(a[a0 + i + 1 : a1], b[b0 + i + 1 : b1]):
            return True
        return (
            i + 1 < la
            and a[a0 + i] == b[b0 + i + 1]
            and a[a0 + i + 1] == b[b0 + i]
            and np.array_equal(a[a0 + i + 2 : a1], b[b0 + i + 2 : b1])
        )
    if la < lb:
        return np.array_equal(a[a0 + i : a1], b[b0 + i + 1 : b1])
    return np.array_equal(a[a0 + i + 1 : a1], b[b0 + i : b1])


@njit(cache=True, nogil=True)
def _add(cands: np.ndarray, n: int, value: int) -> tuple[np.ndarray, int]:
    if n == len(cands):
        grown = np.empty(2 * len(cands), np.int64)
        grown[:n] = cands[:n]
        cands = grown
    cands[n] = value
    return cands, n + 1


@njit(cache=True, nogil=True)
def match_terms(
    buf: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    keys: np.ndarray,
    values: np.ndarray,
    filter_bits: np.ndarray,
    vocab: np.ndarray,
    vocab_starts: np.ndarray,
    vocab_ends: np.ndarray,
    whole_list: np.ndarray,
    pair_first: np.ndarray,
    pair_second: np.ndarray,
    term_offsets: np.ndarray,
    term_words: np.ndarray,
    term_list: np.ndarray,
    typo_min: int,
    typo_max: int,
) -> int:
    """The list of the first term found in the text, or -1.

    ``whole_list[v]``: the list of a term that list word ``v`` is on its own
    (one-word terms, and every term's words run together), else -1.
    Multi-word terms are sorted by (first word, second word) in
    ``pair_first``/``pair_second``; term t's words are
    ``term_words[term_offsets[t]:term_offsets[t + 1]]``.
    """
    mask = len(keys) - 1
    words = len(starts)
    # Pass 1: each word's possible list words, each checked letter by letter.
    cand_offsets = np.empty(words + 1, np.int64)
    cands = np.empty(max(16, words), np.int64)
    n = 0
    longest = 0
    for w in range(words):
        longest = max(longest, ends[w] - starts[w])
    scratch = np.empty(longest + 1, np.uint64)
    for w in range(words):
        cand_offsets[w] = n
        s = starts[w]
        e = ends[w]
        length = e - s
        probes = _spelling_hashes(buf, s, e, typo_min <= length <= typo_max, scratch)
        for p in range(probes):
            h = scratch[p]
            bit = _filter_bit(h, len(filter_bits) * 64)
            if not filter_bits[bit >> 6] & (np.uint64(1) << np.uint64(bit & 63)):
                continue
            slot = np.int64(h & np.uint64(mask))
            while values[slot] >= 0:
                if keys[slot] == h:
                    v = values[slot]
                    v0 = vocab_starts[v]
                    v1 = vocab_ends[v]
                    seen = False
                    for c in range(cand_offsets[w], n):
                        if cands[c] == v:
                            seen = True
                    if not seen:
                        same = v1 - v0 == length and np.array_equal(vocab[v0:v1], buf[s:e])
                        if same or (v1 - v0 >= typo_min and _one_edit_apart(buf, s, e, vocab, v0, v1)):
                            cands, n = _add(cands, n, v)
                slot = (slot + 1) & mask
    cand_offsets[words] = n
    # Pass 2: the first word where a term starts.
    for w in range(words):
        for c in range(cand_offsets[w], cand_offsets[w + 1]):
            v = cands[c]
            if whole_list[v] >= 0:
                return int(whole_list[v])
            if w + 1 >= words:
                continue
            for c2 in range(cand_offsets[w + 1], cand_offsets[w + 2]):
                second = cands[c2]
                lo = np.searchsorted(pair_first, v, side="left")
                hi = np.searchsorted(pair_first, v, side="right")
                t0 = lo + np.searchsorted(pair_second[lo:hi], second, side="left")
                t1 = lo + np.searchsorted(pair_second[lo:hi], second, side="right")
                for t in range(t0, t1):
                    size = term_offsets[t + 1] - term_offsets[t]
                    if w + size > words:
                        continue
                    found = True
                    for k in range(2, size):
                        wanted = term_words[term_offsets[t] + k]
                        here = False
                        for c3 in range(cand_offsets[w + k], cand_offsets[w + k + 1]):
                            if cands[c3] == wanted:
                                here = True
                        if not here:
                            found = False
                            break
                    if found:
                        return int(term_list[t])
    return -1
