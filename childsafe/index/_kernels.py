"""The compiled inner loops of the PDQ index (numba).

Written by hand because this is the hot path: a Python loop over candidates
would be a hundred times slower. Everything here works on plain numpy arrays.

A PDQ hash is held as 4 uint64 words (word 0 = the first 16 hex digits; bit
0 is the most significant bit of word 0). Multi-index hashing splits the 256
bits into m chunks; by the pigeonhole principle a hash within Hamming
distance r of the query differs from it by at most r // m bits on at least
one chunk. So for each chunk we visit only the buckets within that many bits
of the query's chunk, and check the hashes found there. A hash is counted
once: at the first chunk where it is that close.

Checking a candidate means reading its hash from a random place in memory,
and that cache miss is the cost of a search. So each chunk's bucket list can
carry a *fingerprint* of every hash in it: the two 64-bit words that do not
hold the chunk. The distance on those 128 bits plus the chunk's own distance
is a lower bound on the true distance; an unrelated hash differs in about 64
of those bits and is dropped without touching the hash itself. The
fingerprints are read in order, so they cost little; they take 16 bytes per
hash per chunk, which is why only smaller indexes have them (see pdq_index.py).
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
from numba import njit

__all__ = ["masks_within", "chunk_values", "counting_sort", "search", "search_many", "scan_brute", "fingerprint_words"]


@lru_cache(maxsize=16)
def masks_within(bits: int, most: int) -> tuple[np.ndarray, np.ndarray]:
    """Every ``bits``-bit mask with at most ``most`` bits set, ordered by the
    number set, and for k = 0..most how many have at most k set."""
    masks: list[int] = []
    upto: list[int] = []
    for count in range(most + 1):
        for positions in itertools.combinations(range(bits), count):
            masks.append(sum(1 << p for p in positions))
        upto.append(len(masks))
    return np.array(masks, dtype=np.int64), np.array(upto, dtype=np.int64)


def chunk_values(hashes: np.ndarray, start: int, bits: int) -> np.ndarray:
    """Chunk [start, start + bits) of every hash ((n, 4) uint64), as int64 (numpy, for building)."""
    word, offset = start >> 6, start & 63
    if offset + bits <= 64:
        values = (hashes[:, word] >> np.uint64(64 - offset - bits)) & np.uint64((1 << bits) - 1)
    else:
        high_bits = 64 - offset
        low_bits = bits - high_bits
        high = hashes[:, word] & np.uint64((1 << high_bits) - 1)
        values = (high << np.uint64(low_bits)) | (hashes[:, word + 1] >> np.uint64(64 - low_bits))
    return values.astype(np.int64)


def fingerprint_words(start: int) -> tuple[int, int]:
    """The two words that make a chunk's fingerprint: the two after the word it starts in."""
    word = start >> 6
    return (word + 1) % 4, (word + 2) % 4


@njit(cache=True)
def counting_sort(values: np.ndarray, starts: np.ndarray, out: np.ndarray) -> None:
    """Positions ``0..n-1`` into ``out`` ordered by ``values`` (stable), given
    where each value's run starts (an exclusive prefix sum of the counts): a
    counting sort, O(n), several times faster than a general sort."""
    slots = starts.astype(np.int64)
    for position in range(values.shape[0]):
        value = values[position]
        out[slots[value]] = position
        slots[value] += 1


@njit(cache=True, inline="always")
def _popcount(x: np.uint64) -> np.int64:
    # SWAR popcount; LLVM turns this into the popcnt instruction.
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=True, inline="always")
def _chunk(words: np.ndarray, start: np.int64, bits: np.int64) -> np.int64:
    word = start >> 6
    offset = start & 63
    if offset + bits <= 64:
        return np.int64((words[word] >> np.uint64(64 - offset - bits)) & np.uint64((1 << bits) - 1))
    high_bits = 64 - offset
    low_bits = bits - high_bits
    high = words[word] & np.uint64((1 << high_bits) - 1)
    return np.int64((high << np.uint64(low_bits)) | (words[word + 1] >> np.uint64(64 - low_bits)))


@njit(cache=True, inline="always")
def _distance(a: np.ndarray, b: np.ndarray) -> np.int64:
    return _popcount(a[0] ^ b[0]) + _popcount(a[1] ^ b[1]) + _popcount(a[2] ^ b[2]) + _popcount(a[3] ^ b[3])


