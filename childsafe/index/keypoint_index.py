"""The keypoints of one bank's entries, and the geometric check that decides
a keypoint match (see ``childsafe/signals/keypoints.py`` for why).

Descriptors are 256 bits, like PDQ hashes, so they live in a ``PdqIndex``
(multi-index hashing, radius search); keypoint ``k`` of entry ``e`` has the
id ``e << ID_SHIFT | k``. A query's keypoints are looked up in one batch;
each entry with enough of them near is then checked with RANSAC: the matched
positions must agree on one similarity transform (scale, turn, shift).

Safeguards against a false match, each set from the detection benchmark
(bench/detect_quality.py) with a margin: at least ``MIN_INLIERS`` distinct
keypoints of the entry agree; the transform's scale is between 1/10 and 10;
and the agreeing keypoints spread over at least ``MIN_COVER`` of the entry's
picture, so that a shared logo, watermark or line of text is never enough.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from childsafe.index.pdq_index import PdqIndex
from childsafe.signals.keypoints import Keypoints, opencv

__all__ = ["KeypointIndex", "KeypointMatch", "KEYPOINT_RADIUS", "MIN_INLIERS", "MIN_COVER"]

#: Descriptors within this Hamming distance (of 256 bits) are a pair.
KEYPOINT_RADIUS = 31
#: Pairs that must agree on one transform for a match.
MIN_INLIERS = 12
#: Share of the entry's picture the agreeing keypoints must span (their bounding
#: box). A site's name stamped in a corner spans 1-3% (tests/test_detection.py);
#: a crop of a picture whose detail is in one place (an insect on a leaf) can
#: span as little as 6% with over a hundred agreeing keypoints, so 10% lost such
#: crops (about 1 point of recall on the detection benchmark).
MIN_COVER = 0.05
#: A bucket of the descriptor index this many times fuller than the average
#: one is not looked in: its chunk value is common to unrelated descriptors.
CROWDED = 64
#: Entries checked with RANSAC for one query, at most.
MOST_CHECKED = 5
#: RANSAC's tolerance: 1% of the query's longer side.
_TOLERANCE = 0.01
ID_SHIFT = 10


@dataclass(frozen=True)
class KeypointMatch:
    """An entry whose keypoints agree with the query's: how many, and over how much of it."""

    entry_id: int
    inliers: int
    cover: float


