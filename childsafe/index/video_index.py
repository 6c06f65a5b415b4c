"""Finding known videos by their vPDQ frame hashes, without comparing a
query with every video.

Every usable frame hash of every known video (quality at least 50, each
distinct hash of a video once) goes into one ``PdqIndex``, labelled with its
video. A query's usable frames are searched there within the frame distance
(an exact radius search: no frame within it is missed; and only as many of
them as a match by the query percentage needs, by pigeonhole); the videos
hit are the candidates, and only they are compared with the query frame by frame
(``vpdq_compare``, Meta's rule). So a query costs its frames' index lookups
plus one comparison per candidate, whatever the number of videos.

Frames are kept as arrays (``FrameHashes``, 45 bytes a frame), changed in
place as a bank changes, and saved beside the bank's other indexes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from childsafe.index.pdq_index import PdqIndex
from childsafe.signals.vpdq import (
    VPDQ_COMPARED_PERCENT,
    VPDQ_DISTANCE,
    VPDQ_MIN_QUALITY,
    VPDQ_QUERY_PERCENT,
    FrameHashes,
    VpdqComparison,
    VpdqFeature,
    compare_usable,
)

__all__ = ["VideoIndex", "VideoMatch"]


@dataclass(frozen=True)
class VideoMatch:
    """A known video that matches a query, and how much of each matched."""

    video_id: int
    comparison: VpdqComparison


def _words(hashes: np.ndarray) -> np.ndarray:
    """PDQ bytes (n, 32) as the index's (n, 4) big-endian words."""
    return np.ascontiguousarray(hashes).view(">u8").astype(np.uint64).reshape(-1, 4)


def _frames_of(video: FrameHashes | list[VpdqFeature]) -> FrameHashes:
    return video if isinstance(video, FrameHashes) else FrameHashes.of(video)


@dataclass
class VideoIndex:
    """The usable frame hashes of known videos, by video id (an entry id in a bank)."""

    frames: dict[int, FrameHashes] = field(default_factory=dict)
    index: PdqIndex = field(default_factory=PdqIndex)
    quality: int = VPDQ_MIN_QUALITY

    @classmethod
    def build(
        cls,
        videos: dict[int, FrameHashes] | dict[int, list[VpdqFeature]] | Iterable[tuple[int, FrameHashes]],
        quality: int = VPDQ_MIN_QUALITY,
    ) -> VideoIndex:
        """An index of ``videos`` (video id -> its frame hashes)."""
        pairs = videos.items() if isinstance(videos, dict) else videos
        kept = {video: _frames_of(frames).usable(quality) for video, frames in pairs}
        index = cls(kept, quality=quality)
        index.index = PdqIndex.build(*index._arrays(kept))
        return index

    @staticmethod
    def _arrays(videos: dict[int, FrameHashes]) -> tuple[np.ndarray, np.ndarray]:
        if not videos:
            return np.empty((0, 4), np.uint64), np.empty(0, np.int64)
        words = np.concatenate([_words(frames.hashes) for frames in videos.values()])
        owners = np.concatenate([np.full(len(frames), video, np.int64) for video, frames in videos.items()])
        return words, owners

    def __len__(self) -> int:
        return len(self.frames)

    def frame_count(self) -> int:
        """How many usable frame hashes are indexed."""
        return sum(len(frames) for frames in self.frames.values())

    def add(self, videos: Iterable[tuple[int, FrameHashes]]) -> None:
        """Index these videos (any earlier copy of one is replaced)."""
        kept = {video: frames.usable(self.quality) for video, frames in videos}
        self.remove(kept)
        self.frames.update(kept)
        self.index.add(*self._arrays(kept))

    def remove(self, video_ids: Iterable[int]) -> None:
        """Forget these videos."""
        known = [video for video in video_ids if video in self.frames]
        for video in known:
            del self.frames[video]
        if known:
            self.index.remove(known)

    def candidates(
        self, query: FrameHashes | list[VpdqFeature], distance: int = VPDQ_DISTANCE, query_percent: float = 0.0
    ) -> set[int]:
        """Every video that can match ``query`` with at least ``query_percent``
        of its usable frames: those with a frame within ``distance`` bits of
        one of the query frames searched. With a percentage, fewer frames need
        searching (pigeonhole, so still exact): a video matching m of the n
        frames has a frame near one of any n - m + 1 of them."""
        mine = _frames_of(query).usable(self.quality)
        if not len(mine) or not self.frames:
            return set()
        count = len(mine)
        needed = max(1, math.ceil(query_percent * count / 100 - 1e-9))
        searched = mine.hashes[:: max(1, count // (count - needed + 1))][: count - needed + 1]
        _, owners, _ = self.index.search_many_ids(_words(searched), distance)
        return set(np.unique(owners).tolist())

    def search(
        self,
        query: FrameHashes | list[VpdqFeature],
        distance: int = VPDQ_DISTANCE,
        query_percent: float = VPDQ_QUERY_PERCENT,
        compared_percent: float = VPDQ_COMPARED_PERCENT,
    ) -> list[VideoMatch]:
        """The known videos that match ``query`` by Meta's rule (the percentages
        given), the closest first (by the share of the query matched, then of the video)."""
        mine = _frames_of(query).usable(self.quality)
        found = []
        for video in self.candidates(mine, distance, query_percent):
            comparison = compare_usable(mine, self.frames[video], distance)
            if comparison.matches(query_percent, compared_percent):
                found.append(VideoMatch(video, comparison))
        return sorted(found, key=lambda m: (-m.comparison.query_percent, -m.comparison.compared_percent, m.video_id))

    def save(self, folder: Path) -> None:
        """Write the index to ``folder`` (its frame index and every video's frames)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.index.save(folder)
        ids = np.array(list(self.frames), np.int64)
        counts = np.array([len(frames) for frames in self.frames.values()], np.int64)
        parts = list(self.frames.values())
        np.savez(
            folder / "videos.npz",
            ids=ids,
            counts=counts,
            hashes=np.concatenate([f.hashes for f in parts]) if parts else np.empty((0, 32), np.uint8),
            qualities=np.concatenate([f.qualities for f in parts]) if parts else np.empty(0, np.uint8),
            frames=np.concatenate([f.frames for f in parts]) if parts else np.empty(0, np.uint32),
            timestamps=np.concatenate([f.timestamps for f in parts]) if parts else np.empty(0, np.float64),
            quality=np.array([self.quality]),
        )

    @classmethod
    def load(cls, folder: Path) -> VideoIndex:
        """An index written by ``save``."""
        with np.load(folder / "videos.npz") as saved:
            arrays = {name: saved[name] for name in saved.files}
        ends = np.cumsum(arrays["counts"])
        starts = ends - arrays["counts"]
        frames = {
            int(video): FrameHashes(
                arrays["hashes"][start:end],
                arrays["qualities"][start:end],
                arrays["frames"][start:end],
                arrays["timestamps"][start:end],
            )
            for video, start, end in zip(arrays["ids"], starts, ends, strict=True)
        }
        return cls(frames, PdqIndex.load(folder), int(arrays["quality"][0]))