@njit(cache=True)
def search(
    query: np.ndarray,
    radius: int,
    probe: int,
    crowded: int,
    hashes: np.ndarray,
    alive: np.ndarray,
    starts: np.ndarray,
    bits: np.ndarray,
    order: np.ndarray,
    offsets: np.ndarray,
    bases: np.ndarray,
    fingerprints: np.ndarray,
    masks: np.ndarray,
    masks_upto: np.ndarray,
    out_positions: np.ndarray,
    out_distances: np.ndarray,
) -> int:
    """Positions (into ``hashes``) and distances of every live hash within
    ``radius`` of ``query``. Returns how many were written, or -1 if the
    output arrays were too small (the caller grows them and asks again).

    ``order[c]`` lists positions by the value of chunk c; the positions of
    bucket v of chunk c are ``order[c, offsets[bases[c] + v] : offsets[bases[c] + v + 1]]``;
    ``fingerprints[c, k]`` (if not empty) holds the fingerprint words of ``order[c, k]``.

    ``probe`` < 0 visits every bucket the pigeonhole principle needs, so that
    nothing within ``radius`` is missed. ``probe`` >= 0 visits only buckets
    within that many bits of each chunk of the query: much faster, and it finds
    most hashes within ``radius`` but not all (keypoints, where a few missed
    pairs do not matter).

    ``crowded`` >= 0, with ``probe`` 0: a bucket holding more than that many
    hashes is not visited. Its chunk value is shared by many unrelated
    hashes (keypoint descriptors of smooth or noisy patches are much alike),
    so it tells them apart least and costs most; a hash is still found
    through any other chunk it shares with the query.
    """
    chunks = starts.shape[0]
    per_chunk = radius // chunks if probe < 0 else min(probe, radius // chunks)
    n_masks = masks_upto[per_chunk]
    use_fingerprints = fingerprints.shape[1] > 0
    query_chunks = np.empty(chunks, np.int64)
    for c in range(chunks):
        query_chunks[c] = _chunk(query, starts[c], bits[c])
    # First find every bucket to visit, then touch the start of each, then
    # scan them: the memory reads of different buckets are independent, and
    # issuing them together lets the CPU wait for many at once.
    n_buckets = chunks * n_masks
    begin = np.zeros(n_buckets, np.int64)
    end = np.zeros(n_buckets, np.int64)
    skipped = np.zeros(chunks, np.bool_)  # chunks whose (only) bucket is too crowded to visit
    for c in range(chunks):
        limit = np.int64(1) << bits[c]
        for m in range(n_masks):
            if masks[m] < limit:
                bucket = bases[c] + (query_chunks[c] ^ masks[m])
                begin[c * n_masks + m] = offsets[bucket]
                end[c * n_masks + m] = offsets[bucket + 1]
        if crowded >= 0 and n_masks == 1 and end[c] - begin[c] > crowded:
            end[c] = begin[c]
            skipped[c] = True
    touched = np.uint64(0)
    for i in range(n_buckets):
        c = i // n_masks
        if use_fingerprints:
            for k in range(begin[i], end[i], 4):  # four fingerprints to a cache line
                touched ^= fingerprints[c, k, 0]
        else:
            for k in range(begin[i], end[i], 16):  # sixteen positions to a cache line
                touched ^= np.uint64(order[c, k])
    # Then gather the candidates (those the fingerprints do not rule out),
    # touch each one's hash (again, many independent reads at once), and only
    # then check them.
    total = 0
    for i in range(n_buckets):
        total += end[i] - begin[i]
    candidates = np.empty(total, np.int64)
    candidate_chunks = np.empty(total, np.int64)
    n_candidates = 0
    for i in range(n_buckets):
        c = i // n_masks
        chunk_distance = _popcount(np.uint64(masks[i % n_masks]))
        first_word = (starts[c] >> 6) + 1
        q0 = query[first_word % 4]
        q1 = query[(first_word + 1) % 4]
        for k in range(begin[i], end[i]):
            if use_fingerprints:
                bound = chunk_distance + _popcount(fingerprints[c, k, 0] ^ q0) + _popcount(fingerprints[c, k, 1] ^ q1)
                if bound > radius:
                    continue
            candidates[n_candidates] = order[c, k]
            candidate_chunks[n_candidates] = c
            n_candidates += 1
    for j in range(n_candidates):
        touched ^= hashes[candidates[j], 0]
    # Store what was touched where the caller never looks (past the results
    # it will receive), so the compiler keeps the reads. Never into an empty
    # output: search_many passes the rest of its array, and an empty rest's
    # [-1] would be the previous query's last distance (nothing checks bounds).
    if out_distances.shape[0] > 0:
        out_distances[out_distances.shape[0] - 1] = np.int64(touched & np.uint64(1))
    found = 0
    for j in range(n_candidates):
        position = candidates[j]
        c = candidate_chunks[j]
        if not alive[position]:
            continue
        candidate = hashes[position]
        earlier = False  # counted at an earlier chunk already?
        for e in range(c):
            if skipped[e]:
                continue  # not counted there: that bucket was not visited
            if _popcount(np.uint64(_chunk(candidate, starts[e], bits[e]) ^ query_chunks[e])) <= per_chunk:
                earlier = True
                break
        if earlier:
            continue
        distance = _distance(candidate, query)
        if distance <= radius:
            if found >= out_positions.shape[0]:
                return -1
            out_positions[found] = position
            out_distances[found] = distance
            found += 1
    return found


@njit(cache=True)
def search_many(
    queries: np.ndarray,
    radius: int,
    probe: int,
    crowded: int,
    hashes: np.ndarray,
    alive: np.ndarray,
    starts: np.ndarray,
    bits: np.ndarray,
    order: np.ndarray,
    offsets: np.ndarray,
    bases: np.ndarray,
    fingerprints: np.ndarray,
    masks: np.ndarray,
    masks_upto: np.ndarray,
    out_queries: np.ndarray,
    out_positions: np.ndarray,
    out_distances: np.ndarray,
) -> int:
    """``search`` for each row of ``queries``, results appended with the
    query's row number. Returns the count, or -1 if the output was too small."""
    total = 0
    for q in range(queries.shape[0]):
        found = search(
            queries[q], radius, probe, crowded, hashes, alive, starts, bits, order, offsets, bases, fingerprints,
            masks, masks_upto, out_positions[total:], out_distances[total:],
        )  # fmt: skip
        if found < 0:
            return -1
        out_queries[total : total + found] = q
        total += found
    return total


@njit(cache=True)
def scan_brute(
    query: np.ndarray,
    radius: int,
    hashes: np.ndarray,
    alive: np.ndarray,
    out_positions: np.ndarray,
    out_distances: np.ndarray,
) -> int:
    """Every live hash within ``radius`` by checking each one (for the small
    set of recent additions not yet merged into the multi-index)."""
    found = 0
    for position in range(hashes.shape[0]):
        if not alive[position]:
            continue
        distance = _distance(hashes[position], query)
        if distance <= radius:
            if found >= out_positions.shape[0]:
                return -1
            out_positions[found] = position
            out_distances[found] = distance
            found += 1
    return found
