"""An exact radius-search index over PDQ hashes: multi-index hashing on 16-bit chunks.

Exact means it returns every hash within the radius (0-63), never an
approximation; a property test checks it against a brute-force scan.
Additions go to a short side list searched by brute force; when that is
full it is indexed on its own (``recent``, a second multi-index of every
addition since the last rebuild), which is merged into the main one when it
grows past a sixteenth of it. Removals mark hashes dead. Both are visible to
the next query without a rebuild.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from childsafe.index import _kernels as kernels

__all__ = ["PdqIndex", "PdqHit", "hex_to_words", "words_to_hex"]

#: Indexes of up to this many hashes carry fingerprints (see _kernels.py):
#: 256 bytes a hash more, for searches several times faster. Larger ones use
#: longer chunks instead, which keeps 10 million hashes near 1 GB.
FINGERPRINT_LIMIT = 2_000_000

#: Indexes of up to this many hashes (a small bank, a bank's recent
#: additions) use 8-bit chunks: their buckets hold size/256 hashes, which the
#: fingerprints check in order, and their tables take 33 KB, not 4 MB.
TINY_LIMIT = 8_192

#: Additions searched by brute force before they are indexed (``recent``).
#: A keypoint query looks up 500 descriptors: against 18,000 unindexed ones
#: that cost 15 ms; against this many, well under one.
SIDE_LIST_LIMIT = 2_048
#: A crowded bucket (``search_many_ids``) holds at least this many hashes.
CROWDED_FLOOR = 32

_ARRAYS = ("hashes", "ids", "starts", "bits", "order", "offsets", "bases", "fingerprints")


def _layout(size: int, layout: str, tiny_limit: int = 0) -> tuple[list[int], bool]:
    """Chunk lengths for an index of ``size`` hashes, and whether it has fingerprints.

    ``tiny``: 32 chunks of 8 bits, fingerprinted: bucket tables of 33 KB
    instead of the 4 MB that 16-bit chunks take whatever the size.
    ``small``: 16 chunks of 16 bits (buckets of size/65,536 hashes), fingerprinted.
    ``large``: 12 chunks of 21-22 bits, so that buckets stay small without them.
    ``auto``: tiny up to ``tiny_limit`` hashes, small up to ``FINGERPRINT_LIMIT``,
    large beyond.
    """
    if layout == "tiny" or (layout == "auto" and size <= tiny_limit):
        return [8] * 32, True
    if layout == "small" or (layout == "auto" and size <= FINGERPRINT_LIMIT):
        return [16] * 16, True
    return [22] * 4 + [21] * 8, False


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


def _multi_index(hashes: np.ndarray, layout: str = "auto", tiny_limit: int = 0) -> dict[str, np.ndarray]:
    """The chunk tables (and fingerprints) of ``hashes``."""
    lengths, fingerprinted = _layout(len(hashes), layout, tiny_limit)
    bits = np.array(lengths, np.int64)
    starts = np.concatenate([[0], np.cumsum(bits)[:-1]]).astype(np.int64)
    bases = np.concatenate([[0], np.cumsum((1 << bits) + 1)[:-1]]).astype(np.int64)
    order = np.empty((len(bits), len(hashes)), np.int32)
    offsets = np.zeros(int(((1 << bits) + 1).sum()), np.int32)
    fingerprints = np.empty((len(bits), len(hashes) if fingerprinted else 0, 2), np.uint64)
    for c, (start, length, base) in enumerate(zip(starts.tolist(), lengths, bases.tolist(), strict=True)):
        values = kernels.chunk_values(hashes, start, length)
        run_ends = offsets[base + 1 : base + 1 + (1 << length)]
        np.cumsum(np.bincount(values, minlength=1 << length), out=run_ends)
        kernels.counting_sort(values, offsets[base : base + (1 << length)], order[c])
        if fingerprinted:
            first, second = kernels.fingerprint_words(start)
            fingerprints[c, :, 0] = hashes[order[c], first]
            fingerprints[c, :, 1] = hashes[order[c], second]
    return {
        "starts": starts,
        "bits": bits,
        "order": order,
        "offsets": offsets,
        "bases": bases,
        "fingerprints": fingerprints,
    }


def _empty_tables() -> dict[str, np.ndarray]:
    return _multi_index(np.empty((0, 4), np.uint64), "tiny")  # nothing to search: the smallest tables


@dataclass
class PdqIndex:
    """PDQ hashes with the entry id each belongs to. An entry may have several."""

    hashes: np.ndarray = field(default_factory=lambda: np.empty((0, 4), np.uint64))
    ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    alive: np.ndarray = field(default_factory=lambda: np.empty(0, np.bool_))
    tables: dict[str, np.ndarray] = field(default_factory=_empty_tables)
    extra_hashes: np.ndarray = field(default_factory=lambda: np.empty((0, 4), np.uint64))
    extra_ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    extra_alive: np.ndarray = field(default_factory=lambda: np.empty(0, np.bool_))
    #: The additions since the last rebuild, indexed on their own once the side list was full.
    recent: PdqIndex | None = None
    side_list_limit: int = SIDE_LIST_LIMIT
    #: Rebuilds of up to this many hashes use the tiny layout (0: never; see ``_layout``).
    tiny_limit: int = TINY_LIMIT
    _arrays: tuple[np.ndarray, ...] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def build(cls, hashes: np.ndarray, ids: np.ndarray, layout: str = "auto", tiny_limit: int = TINY_LIMIT) -> PdqIndex:
        """An index of ``hashes`` ((n, 4) uint64) belonging to entries ``ids``
        (``layout``: see ``_layout``; tests choose one, everything else ``auto``;
        ``tiny_limit`` 0 for indexes probed one bucket a chunk, keypoints')."""
        hashes = np.ascontiguousarray(hashes, dtype=np.uint64).reshape(-1, 4)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        tables = _multi_index(hashes, layout, tiny_limit)
        return cls(hashes, ids, np.ones(len(ids), np.bool_), tables, tiny_limit=tiny_limit)

    def __len__(self) -> int:
        return int(self.alive.sum() + self.extra_alive.sum()) + (len(self.recent) if self.recent is not None else 0)

    def nbytes(self) -> int:
        """Memory its arrays hold: hashes, ids, the multi-index tables and the side list."""
        arrays = [self.hashes, self.ids, self.alive, self.extra_hashes, self.extra_ids, *self.tables.values()]
        return sum(array.nbytes for array in arrays) + (self.recent.nbytes() if self.recent is not None else 0)

    def _merge_threshold(self) -> int:
        return max(50_000, int(self.hashes.shape[0]) // 16)

    def add(self, hashes: np.ndarray, ids: np.ndarray) -> None:
        """Add hashes; searchable at once (see the module's docstring for where they go)."""
        self.extra_hashes = np.concatenate([self.extra_hashes, hashes.reshape(-1, 4).astype(np.uint64)])
        self.extra_ids = np.concatenate([self.extra_ids, np.asarray(ids, np.int64)])
        self.extra_alive = np.concatenate([self.extra_alive, np.ones(len(ids), np.bool_)])
        if len(self.extra_ids) <= self.side_list_limit:
            return
        # Rebuilding ``recent`` costs its size each time the side list fills;
        # it stays under a sixteenth of the whole, so the whole is rebuilt
        # only after that many additions.
        self.recent = PdqIndex.build(*self._live(main=False), tiny_limit=self.tiny_limit)
        self.extra_hashes, self.extra_ids, self.extra_alive = (
            self.extra_hashes[:0], self.extra_ids[:0], self.extra_alive[:0]
        )  # fmt: skip
        if len(self.recent) > self._merge_threshold():
            self.compact()

    def remove(self, entry_ids: list[int]) -> None:
        """Mark every hash of these entries dead."""
        wanted = np.asarray(entry_ids, np.int64)
        if self.alive.base is not None or not self.alive.flags.writeable:
            self.alive = self.alive.copy()  # loaded read-only from disk
        self.alive[np.isin(self.ids, wanted)] = False
        self.extra_alive[np.isin(self.extra_ids, wanted)] = False
        if self.recent is not None:
            self.recent.remove(entry_ids)

    def compact(self) -> None:
        """Rebuild the multi-index from every live hash (drops dead ones, merges the additions)."""
        hashes, ids = self._live(main=True)
        self.tables = _multi_index(hashes, "auto", self.tiny_limit)
        self.hashes, self.ids, self.alive = hashes, ids, np.ones(len(ids), np.bool_)
        self.extra_hashes, self.extra_ids, self.extra_alive = (
            self.extra_hashes[:0], self.extra_ids[:0], self.extra_alive[:0]
        )  # fmt: skip
        self.recent = None
        self._arrays = None  # the kernels' view of the old arrays

    def _live(self, main: bool) -> tuple[np.ndarray, np.ndarray]:
        """Every live hash and its id: the additions (side list and ``recent``),
        and with ``main`` the multi-index's too."""
        parts = [(self.extra_hashes[self.extra_alive], self.extra_ids[self.extra_alive])]
        if main:
            parts.append((self.hashes[self.alive], self.ids[self.alive]))
        if self.recent is not None:
            parts.append(self.recent._live(main=True))
        return np.concatenate([h for h, _ in parts]), np.concatenate([i for _, i in parts])

    def search(self, query: np.ndarray, radius: int) -> list[PdqHit]:
        """Every live hash within ``radius`` (0-63) of ``query`` (4 uint64 words)."""
        query = np.ascontiguousarray(query, dtype=np.uint64)
        (positions, distances) = self._grow(
            lambda *out: kernels.search(query, radius, -1, -1, *self._kernel_arrays(), *out), 2
        )
        hits = [
            PdqHit(int(self.ids[p]), words_to_hex(self.hashes[p]), d)
            for p, d in zip(positions.tolist(), distances.tolist(), strict=True)
        ]
        if len(self.extra_ids):
            hits += self._search_extra(query, radius)
        if self.recent is not None:
            hits += self.recent.search(query, radius)
        return hits

    def search_many(self, queries: np.ndarray, radius: int) -> list[list[PdqHit]]:
        """``search`` for each row of ``queries`` ((n, 4) uint64), in one compiled
        loop: the batch path, without Python work per query."""
        queries = np.ascontiguousarray(queries, dtype=np.uint64).reshape(-1, 4)
        results: list[list[PdqHit]] = [[] for _ in range(len(queries))]
        rows, positions, distances = self._search_positions(queries, radius)
        hex_values = self.hashes[positions].astype(">u8").tobytes().hex()
        for k, (row, position, distance) in enumerate(
            zip(rows.tolist(), positions.tolist(), distances.tolist(), strict=True)
        ):
            results[row].append(PdqHit(int(self.ids[position]), hex_values[64 * k : 64 * k + 64], distance))
        if len(self.extra_ids):
            for row in range(len(queries)):
                results[row] += self._search_extra(queries[row], radius)
        if self.recent is not None:
            for row, hits in enumerate(self.recent.search_many(queries, radius)):
                results[row] += hits
        return results

    def search_many_ids(
        self, queries: np.ndarray, radius: int, probe: int = -1, crowded: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``search_many`` as three arrays (query row, id, distance) and no hit
        objects: for callers that search hundreds of values at once (keypoints).
        ``probe`` >= 0 trades completeness for speed, and with ``probe`` 0,
        ``crowded`` > 0 skips buckets that many times fuller than the average
        one (at least ``CROWDED_FLOOR``; ``_kernels.search``)."""
        queries = np.ascontiguousarray(queries, dtype=np.uint64).reshape(-1, 4)
        most = -1
        if crowded > 0:
            average = len(self.ids) / 2 ** int(self.tables["bits"].min())
            most = max(CROWDED_FLOOR, int(crowded * average))
        rows, positions, distances = self._search_positions(queries, radius, probe, most)
        found = [(rows, self.ids[positions], distances)]
        if len(self.extra_ids):
            for row in range(len(queries)):
                extra, near = self._extra_positions(queries[row], radius)
                found.append((np.full(len(extra), row, np.int64), self.extra_ids[extra], near))
        if self.recent is not None:
            found.append(self.recent.search_many_ids(queries, radius, probe, crowded))
        return tuple(np.concatenate([part[k] for part in found]) for k in range(3))  # type: ignore[return-value]

    def _search_positions(
        self, queries: np.ndarray, radius: int, probe: int = -1, crowded: int = -1
    ) -> list[np.ndarray]:
        """Query rows, positions and distances of every multi-index hit (not the side list)."""
        return self._grow(
            lambda *out: kernels.search_many(queries, radius, probe, crowded, *self._kernel_arrays(), *out),
            3,
            4 * len(queries),
        )

    def _kernel_arrays(self) -> tuple[np.ndarray, ...]:
        # Built once per state of the index: this is on every query's path.
        if self._arrays is not None and self._arrays[1] is self.alive:
            return self._arrays
        tables = self.tables
        masks, upto = kernels.masks_within(int(tables["bits"].max()), 63 // len(tables["bits"]))
        self._arrays = (
            self.hashes, self.alive, tables["starts"], tables["bits"], tables["order"], tables["offsets"],
            tables["bases"], tables["fingerprints"], masks, upto,
        )  # fmt: skip
        return self._arrays

    @staticmethod
    def _grow(run: Callable[..., int], outputs: int, capacity: int = 64) -> list[np.ndarray]:
        """Call a kernel with ``outputs`` int64 output arrays, larger until they suffice."""
        capacity = max(capacity, 64)
        while True:
            out = [np.empty(capacity, np.int64) for _ in range(outputs)]
            found = run(*out)
            if found >= 0:
                return [array[:found] for array in out]
            capacity *= 8

    def _extra_positions(self, query: np.ndarray, radius: int) -> list[np.ndarray]:
        """Positions and distances of the side list's hits (brute force: it is short)."""
        hashes, alive = self.extra_hashes, self.extra_alive
        return self._grow(lambda *out: kernels.scan_brute(query, radius, hashes, alive, *out), 2)

    def _search_extra(self, query: np.ndarray, radius: int) -> list[PdqHit]:
        positions, distances = self._extra_positions(query, radius)
        return [
            PdqHit(int(self.extra_ids[p]), words_to_hex(self.extra_hashes[p]), d)
            for p, d in zip(positions.tolist(), distances.tolist(), strict=True)
        ]

    def save(self, folder: Path) -> None:
        """Write the index (compacted) to ``folder`` as .npy files."""
        if len(self.extra_ids) or self.recent is not None or not self.alive.all():
            self.compact()
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"hashes": self.hashes, "ids": self.ids, **self.tables}
        for name in _ARRAYS:
            np.save(folder / f"pdq_{name}.npy", arrays[name])

    @classmethod
    def load(cls, folder: Path) -> PdqIndex:
        """Open an index written by ``save``; the arrays are memory-mapped, so
        loading takes milliseconds whatever the size."""
        # Plain ndarray views of the maps (no copy): indexing an np.memmap costs
        # tens of microseconds more a time, on every query's path.
        arrays = {name: np.asarray(np.load(folder / f"pdq_{name}.npy", mmap_mode="r")) for name in _ARRAYS}
        hashes, ids = arrays.pop("hashes"), arrays.pop("ids")
        return cls(hashes=hashes, ids=ids, alive=np.ones(len(ids), np.bool_), tables=arrays)
