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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from childsafe.index.pdq_index import PdqIndex, hex_to_words
from childsafe.signals.vpdq import (
    VPDQ_COMPARED_PERCENT,
    VPDQ_DISTANCE,
    VPDQ_MIN_QUALITY,
    VPDQ_QUERY_PERCENT,
    VpdqComparison,
    VpdqFeature,
    usable_frames,
    vpdq_compare,
)

__all__ = ["VideoIndex", "VideoMatch"]


@dataclass(frozen=True)
class VideoMatch:
    """A known video that matches a query, and how much of each matched."""

    video_id: int
    comparison: VpdqComparison


@dataclass
class VideoIndex:
    """The frame hashes of known videos, by video id."""

    frames: dict[int, list[VpdqFeature]] = field(default_factory=dict)
    index: PdqIndex = field(default_factory=PdqIndex)

    @classmethod
    def build(cls, videos: dict[int, list[VpdqFeature]], quality: int = VPDQ_MIN_QUALITY) -> VideoIndex:
        """An index of ``videos`` (video id -> its frame hashes)."""
        kept = {video: usable_frames(features, quality) for video, features in videos.items()}
        values = [f.pdq for features in kept.values() for f in features]
        owners = np.array([video for video, features in kept.items() for _ in features], dtype=np.int64)
        hashes = hex_to_words(values) if values else np.empty((0, 4), np.uint64)
        return cls(kept, PdqIndex.build(hashes, owners))

    def __len__(self) -> int:
        return len(self.frames)

    def candidates(
        self, query: list[VpdqFeature], distance: int = VPDQ_DISTANCE, query_percent: float = 0.0
    ) -> set[int]:
        """Every video that can match ``query`` with at least ``query_percent``
        of its usable frames: those with a frame within ``distance`` bits of
        one of the query frames searched. With a percentage, fewer frames need
        searching (pigeonhole, so still exact): a video matching m of the n
        frames has a frame near one of any n - m + 1 of them."""
        mine = usable_frames(query, VPDQ_MIN_QUALITY)
        if not mine or not self.frames:
            return set()
        needed = max(1, math.ceil(query_percent * len(mine) / 100 - 1e-9))
        searched = mine[:: max(1, len(mine) // (len(mine) - needed + 1))][: len(mine) - needed + 1]
        _, owners, _ = self.index.search_many_ids(hex_to_words([f.pdq for f in searched]), distance)
        return set(np.unique(owners).tolist())

    def search(
        self,
        query: list[VpdqFeature],
        distance: int = VPDQ_DISTANCE,
        query_percent: float = VPDQ_QUERY_PERCENT,
        compared_percent: float = VPDQ_COMPARED_PERCENT,
    ) -> list[VideoMatch]:
        """The known videos that match ``query`` by Meta's rule (the percentages
        given), the closest first (by the share of the query matched, then of the video)."""
        found = []
        for video in self.candidates(query, distance, query_percent):
            comparison = vpdq_compare(query, self.frames[video], distance)
            if comparison.matches(query_percent, compared_percent):
                found.append(VideoMatch(video, comparison))
        return sorted(found, key=lambda m: (-m.comparison.query_percent, -m.comparison.compared_percent, m.video_id))
