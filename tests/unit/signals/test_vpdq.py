"""vPDQ hashing (``childsafe/signals/vpdq.py``) of videos made here with
PyAV from benign scikit-image pictures: which frames are hashed and when,
Meta's text format, what a damaged, huge or endless video gives, and the
contact sheet drawn in the same decoding."""

from __future__ import annotations

import io
import json
import pickle
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pdqhash
import pytest
from builders import panning_frames, video_of
from PIL import Image

from childsafe.detect import prepare_query
from childsafe.errors import UsageError
from childsafe.media import MediaLimits
from childsafe.media.contact_sheet import ContactSheet, contact_sheet
from childsafe.signals.hashing import hash_file
from childsafe.signals.pdq import bits_to_hex, pdq_distance
from childsafe.signals.vpdq import (
    VpdqFeature,
    format_threatexchange,
    format_vpdq,
    parse_threatexchange,
    parse_vpdq,
    vpdq_compare,
    vpdq_hash,
)


def _decoded(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.mark.parametrize(("fps", "every"), [(25, 25), (Fraction(30000, 1001), 29), (10, 10)])
def test_one_frame_a_second_is_hashed_as_meta_chooses_it(fps: float | Fraction, every: int) -> None:
    data = video_of(panning_frames(90), fps)
    hashed = vpdq_hash(io.BytesIO(data))
    assert hashed.error is None and hashed.frame_rate == pytest.approx(float(fps))
    assert [f.frame for f in hashed.features] == list(range(0, 90, every))
    assert [f.timestamp for f in hashed.features] == pytest.approx([n / float(fps) for n in range(0, 90, every)])
    decoded = _decoded(data)
    for feature in hashed.features:  # the frame's own PDQ, at the video's size
        bits, quality = pdqhash.compute(decoded[feature.frame])
        assert (feature.pdq, feature.quality) == (bits_to_hex(bits), quality)


def test_another_interval_between_hashed_frames() -> None:
    data = video_of(panning_frames(60), 20)
    hashed = vpdq_hash(io.BytesIO(data), replace(MediaLimits(), vpdq_seconds_per_hash=0.5))
    assert [f.frame for f in hashed.features] == list(range(0, 60, 10))


def test_a_re_encoded_smaller_copy_has_near_frame_hashes() -> None:
    frames = panning_frames(75, (640, 480))
    original = vpdq_hash(io.BytesIO(video_of(frames, 25)))
    small = [np.asarray(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(320, 240).to_ndarray()) for f in frames]
    copy = vpdq_hash(io.BytesIO(video_of(small, 25, codec="mpeg4", container="avi", bitrate=300_000)))
    assert [f.frame for f in copy.features] == [f.frame for f in original.features]
    distances = [pdq_distance(a.pdq, b.pdq) for a, b in zip(original.features, copy.features, strict=True)]
    assert max(distances) <= 31


def test_the_text_format_is_read_back_and_bad_lines_are_named() -> None:
    hashed = vpdq_hash(io.BytesIO(video_of(panning_frames(50), 25)))
    text = format_vpdq(hashed.features)
    assert text.splitlines()[1] == f"25,{hashed.features[1].quality},{hashed.features[1].pdq},1.000"
    assert parse_vpdq(text) == [replace(f, timestamp=round(f.timestamp, 3)) for f in hashed.features]
    with pytest.raises(UsageError, match="line 2: .*64 hexadecimal"):
        parse_vpdq(text.splitlines()[0] + "\n25,100,abc,1.000\n")
    with pytest.raises(UsageError, match="line 1: 3 fields"):
        parse_vpdq("0,100,1.0\n")
    assert VpdqFeature(3, 80, "0" * 64, 0.1234).line() == f"3,80,{'0' * 64},0.123"


def test_threatexchanges_serialisation_is_read_and_written() -> None:
    hashed = vpdq_hash(io.BytesIO(video_of(panning_frames(50), 25)))
    text = format_threatexchange(hashed.features)
    assert json.loads(text)[1] == f"{hashed.features[1].pdq},{hashed.features[1].quality},1.000"
    back = parse_threatexchange(text)
    assert [(f.pdq, f.quality, f.timestamp) for f in back] == [(f.pdq, f.quality, f.timestamp) for f in hashed.features]
    assert [f.frame for f in back] == [0, 1]  # it keeps no frame numbers: their places
    # As python-threatexchange writes timestamps (three significant digits), read as numbers.
    assert parse_threatexchange(json.dumps([f"{'a' * 64},80,1.23e+02"]))[0].timestamp == 123.0
    with pytest.raises(UsageError, match="entry 2: not a"):
        parse_threatexchange(json.dumps([f"{'a' * 64},80,1.0", "nonsense"]))
    with pytest.raises(UsageError, match="not JSON"):
        parse_threatexchange("[")


def test_the_digest_follows_the_frame_hashes() -> None:
    a = vpdq_hash(io.BytesIO(video_of(panning_frames(50, seed=0), 25)))
    b = vpdq_hash(io.BytesIO(video_of(panning_frames(50, seed=1), 25)))
    again = vpdq_hash(io.BytesIO(video_of(panning_frames(50, seed=0), 25)))
    assert a.digest() == again.digest() != b.digest()
    assert a.summary() == {"frames": 2, "digest": a.digest()}


def test_a_truncated_video_keeps_the_frames_before_the_damage_and_says_so() -> None:
    whole = video_of(panning_frames(250), 25, container="matroska")  # no index needed to read it
    hashed = vpdq_hash(io.BytesIO(whole[: len(whole) // 2]))
    assert 2 <= len(hashed.features) < 10
    assert hashed.error is not None and hashed.error.startswith("damaged video after")


def test_an_mp4_cut_before_its_index_cannot_be_read_and_says_so() -> None:
    whole = video_of(panning_frames(100), 25)  # the index (moov) is written at the end
    hashed = vpdq_hash(io.BytesIO(whole[: len(whole) // 2]))
    assert hashed.features == [] and (hashed.error or "").startswith("not a video FFmpeg can read")


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"purple umbrella " * 100, "not a video FFmpeg can read"), (b"\x00\x00\x00\x18ftypmp42" + bytes(4000), "")],
)
def test_what_is_not_a_video_says_so(content: bytes, message: str) -> None:
    hashed = vpdq_hash(io.BytesIO(content))
    assert hashed.features == [] and hashed.error is not None and message in hashed.error


def test_the_limits_stop_hashing_with_a_reason() -> None:
    data = video_of(panning_frames(100), 25)
    huge = vpdq_hash(io.BytesIO(data), replace(MediaLimits(), max_pixels=320 * 240 - 1))
    assert huge.features == [] and "over the 76,799-pixel limit" in (huge.error or "")
    few = vpdq_hash(io.BytesIO(data), replace(MediaLimits(), video_max_frames=2))
    assert len(few.features) == 2 and "2-frame limit" in (few.error or "")
    slow = vpdq_hash(io.BytesIO(data), replace(MediaLimits(), video_decode_seconds=1e-9))
    assert len(slow.features) == 1 and "decode time limit" in (slow.error or "")


def _frames(video: bytes) -> list[VpdqFeature]:
    hashed = vpdq_hash(io.BytesIO(video))
    assert hashed.error is None, hashed.error
    return hashed.features


def test_a_copy_matches_and_an_unrelated_video_does_not() -> None:
    original = _frames(video_of(panning_frames(150, seed=0), 25))
    copy = _frames(video_of(panning_frames(150, seed=0), 25, codec="mpeg4", container="avi", bitrate=400_000))
    same = vpdq_compare(original, copy)
    assert (same.query_percent, same.compared_percent) == (100.0, 100.0) and same.matches()
    assert same.query_ranges == [(0.0, 5.0)]
    other = vpdq_compare(original, _frames(video_of(panning_frames(150, seed=2), 25)))
    assert other.query_percent < 50 and not other.matches()


def test_a_clip_of_a_longer_video_matches_it_with_the_times_it_covers() -> None:
    frames = panning_frames(250, seed=1)
    whole = _frames(video_of(frames, 25))
    clip = _frames(video_of(frames[100:175], 25))  # seconds 4 to 7 of the whole, as a video of its own
    found = vpdq_compare(clip, whole)
    assert found.query_percent == 100.0 and 20.0 <= found.compared_percent <= 50.0 and found.matches()
    assert found.query_ranges == [(0.0, 2.0)]
    assert not vpdq_compare(whole, clip).matches()  # the whole is not mostly the clip


def test_featureless_frames_are_not_matched_on() -> None:
    black = [np.zeros((240, 320, 3), dtype=np.uint8)] * 75
    frames = _frames(video_of(black, 25))
    assert frames and all(f.quality < 50 for f in frames)
    nothing = vpdq_compare(frames, frames)
    assert (nothing.query_percent, nothing.compared_percent, nothing.matches()) == (0.0, 0.0, False)


def test_a_frame_size_header_of_65535_squared_is_refused_before_decoding() -> None:
    small = video_of([np.zeros((256, 320, 3), dtype=np.uint8)] * 3, 25, codec="rawvideo", container="matroska")
    # Matroska's PixelWidth (0xB0) and PixelHeight (0xBA), each two bytes: 320 x 256 becomes 65,535 x 65,535.
    assert small.count(b"\xb0\x82\x01\x40") == small.count(b"\xba\x82\x01\x00") == 1
    huge = small.replace(b"\xb0\x82\x01\x40", b"\xb0\x82\xff\xff").replace(b"\xba\x82\x01\x00", b"\xba\x82\xff\xff")
    hashed = vpdq_hash(io.BytesIO(huge))
    assert hashed.features == [] and hashed.error == "video stream without a frame rate or frame size"


@pytest.mark.slow
def test_a_ten_hour_stream_of_black_frames_ends_at_a_stated_limit() -> None:
    endless = video_of([np.zeros((16, 16, 3), dtype=np.uint8)] * 36_000, 1)  # 10 hours at one frame a second
    hashed = vpdq_hash(io.BytesIO(endless), replace(MediaLimits(), video_max_frames=600))
    assert len(hashed.features) == 600 and all(f.quality == 0 for f in hashed.features)
    assert hashed.error == "video over the 600-frame limit: hashed to 600.000 s"
    assert not vpdq_compare(hashed.features, hashed.features).matches()  # featureless: never a match


# -- the contact sheet drawn in the hashing pass ----------------------------------

#: 30 s at 10 frames a second: tile i is the frame showing at (i + 0.5) x 1.5 s (as in test_contact_sheet.py).
THIRTY_SECONDS = [round(0.7 + 1.5 * i, 3) for i in range(20)]


class NonSeekable(io.BytesIO):
    """Bytes read as from a pipe: forwards only (PyAV asks ``seekable()``)."""

    def seekable(self) -> bool:
        return False


@pytest.fixture(scope="module")
def thirty_seconds_mkv() -> bytes:
    return video_of(panning_frames(300), 10, container="matroska")  # 320 x 240, its duration in its header


def _sheet_picture(sheet: ContactSheet | None) -> Image.Image:
    assert sheet is not None and sheet.jpeg is not None, sheet
    picture = Image.open(io.BytesIO(sheet.jpeg))
    assert picture.format == "JPEG"
    return picture


def test_the_hashing_pass_draws_the_sheet_contact_sheet_draws_in_one_pass(thirty_seconds_mkv: bytes) -> None:
    plain = vpdq_hash(io.BytesIO(thirty_seconds_mkv))
    hashed = vpdq_hash(io.BytesIO(thirty_seconds_mkv), sheet_tiles=20)
    assert plain.sheet is None and plain.error is None
    assert hashed.features == plain.features and hashed.error is None and len(hashed.features) == 30
    one_pass = contact_sheet(NonSeekable(thirty_seconds_mkv))
    assert one_pass.error is None and one_pass.timestamps == pytest.approx(THIRTY_SECONDS, abs=1e-3)
    assert hashed.sheet is not None and hashed.sheet.error is None and hashed.sheet.frames == 20
    assert hashed.sheet.timestamps == one_pass.timestamps
    assert hashed.sheet.jpeg == one_pass.jpeg  # the same frames, drawn alike
    assert _sheet_picture(hashed.sheet).size == (5 * 192, 4 * 144)


def test_a_stream_without_a_duration_gives_its_first_seconds_in_the_hashing_pass_too() -> None:
    data = video_of(panning_frames(300), 10, container="mpegts")  # through a pipe: no duration; starts at 1.4 s
    hashed = vpdq_hash(NonSeekable(data), sheet_tiles=20)
    one_pass = contact_sheet(NonSeekable(data))
    assert hashed.error is None and one_pass.error is None
    assert hashed.sheet is not None and hashed.sheet.timestamps == one_pass.timestamps
    assert hashed.sheet.timestamps == pytest.approx([float(i) for i in range(20)], abs=1e-3)
    assert _sheet_picture(hashed.sheet).size == (960, 576)


def test_a_sheet_of_another_size_and_a_short_video_drawn_once_a_frame() -> None:
    few = vpdq_hash(io.BytesIO(video_of(panning_frames(3), 25)), sheet_tiles=20)
    assert few.sheet is not None and few.sheet.error is None and few.sheet.frames == 3
    assert few.sheet.timestamps == pytest.approx([0.0, 0.04, 0.08], abs=1e-3)  # each frame once
    assert _sheet_picture(few.sheet).size == (3 * 192, 144)
    six = vpdq_hash(io.BytesIO(video_of(panning_frames(60), 10)), sheet_tiles=6)
    assert six.sheet is not None and six.sheet.timestamps == pytest.approx([0.5, 1.5, 2.5, 3.5, 4.5, 5.5], abs=1e-3)
    assert _sheet_picture(six.sheet).size == (5 * 192, 2 * 144)


def test_a_truncated_video_keeps_the_tiles_before_the_damage_with_the_hashs_error(thirty_seconds_mkv: bytes) -> None:
    cut = thirty_seconds_mkv[: len(thirty_seconds_mkv) // 2]
    hashed = vpdq_hash(io.BytesIO(cut), sheet_tiles=20)
    assert hashed.features == vpdq_hash(io.BytesIO(cut)).features and 10 <= len(hashed.features) < 20
    assert hashed.error is not None and hashed.error.startswith("damaged video after")
    assert hashed.sheet is not None and hashed.sheet.error == hashed.error
    assert hashed.sheet.frames == 10 and hashed.sheet.timestamps == pytest.approx(THIRTY_SECONDS[:10], abs=1e-3)
    assert _sheet_picture(hashed.sheet).size == (960, 288)


def test_what_is_not_a_video_gives_no_sheet_and_says_why_as_the_hash_does() -> None:
    hashed = vpdq_hash(io.BytesIO(b"purple umbrella " * 100), sheet_tiles=20)
    assert hashed.error is not None and hashed.error.startswith("not a video FFmpeg can read")
    assert hashed.sheet == ContactSheet(None, 0, [], hashed.error)
    limited = vpdq_hash(io.BytesIO(video_of(panning_frames(50), 25)), replace(MediaLimits(), video_max_frames=1), 4)
    assert limited.error is not None and "1-frame limit" in limited.error
    assert limited.sheet is not None and limited.sheet.error == limited.error  # stopped at 1 s, of 2 s
    assert limited.sheet.timestamps == pytest.approx([0.24, 0.72], abs=1e-3)  # targets 0.25, 0.75 (1.25, 1.75)


def test_hash_file_and_prepare_query_keep_the_sheet_out_of_the_output_and_it_pickles(
    tmp_path: Path, thirty_seconds_mkv: bytes
) -> None:
    path = tmp_path / "clip.mkv"
    path.write_bytes(thirty_seconds_mkv)
    hashed = hash_file(path, videos=True, sheet_tiles=20)
    assert hashed.video is not None and hashed.video.sheet is not None and hashed.video.sheet.frames == 20
    shown = json.dumps(hashed.to_dict())
    assert "sheet" not in shown and "jpeg" not in shown and '"vpdq": {"frames": 30' in shown
    without = hash_file(path, videos=True)
    assert without.video is not None and without.video.sheet is None and without.to_dict() == hashed.to_dict()
    prepared = prepare_query(thirty_seconds_mkv, "clip.mkv", MediaLimits(), sheet_tiles=20)
    assert prepared.hashes.video is not None and prepared.hashes.video.sheet == hashed.video.sheet
    travelled = pickle.loads(pickle.dumps(prepared))  # it crosses process boundaries
    assert travelled.hashes.video.sheet == hashed.video.sheet
    plain = prepare_query(thirty_seconds_mkv, "clip.mkv", MediaLimits()).hashes.video
    assert plain is not None and plain.sheet is None
