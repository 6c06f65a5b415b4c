"""The compiled inner loops of the PDQ index (numba).

Written by hand because this is the hot path: a Python loop over candidates
would be a hundred times slower. Everything here works on plain numpy arrays.

PDQ hashes are held as 4 uint64 words (word 0 = the first 16 hex digits).
Multi-index hashing splits a hash into 16 chunks of 16 bits; by the
pigeonhole principle, a hash within Hamming distance r of the query agrees
with it to within r // 16 bits on at least one chunk. So for each chunk we
visit only the buckets within r // 16 bits of the query's chunk, and check the
full distance of the hashes there. A hash is counted once: at the first chunk
where it is within r // 16 bits.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["CHUNKS", "chunk_masks", "search_one", "scan_brute", "chunk_value"]

CHUNKS = 16


def chunk_masks() -> tuple[np.ndarray, np.ndarray]:
    """All 16-bit masks ordered by popcount, and how many have popcount <= t (t = 0..16)."""
    masks = np.array(sorted(range(1 << 16), key=lambda m: (bin(m).count("1"), m)), dtype=np.uint32)
    popcounts = np.array([bin(int(m)).count("1") for m in masks])
    upto = np.array([int((popcounts <= t).sum()) for t in range(17)], dtype=np.int64)
    return masks, upto


@njit(cache=True, inline="always")
def _popcount64(x: np.uint64) -> np.int64:
    # SWAR popcount; numba has no portable intrinsic.
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=True, inline="always")
def chunk_value(words: np.ndarray, chunk: int) -> np.int64:
    """The 16-bit chunk number ``chunk`` (0..15) of a hash given as 4 words."""
    shift = np.uint64(48 - 16 * (chunk % 4))
    return np.int64((words[chunk // 4] >> shift) & np.uint64(0xFFFF))


@njit(cache=True, inline="always")
def _distance(a: np.ndarray, b: np.ndarray) -> np.int64:
    return _popcount64(a[0] ^ b[0]) + _popcount64(a[1] ^ b[1]) + _popcount64(a[2] ^ b[2]) + _popcount64(a[3] ^ b[3])


@njit(cache=True)
def search_one(
    query: np.ndarray,
    radius: int,
    hashes: np.ndarray,
    alive: np.ndarray,
    order: np.ndarray,
    offsets: np.ndarray,
    masks: np.ndarray,
    masks_upto: np.ndarray,
    out_positions: np.ndarray,
    out_distances: np.ndarray,
) -> int:
    """Positions (into ``hashes``) and distances of every live hash within
    ``radius`` of ``query``. Returns how many were written, or -1 if the
    output arrays were too small (the caller grows them and asks again)."""
    per_chunk = radius // CHUNKS
    n_masks = masks_upto[per_chunk]
    found = 0
    query_chunks = np.empty(CHUNKS, np.int64)
    for c in range(CHUNKS):
        query_chunks[c] = chunk_value(query, c)
    for c in range(CHUNKS):
        qc = query_chunks[c]
        for m in range(n_masks):
            bucket = qc ^ np.int64(masks[m])
            for k in range(offsets[c, bucket], offsets[c, bucket + 1]):
                position = order[c, k]
                if not alive[position]:
                    continue
                candidate = hashes[position]
                # Seen already at an earlier chunk?
                earlier = False
                for e in range(c):
                    if _popcount64(np.uint64(chunk_value(candidate, e) ^ query_chunks[e])) <= per_chunk:
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


@njit(cache=True)
def search_many(
    queries: np.ndarray,
    radius: int,
    hashes: np.ndarray,
    alive: np.ndarray,
    order: np.ndarray,
    offsets: np.ndarray,
    masks: np.ndarray,
    masks_upto: np.ndarray,
    out_queries: np.ndarray,
    out_positions: np.ndarray,
    out_distances: np.ndarray,
) -> int:
    """``search_one`` for each row of ``queries``, results appended with the
    query's row number. Returns the count, or -1 if the output was too small."""
    total = 0
    for q in range(queries.shape[0]):
        found = search_one(
            queries[q],
            radius,
            hashes,
            alive,
            order,
            offsets,
            masks,
            masks_upto,
            out_positions[total:],
            out_distances[total:],
        )
        if found < 0:
            return -1
        out_queries[total : total + found] = q
        total += found
    return total
