"""Finding known videos by their vPDQ frames (``childsafe/index/video_index.py``):
the same answers as comparing the query with every known video, on real
videos made here from benign pictures and on many random ones."""

from __future__ import annotations

import io

import numpy as np
import pytest
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


def _logo(frame: np.ndarray) -> np.ndarray:
    marked = frame.copy()
    marked[8:32, 8:64] = 255  # a broadcaster's white bug in the corner
    return marked


#: Edits of a known 6-second scene, each still the scene by Meta's rule.
EDITS = {
    "re-encoded": lambda scene, other: video_of(scene, 25, codec="mpeg4", container="avi", bitrate=400_000),
    "resized": lambda scene, other: video_of([f[::2, ::2] for f in scene], 25),
    # PDQ, and so vPDQ, takes small crops only: 4 pixels a side here is 10 bits, 12 already 76.
    "cropped": lambda scene, other: video_of([f[4:-4, 4:-4] for f in scene], 25, container="matroska"),
    "logo": lambda scene, other: video_of([_logo(f) for f in scene], 25),
    "30 frames a second": lambda scene, other: video_of([scene[i * 25 // 30] for i in range(180)], 30),
    "10 frames a second": lambda scene, other: video_of([scene[i * 25 // 10] for i in range(60)], 10),
    "trimmed": lambda scene, other: video_of(scene[25:125], 25),
    "frames inserted": lambda scene, other: video_of(scene[:75] + other[:25] + scene[75:], 25),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_an_edited_copy_finds_its_video_and_no_other(edit: str) -> None:
    scenes = {seed: panning_frames(150, seed=seed) for seed in (0, 1, 2)}
    index = VideoIndex.build({100 + seed: _frames(video_of(frames, 25)) for seed, frames in scenes.items()})
    query = _frames(EDITS[edit](scenes[0], panning_frames(25, seed=3)))
    assert [m.video_id for m in index.search(query)] == [100], edit


def test_a_compilation_finds_every_video_in_it_by_the_known_videos_share() -> None:
    scenes = {seed: panning_frames(150, seed=seed) for seed in (0, 1, 2)}
    index = VideoIndex.build({100 + seed: _frames(video_of(frames, 25)) for seed, frames in scenes.items()})
    compilation = _frames(video_of(scenes[0] + panning_frames(100, seed=3) + scenes[2], 25))
    # Meta's default asks for most of the query: no single video is most of a compilation.
    assert index.search(compilation) == []
    # Asking for most of the known video instead (a bank's vpdq percentages 0 and 80) finds both in it.
    found = index.search(compilation, query_percent=0.0, compared_percent=80.0)
    assert [m.video_id for m in found] == [100, 102]
    assert all(m.comparison.compared_percent == 100.0 for m in found)
