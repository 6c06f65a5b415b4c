"""Finding known videos by their vPDQ frames (``childsafe/index/video_index.py``):
the same answers as comparing the query with every known video, on real
videos made here from benign pictures and on many random ones."""

from __future__ import annotations

import io

import numpy as np
from builders import panning_frames, video_of

from childsafe.index.video_index import VideoIndex
from childsafe.signals.vpdq import VpdqFeature, vpdq_compare, vpdq_hash


def _frames(video: bytes) -> list[VpdqFeature]:
    hashed = vpdq_hash(io.BytesIO(video))
    assert hashed.error is None
    return hashed.features


def test_a_copy_or_a_clip_finds_its_video_and_nothing_else_is_found() -> None:
    scenes = {seed: panning_frames(150, seed=seed) for seed in (0, 1, 2)}
    known = {100 + seed: _frames(video_of(frames, 25)) for seed, frames in scenes.items()}
    known[200] = _frames(video_of([np.zeros((240, 320, 3), np.uint8)] * 50, 25))  # featureless: never matched
    index = VideoIndex.build(known)
    copy = _frames(video_of(scenes[1], 25, codec="mpeg4", container="avi", bitrate=400_000))
    assert [m.video_id for m in index.search(copy)] == [101]
    clip = _frames(video_of(scenes[0][50:125], 25))
    [found] = index.search(clip)
    assert (found.video_id, found.comparison.query_percent, found.comparison.query_ranges) == (100, 100.0, [(0.0, 2.0)])
    assert index.search(_frames(video_of(panning_frames(150, seed=3), 25))) == []
    assert index.search(known[200]) == [] and index.candidates(known[200]) == set()


def _random_video(rng: np.random.Generator, frames: int) -> list[VpdqFeature]:
    return [VpdqFeature(n, 100, rng.bytes(32).hex(), float(n)) for n in range(frames)]


def _near(feature: VpdqFeature, rng: np.random.Generator, bits: int) -> VpdqFeature:
    value = int(feature.pdq, 16)
    for bit in rng.choice(256, size=bits, replace=False):
        value ^= 1 << int(bit)
    return VpdqFeature(feature.frame, feature.quality, f"{value:064x}", feature.timestamp)


def test_the_index_answers_as_comparing_with_every_video_does() -> None:
    rng = np.random.default_rng(19)
    known = {video: _random_video(rng, int(rng.integers(5, 40))) for video in range(300)}
    index = VideoIndex.build(known)
    for trial in range(40):
        source = known[int(rng.integers(0, 300))]
        # Some frames of a known video moved near the 31-bit distance (all just within it, or either side), and new ones.
        take = rng.choice(len(source), size=int(rng.integers(1, len(source) + 1)), replace=False)
        low, high = (26, 32) if trial % 2 else (20, 41)
        query = [_near(source[int(i)], rng, int(rng.integers(low, high))) for i in take]
        query += _random_video(rng, int(rng.integers(0, 4)))
        for percent in (80.0, 30.0):
            expected = sorted(video for video, frames in known.items() if vpdq_compare(query, frames).matches(percent))
            assert sorted(m.video_id for m in index.search(query, query_percent=percent)) == expected, trial