@dataclass
class KeypointIndex:
    """Keypoints of entries: descriptors indexed, positions by entry.
    ``descriptors`` is ``None`` while there are none: most banks (hash lists)
    never have keypoints, and an empty multi-index still holds 4 MB of tables."""

    descriptors: PdqIndex | None = None
    #: entry id -> (width, height, positions (n, 2) float32)
    frames: dict[int, tuple[int, int, np.ndarray]] = field(default_factory=dict)
    #: Buckets this many times fuller than the average are not looked in (0: all are; a benchmark's baseline).
    crowded: float = CROWDED

    def __len__(self) -> int:
        return len(self.frames)

    @classmethod
    def build(cls, entries: Iterable[tuple[int, Keypoints]]) -> KeypointIndex:
        """An index of these entries' keypoints."""
        index = cls()
        words, ids = index._take(entries)
        if len(ids):
            index.descriptors = _descriptor_index(words, ids)
        return index

    def _take(self, entries: Iterable[tuple[int, Keypoints]]) -> tuple[np.ndarray, np.ndarray]:
        words, ids = [], []
        for entry_id, found in entries:
            found = _clipped(found)
            self.frames[entry_id] = (found.width, found.height, found.points)
            words.append(descriptor_words(found.descriptors))
            ids.append((entry_id << ID_SHIFT) | np.arange(len(found), dtype=np.int64))
        if not words:
            return np.empty((0, 4), np.uint64), np.empty(0, np.int64)
        return np.concatenate(words), np.concatenate(ids)

    def memory_bytes(self) -> int:
        """Memory the index holds: descriptors, their multi-index, positions."""
        points = sum(found.nbytes for _, _, found in self.frames.values())
        return points + (self.descriptors.nbytes() if self.descriptors is not None else 0)

    def add(self, entries: Iterable[tuple[int, Keypoints]]) -> None:
        """Index more entries' keypoints (searchable at once)."""
        words, ids = self._take(entries)
        if not len(ids):
            return
        if self.descriptors is None:
            self.descriptors = _descriptor_index(words, ids)
            return
        self.descriptors.add(words, ids)

    def remove(self, entry_ids: Iterable[int]) -> None:
        """Forget these entries' keypoints."""
        gone = [e for e in entry_ids if e in self.frames]
        ids = [(e << ID_SHIFT) | k for e in gone for k in range(len(self.frames[e][2]))]
        if ids and self.descriptors is not None:
            self.descriptors.remove(ids)
        for entry_id in gone:
            del self.frames[entry_id]

    def search(self, query: Keypoints) -> list[KeypointMatch]:
        """Entries whose keypoints pass the geometric check against ``query``'s."""
        if self.descriptors is None or not self.frames or len(query) < MIN_INLIERS:
            return []
        # Probing only the exact bucket of each 16-bit chunk finds about 90% of
        # pairs 30 bits apart, at a seventeenth of the cost of finding all; and
        # skipping buckets far fuller than the average keeps descriptors of
        # smooth or noisy patches, alike in every picture, from pairing by the
        # hundred (bench/keypoint_adds.py).
        rows, ids, distances = self.descriptors.search_many_ids(
            descriptor_words(query.descriptors), KEYPOINT_RADIUS, probe=0, crowded=self.crowded
        )
        if not len(rows):
            return []
        entries = ids >> ID_SHIFT
        # For each query keypoint and entry, only the nearest of the entry's keypoints.
        order = np.lexsort((distances, entries, rows))
        rows, ids, entries = rows[order], ids[order], entries[order]
        first = np.ones(len(rows), bool)
        first[1:] = (rows[1:] != rows[:-1]) | (entries[1:] != entries[:-1])
        rows, ids, entries = rows[first], ids[first], entries[first]
        candidates, counts = np.unique(entries, return_counts=True)
        enough = counts >= MIN_INLIERS
        # The entries with the most pairs first, and only a few: a copy shares
        # far more pairs with its original than chance gives, and on noise-like
        # textures chance gives many entries a dozen pairs (each check costs
        # about half a millisecond).
        most_first = np.argsort(-counts[enough], kind="stable")[:MOST_CHECKED]
        matches = []
        for entry_id in candidates[enough][most_first].tolist():
            chosen = entries == entry_id
            width, height, positions = self.frames[entry_id]
            found = _agreeing(
                positions[ids[chosen] & ((1 << ID_SHIFT) - 1)], query.points[rows[chosen]], query, width * height
            )
            if found is not None:
                matches.append(KeypointMatch(entry_id, *found))
        return matches

    def save(self, folder: Path) -> None:
        """Write the index under ``folder`` (a part of a saved bank index)."""
        folder.mkdir(parents=True, exist_ok=True)
        if self.descriptors is not None:
            self.descriptors.save(folder)
        entry_ids = np.array(sorted(self.frames), np.int64)
        sizes = np.array([self.frames[e][:2] for e in entry_ids.tolist()], np.int64).reshape(-1, 2)
        counts = np.array([len(self.frames[e][2]) for e in entry_ids.tolist()], np.int64)
        points = [self.frames[e][2] for e in entry_ids.tolist()]
        np.savez(
            folder / "frames.npz",
            entry_ids=entry_ids,
            sizes=sizes,
            counts=counts,
            points=np.concatenate(points) if points else np.empty((0, 2), np.float32),
        )

    @classmethod
    def load(cls, folder: Path) -> KeypointIndex:
        """Open an index written by ``save`` (``OSError`` if it is not there)."""
        with np.load(folder / "frames.npz") as saved:
            ends = np.cumsum(saved["counts"])
            points = np.split(saved["points"], ends[:-1]) if len(ends) else []
            frames = {
                int(e): (int(w), int(h), p)
                for e, (w, h), p in zip(saved["entry_ids"].tolist(), saved["sizes"].tolist(), points, strict=True)
            }
        descriptors = PdqIndex.load(folder) if frames else None
        if descriptors is not None:
            descriptors.tiny_limit = 0  # its later rebuilds too (``_descriptor_index``)
        return cls(descriptors, frames)


def _descriptor_index(words: np.ndarray, ids: np.ndarray) -> PdqIndex:
    """A descriptor index: never the tiny layout, whose 8-bit chunks cost a
    lookup that probes one bucket a chunk four times as much."""
    return PdqIndex.build(words, ids, tiny_limit=0)


def descriptor_words(descriptors: np.ndarray) -> np.ndarray:
    """ORB descriptors ((n, 32) uint8) as the (n, 4) uint64 words a ``PdqIndex`` holds."""
    return np.frombuffer(np.ascontiguousarray(descriptors).tobytes(), dtype=">u8").astype(np.uint64).reshape(-1, 4)


def _clipped(found: Keypoints) -> Keypoints:
    # Ids leave ID_SHIFT bits for the keypoint number.
    limit = 1 << ID_SHIFT
    if len(found) <= limit:
        return found
    return Keypoints(found.width, found.height, found.points[:limit], found.descriptors[:limit])


def _agreeing(
    bank_points: np.ndarray, query_points: np.ndarray, query: Keypoints, bank_area: int
) -> tuple[int, float] | None:
    """(inliers, cover) when the pairs agree on one similarity transform and pass every safeguard."""
    tolerance = _TOLERANCE * max(query.width, query.height)
    cv2 = opencv()
    transform, inliers = cv2.estimateAffinePartial2D(
        bank_points, query_points, method=cv2.RANSAC, ransacReprojThreshold=tolerance, maxIters=500, confidence=0.995
    )
    if transform is None:
        return None
    agreeing = bank_points[inliers.ravel().astype(bool)]
    # Distinct bank keypoints only: a repeated texture must not count one patch many times.
    agreeing = np.unique(agreeing, axis=0)
    if len(agreeing) < MIN_INLIERS:
        return None
    scale = float(np.sqrt(abs(np.linalg.det(transform[:, :2]))))
    if not 0.1 < scale < 10:
        return None
    cover = float(np.ptp(agreeing[:, 0]) * np.ptp(agreeing[:, 1])) / max(bank_area, 1)
    if cover < MIN_COVER:
        return None
    return len(agreeing), round(cover, 3)
