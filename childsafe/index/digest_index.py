"""Exact lookup of digests (md5, sha1, sha256): sorted 64-bit prefixes and a
binary search, with the full value checked. Far smaller than a dict of
strings: 10 million SHA-1s take about 360 MB instead of several GB."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DigestIndex"]


def _to_bytes(values: list[str], width: int) -> np.ndarray:
    if not values:
        return np.empty((0, width), np.uint8)
    return np.frombuffer(bytes.fromhex("".join(values)), np.uint8).reshape(-1, width)


def _prefixes(raw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(raw[:, :8]).view(">u8").astype(np.uint64).reshape(-1)


def _sorted_by_prefix(raw: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Prefixes, values and ids ordered by prefix, and every one alive."""
    prefixes = _prefixes(raw) if len(raw) else np.empty(0, np.uint64)
    order = np.argsort(prefixes, kind="stable")
    return prefixes[order], raw[order], ids[order], np.ones(len(order), np.bool_)


@dataclass
class DigestIndex:
    """The values of one digest signal with the entry id of each."""

    width: int
    prefixes: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    values: np.ndarray = field(default_factory=lambda: np.empty((0, 0), np.uint8))
    ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    alive: np.ndarray = field(default_factory=lambda: np.empty(0, np.bool_))
    #: Recent additions, looked up by value until the next compaction.
    extra: dict[bytes, list[int]] = field(default_factory=dict)

    @classmethod
    def build(cls, width: int, values: list[str], ids: np.ndarray) -> DigestIndex:
        """An index of hex ``values`` (each ``width`` bytes) of entries ``ids``."""
        return cls(width, *_sorted_by_prefix(_to_bytes(values, width), np.asarray(ids, np.int64)))

    def __len__(self) -> int:
        return int(self.alive.sum()) + sum(len(v) for v in self.extra.values())

    def add(self, values: list[str], ids: list[int]) -> None:
        """Add values; found by the next lookup."""
        for value, entry_id in zip(values, ids, strict=True):
            self.extra.setdefault(bytes.fromhex(value), []).append(entry_id)
        if len(self.extra) > max(50_000, len(self.ids) // 16):
            self.compact()

    def remove(self, entry_ids: list[int]) -> None:
        """Forget every value of these entries."""
        wanted = set(entry_ids)
        if not self.alive.flags.writeable:
            self.alive = self.alive.copy()
        self.alive[np.isin(self.ids, np.asarray(entry_ids, np.int64))] = False
        for key in list(self.extra):
            kept = [i for i in self.extra[key] if i not in wanted]
            if kept:
                self.extra[key] = kept
            else:
                del self.extra[key]

    def compact(self) -> None:
        """Merge recent additions and drop removed values."""
        added = [(key, entry_id) for key, entry_ids in self.extra.items() for entry_id in entry_ids]
        raw = np.concatenate(
            [self.values[self.alive].reshape(-1, self.width), _to_bytes([key.hex() for key, _ in added], self.width)]
        )
        ids = np.concatenate([self.ids[self.alive], np.asarray([i for _, i in added], np.int64)])
        self.prefixes, self.values, self.ids, self.alive = _sorted_by_prefix(raw, ids)
        self.extra = {}

    def lookup_many(self, values: list[str]) -> list[list[int]]:
        """For each hex value, the ids of the entries that hold it (vectorised)."""
        raw = _to_bytes(values, self.width)
        results: list[list[int]] = [[] for _ in values]
        if len(self.ids) and len(raw):
            wanted = _prefixes(raw)
            left = np.searchsorted(self.prefixes, wanted, side="left")
            right = np.searchsorted(self.prefixes, wanted, side="right")
            for q in np.nonzero(right > left)[0].tolist():
                for position in range(int(left[q]), int(right[q])):
                    if self.alive[position] and np.array_equal(self.values[position], raw[q]):
                        results[q].append(int(self.ids[position]))
        if self.extra:
            for q, value in enumerate(values):
                results[q].extend(self.extra.get(bytes.fromhex(value), []))
        return results

    def save(self, folder: Path, signal: str) -> None:
        """Write the index (compacted) to ``folder``."""
        if self.extra or not self.alive.all():
            self.compact()
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("prefixes", "values", "ids"):
            np.save(folder / f"{signal}_{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: Path, signal: str, width: int) -> DigestIndex:
        """Open an index written by ``save`` (memory-mapped)."""
        arrays = {  # plain ndarray views of the maps: indexing an np.memmap costs more, on every query
            name: np.asarray(np.load(folder / f"{signal}_{name}.npy", mmap_mode="r"))
            for name in ("prefixes", "values", "ids")
        }
        return cls(width, arrays["prefixes"], arrays["values"], arrays["ids"], np.ones(len(arrays["ids"]), np.bool_))
