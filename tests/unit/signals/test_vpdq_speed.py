"""vPDQ's two speed-ups (``childsafe/signals/vpdq.py``) against the exact
way, on videos made here with PyAV from benign scikit-image pictures:

- the skipping pass (``_hash_skipping``), which leaves out of decoding the
  frames nothing refers to, must choose exactly the frames, numbers and
  timestamps of a decode of every frame counted as Meta's reference counts
  (``_hash_pass(..., order=None)``), and give the same hashes and contact
  sheet, on several codecs, containers and frame rates;
- frames over ``vpdq_hash_pixels``, reduced before PDQ, must stay within a
  mean of 8 bits of the full-size hashes and leave every matching decision
  as it was.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction

import av
import numpy as np
import pytest
from builders import panning_frames, video_of

from childsafe.media import MediaLimits
from childsafe.media.contact_sheet import SheetTiles
from childsafe.signals import vpdq
from childsafe.signals.pdq import pdq_distance
from childsafe.signals.vpdq import VideoHash, vpdq_compare, vpdq_hash


def _encoded(
    codec: str, container: str, fps: float | Fraction = 25, b_frames: int = 0, options: dict[str, str] | None = None
) -> bytes:
    """120 panning frames (320 x 240), with ``b_frames`` B-frames where the encoder takes the number."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=Fraction(fps).limit_denominator(1001), options=options or {})
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        if b_frames:
            stream.codec_context.max_b_frames = b_frames
        for array in panning_frames(120):
            output.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        output.mux(stream.encode())
    return buffer.getvalue()


def _variable_rate() -> bytes:
    """H.264 in Matroska, its frames 40 ms apart, then 20 ms, with one frame left out (a gap of 80 ms)."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="matroska") as output:
        stream = output.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        moment = 0
        for index, array in enumerate(panning_frames(120)):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts, frame.time_base = moment, Fraction(1, 1000)
            moment += 40 if index < 60 else 20
            if index == 80:
                moment += 20
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return buffer.getvalue()


VIDEOS: dict[str, Callable[[], bytes]] = {
    "x264 in MP4, B-frames, 25 fps": lambda: video_of(panning_frames(120), 25),
    "x264 in MP4, 29.97 fps": lambda: video_of(panning_frames(120), Fraction(30000, 1001)),
    "x264 in Matroska": lambda: video_of(panning_frames(120), 25, container="matroska"),
    "x264 in MPEG-TS, 29.97 fps": lambda: video_of(panning_frames(120), Fraction(30000, 1001), container="mpegts"),
    "x264, strict B-pyramid, 5 B-frames, in Matroska": lambda: _encoded(
        "libx264", "matroska", options={"x264-params": "b-pyramid=strict:bframes=5"}
    ),
    "x264, a keyframe every 10 frames, in MOV": lambda: _encoded(
        "libx264", "mov", 30, options={"x264-params": "keyint=10:bframes=3"}
    ),
    "x264, variable frame rate with a gap, in Matroska": _variable_rate,
    "MPEG-4 part 2 in AVI": lambda: video_of(panning_frames(120), 25, codec="mpeg4", container="avi"),
    "MPEG-4 part 2, B-frames, in MP4": lambda: _encoded("mpeg4", "mp4", 10, b_frames=2),
    "MPEG-2, B-frames, in MPEG-TS": lambda: _encoded("mpeg2video", "mpegts", 25, b_frames=2),
    "HEVC in MP4": lambda: _encoded("libx265", "mp4", 24, options={"x265-params": "log-level=none"}),
}


def _exact(data: bytes, limits: MediaLimits, sheet_tiles: int = 0) -> VideoHash:
    """The exact pass alone: every frame decoded and counted."""
    return vpdq._hash_pass(io.BytesIO(data), limits, sheet_tiles, time.monotonic() + 60, None)


def _offers(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the time of every frame offered to a contact sheet: every frame decoded."""
    seen: list[float] = []
    offer = SheetTiles.offer

    def counting(self: SheetTiles, time_seconds: float, frame: av.VideoFrame) -> bool:
        seen.append(time_seconds)
        return offer(self, time_seconds, frame)

    monkeypatch.setattr(SheetTiles, "offer", counting)
    return seen


