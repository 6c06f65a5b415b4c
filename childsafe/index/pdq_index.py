"""An exact radius-search index over PDQ hashes: multi-index hashing on 16-bit chunks.

Exact means it returns every hash within the radius (0-63), never an
approximation; a property test checks it against a brute-force scan.
Additions go to a small side list searched by brute force and are merged
into the multi-index when it grows; removals mark hashes dead. Both are
visible to the next query without a rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from childsafe.index import _kernels as kernels

__all__ = ["PdqIndex", "PdqHit", "hex_to_words", "words_to_hex"]

_MASKS, _MASKS_UPTO = kernels.chunk_masks()


def hex_to_words(values: list[str]) -> np.ndarray:
    """PDQ hashes in hex as an (n, 4) uint64 array (big-endian words)."""
    if not values:
        return np.empty((0, 4), np.uint64)
    raw = bytes.fromhex("".join(values))
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(-1, 4)


def words_to_hex(words: np.ndarray) -> str:
    """One hash's 4 words as 64 hex characters."""
    return words.astype(">u8").tobytes().hex()


@dataclass(frozen=True)
class PdqHit:
    """One indexed hash within the radius of a query."""

    entry_id: int
    value: str
    distance: int


def _build_chunks(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = hashes.shape[0]
    order = np.empty((kernels.CHUNKS, n), np.int32)
    offsets = np.zeros((kernels.CHUNKS, (1 << 16) + 1), np.int64)
    for c in range(kernels.CHUNKS):
        shift = np.uint64(48 - 16 * (c % 4))
        values = ((hashes[:, c // 4] >> shift) & np.uint64(0xFFFF)).astype(np.uint16)
        order[c] = np.argsort(values, kind="stable")  # a radix sort for uint16
        np.cumsum(np.bincount(values, minlength=1 << 16), out=offsets[c, 1:])
    return order, offsets


@dataclass
class PdqIndex:
    """PDQ hashes with the entry id each belongs to. An entry may have several."""

    hashes: np.ndarray = field(default_factory=lambda: np.empty((0, 4), np.uint64))
    ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    alive: np.ndarray = field(default_factory=lambda: np.empty(0, np.bool_))
    order: np.ndarray = field(default_factory=lambda: np.empty((kernels.CHUNKS, 0), np.int32))
    offsets: np.ndarray = field(default_factory=lambda: np.zeros((kernels.CHUNKS, (1 << 16) + 1), np.int64))
    extra_hashes: np.ndarray = field(default_factory=lambda: np.empty((0, 4), np.uint64))
    extra_ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    extra_alive: np.ndarray = field(default_factory=lambda: np.empty(0, np.bool_))

    @classmethod
    def build(cls, hashes: np.ndarray, ids: np.ndarray) -> PdqIndex:
        """An index of ``hashes`` ((n, 4) uint64) belonging to entries ``ids``."""
        hashes = np.ascontiguousarray(hashes, dtype=np.uint64).reshape(-1, 4)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        order, offsets = _build_chunks(hashes)
        return cls(hashes, ids, np.ones(len(ids), np.bool_), order, offsets)

    def __len__(self) -> int:
        return int(self.alive.sum() + self.extra_alive.sum())

    def _merge_threshold(self) -> int:
        return max(50_000, int(self.hashes.shape[0]) // 16)

    def add(self, hashes: np.ndarray, ids: np.ndarray) -> None:
        """Add hashes; searchable at once. Merged into the multi-index when the side list grows."""
        self.extra_hashes = np.concatenate([self.extra_hashes, hashes.reshape(-1, 4).astype(np.uint64)])
        self.extra_ids = np.concatenate([self.extra_ids, np.asarray(ids, np.int64)])
        self.extra_alive = np.concatenate([self.extra_alive, np.ones(len(ids), np.bool_)])
        if len(self.extra_ids) > self._merge_threshold():
            self.compact()

    def remove(self, entry_ids: list[int]) -> None:
        """Mark every hash of these entries dead."""
        wanted = np.asarray(entry_ids, np.int64)
        if self.alive.base is not None or not self.alive.flags.writeable:
            self.alive = self.alive.copy()  # loaded read-only from disk
        self.alive[np.isin(self.ids, wanted)] = False
        self.extra_alive[np.isin(self.extra_ids, wanted)] = False

    def compact(self) -> None:
        """Rebuild the multi-index from every live hash (drops dead ones, merges the side list)."""
        keep = self.alive
        hashes = np.concatenate([self.hashes[keep], self.extra_hashes[self.extra_alive]])
        ids = np.concatenate([self.ids[keep], self.extra_ids[self.extra_alive]])
        rebuilt = PdqIndex.build(hashes, ids)
        self.__dict__.update(rebuilt.__dict__)

    def search(self, query: np.ndarray, radius: int) -> list[PdqHit]:
        """Every live hash within ``radius`` (0-63) of ``query`` (4 uint64 words)."""
        query = np.ascontiguousarray(query, dtype=np.uint64)
        hits: list[PdqHit] = []
        for positions, distances, hashes, ids in (
            self._search_main(query, radius),
            self._search_extra(query, radius),
        ):
            for position, distance in zip(positions.tolist(), distances.tolist(), strict=True):
                hits.append(PdqHit(int(ids[position]), words_to_hex(hashes[position]), distance))
        return hits

    def search_many(self, queries: np.ndarray, radius: int) -> list[list[PdqHit]]:
        """``search`` for each row of ``queries`` ((n, 4) uint64), in one compiled
        loop: the batch path, without Python work per query."""
        queries = np.ascontiguousarray(queries, dtype=np.uint64).reshape(-1, 4)
        results: list[list[PdqHit]] = [[] for _ in range(len(queries))]
        capacity = max(1024, 4 * len(queries))
        while True:
            rows = np.empty(capacity, np.int64)
            positions = np.empty(capacity, np.int64)
            distances = np.empty(capacity, np.int64)
            found = kernels.search_many(
                queries,
                radius,
                self.hashes,
                self.alive,
                self.order,
                self.offsets,
                _MASKS,
                _MASKS_UPTO,
                rows,
                positions,
                distances,
            )
            if found >= 0:
                break
            capacity *= 8
        hex_values = self.hashes[positions[:found]].astype(">u8").tobytes().hex()
        for k, (row, position, distance) in enumerate(
            zip(rows[:found].tolist(), positions[:found].tolist(), distances[:found].tolist(), strict=True)
        ):
            results[row].append(PdqHit(int(self.ids[position]), hex_values[64 * k : 64 * k + 64], distance))
        if len(self.extra_ids):
            for row in range(len(queries)):
                extra_positions, extra_distances, hashes, ids = self._search_extra(queries[row], radius)
                for position, distance in zip(extra_positions.tolist(), extra_distances.tolist(), strict=True):
                    results[row].append(PdqHit(int(ids[position]), words_to_hex(hashes[position]), distance))
        return results

    def _search_main(self, query: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        capacity = 64
        while True:
            positions = np.empty(capacity, np.int64)
            distances = np.empty(capacity, np.int64)
            found = kernels.search_one(
                query,
                radius,
                self.hashes,
                self.alive,
                self.order,
                self.offsets,
                _MASKS,
                _MASKS_UPTO,
                positions,
                distances,
            )
            if found >= 0:
                return positions[:found], distances[:found], self.hashes, self.ids
            capacity *= 8

    def _search_extra(self, query: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        capacity = 64
        while True:
            positions = np.empty(capacity, np.int64)
            distances = np.empty(capacity, np.int64)
            found = kernels.scan_brute(query, radius, self.extra_hashes, self.extra_alive, positions, distances)
            if found >= 0:
                return positions[:found], distances[:found], self.extra_hashes, self.extra_ids
            capacity *= 8

    def save(self, folder: Path) -> None:
        """Write the index (compacted) to ``folder`` as .npy files."""
        if len(self.extra_ids) or not self.alive.all():
            self.compact()
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("hashes", "ids", "order", "offsets"):
            np.save(folder / f"pdq_{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: Path) -> PdqIndex:
        """Open an index written by ``save``; the arrays are memory-mapped, so
        loading takes milliseconds whatever the size."""
        arrays = {
            name: np.load(folder / f"pdq_{name}.npy", mmap_mode="r") for name in ("hashes", "ids", "order", "offsets")
        }
        return cls(
            hashes=arrays["hashes"],
            ids=arrays["ids"],
            alive=np.ones(len(arrays["ids"]), np.bool_),
            order=arrays["order"],
            offsets=arrays["offsets"],
        )