@pytest.mark.parametrize("video", list(VIDEOS))
@pytest.mark.parametrize("seconds_per_hash", [1.0, 0.3])
def test_the_skipping_pass_chooses_the_frames_of_a_decode_of_every_frame(
    video: str, seconds_per_hash: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = VIDEOS[video]()
    limits = replace(MediaLimits(), vpdq_seconds_per_hash=seconds_per_hash)
    assert vpdq._frame_order(io.BytesIO(data), limits, time.monotonic() + 60) is not None, "the skipping pass is used"
    offered = _offers(monkeypatch)
    fast = vpdq_hash(io.BytesIO(data), limits, sheet_tiles=20)
    decoded_fast, offered[:] = len(offered), []
    exact = _exact(data, limits, sheet_tiles=20)
    decoded_exact = len(offered)
    assert fast.error is None and exact.error is None and len(exact.features) >= 4
    assert fast.features == exact.features  # frame numbers, timestamps, qualities and hashes
    # The frame numbers are Meta's: the count of frames the decoder gives before each, from 0.
    with av.open(io.BytesIO(data)) as container:
        pts = [frame.pts for frame in container.decode(video=0)]
    every = max(1, int(seconds_per_hash * float(exact.frame_rate or 0)))
    assert [f.frame for f in fast.features] == list(range(0, len(pts), every))
    assert fast.sheet is not None and exact.sheet is not None
    assert (fast.sheet.timestamps, fast.sheet.jpeg) == (exact.sheet.timestamps, exact.sheet.jpeg)
    assert decoded_fast <= decoded_exact == len(pts)


def test_with_b_frames_about_half_the_frames_are_left_undecoded(monkeypatch: pytest.MonkeyPatch) -> None:
    data = video_of(panning_frames(250), 25)  # x264's default: B-frames, most of which nothing refers to
    offered = _offers(monkeypatch)
    vpdq_hash(io.BytesIO(data), sheet_tiles=1)
    assert len(offered) < 0.7 * 250


def test_a_codec_it_does_not_vouch_for_vp9_is_decoded_whole() -> None:
    data = _encoded("libvpx-vp9", "webm", 25)
    assert vpdq._frame_order(io.BytesIO(data), MediaLimits(), time.monotonic() + 60) is None
    hashed = vpdq_hash(io.BytesIO(data))
    assert [f.frame for f in hashed.features] == [0, 25, 50, 75, 100]


def test_a_surprise_in_the_skipping_pass_hashes_again_from_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    data = video_of(panning_frames(120), 25)
    exact = _exact(data, MediaLimits())
    skipping = vpdq._hash_skipping

    def halfway(*args: object) -> None:
        result = args[4]
        assert isinstance(result, VideoHash)
        result.features.append(exact.features[0])  # hashed before the surprise: must not be kept
        raise vpdq._NotExact

    monkeypatch.setattr(vpdq, "_hash_skipping", halfway)
    assert vpdq_hash(io.BytesIO(data)).features == exact.features
    monkeypatch.setattr(vpdq, "_hash_skipping", skipping)
    assert vpdq_hash(io.BytesIO(data)).features == exact.features


def test_a_stream_read_once_is_decoded_whole() -> None:
    class NonSeekable(io.BytesIO):
        def seekable(self) -> bool:
            return False

    data = video_of(panning_frames(60), 25)
    assert vpdq._frame_order(NonSeekable(data), MediaLimits(), time.monotonic() + 60) is None


# -- frames reduced before PDQ ----------------------------------------------------


def _logo(frame: np.ndarray) -> np.ndarray:
    marked = frame.copy()
    marked[8:32, 8:64] = 255  # a broadcaster's white bug in the corner
    return marked


#: Copies of a 6-second 640 x 480 scene, and what is not one (as tests/unit/index/test_video_index.py's EDITS).
COPIES: dict[str, Callable[[list[np.ndarray], list[np.ndarray]], bytes]] = {
    "re-encoded": lambda scene, other: video_of(scene, 25, codec="mpeg4", container="avi", bitrate=800_000),
    "resized": lambda scene, other: video_of([f[::2, ::2] for f in scene], 25),
    "cropped": lambda scene, other: video_of([f[8:-8, 8:-8] for f in scene], 25, container="matroska"),
    "logo": lambda scene, other: video_of([_logo(f) for f in scene], 25),
    "30 frames a second": lambda scene, other: video_of([scene[i * 25 // 30] for i in range(180)], 30),
    "trimmed": lambda scene, other: video_of(scene[25:125], 25),
    "frames inserted": lambda scene, other: video_of(scene[:75] + other[:25] + scene[75:], 25),
    "clip": lambda scene, other: video_of(scene[50:100], 25),
    "unrelated": lambda scene, other: video_of(other, 25),
}


@pytest.mark.slow
def test_frames_reduced_before_pdq_stay_near_the_full_size_hashes_and_match_alike() -> None:
    # 640 x 480 over a limit of 320 x 240: reduced by 2 (1080p is, by default, to 960 x 540).
    full = replace(MediaLimits(), vpdq_hash_pixels=MediaLimits().max_pixels)
    reduced = replace(MediaLimits(), vpdq_hash_pixels=320 * 240)
    scene, other = panning_frames(150, (640, 480), seed=0), panning_frames(150, (640, 480), seed=2)
    known = video_of(scene, 25)
    known_full, known_reduced = vpdq_hash(io.BytesIO(known), full), vpdq_hash(io.BytesIO(known), reduced)
    distances = [pdq_distance(a.pdq, b.pdq) for a, b in zip(known_full.features, known_reduced.features, strict=True)]
    for name, copy in COPIES.items():
        data = copy(scene, other)
        query_full, query_reduced = vpdq_hash(io.BytesIO(data), full), vpdq_hash(io.BytesIO(data), reduced)
        assert [f.frame for f in query_full.features] == [f.frame for f in query_reduced.features]
        distances += [
            pdq_distance(a.pdq, b.pdq) for a, b in zip(query_full.features, query_reduced.features, strict=True)
        ]
        before = vpdq_compare(query_full.features, known_full.features)
        after = vpdq_compare(query_reduced.features, known_reduced.features)
        # Meta's rule, and a bank's rule for compilations (0% of the query, 80% of the known video).
        assert (after.matches(), after.matches(0.0, 80.0)) == (before.matches(), before.matches(0.0, 80.0)), name
        assert before.matches() == (name != "unrelated"), name
    assert float(np.mean(distances)) <= 8


def test_a_frame_within_the_limit_is_hashed_at_its_own_size() -> None:
    data = video_of(panning_frames(30, (640, 480)), 25)
    at_size = vpdq_hash(io.BytesIO(data), replace(MediaLimits(), vpdq_hash_pixels=640 * 480))
    larger_limit = vpdq_hash(io.BytesIO(data), replace(MediaLimits(), vpdq_hash_pixels=10**9))
    assert at_size.features == larger_limit.features
