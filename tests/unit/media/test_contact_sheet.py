"""Contact sheets of videos (``childsafe/media/contact_sheet.py``), made of
videos built here with PyAV from benign scikit-image pictures: which frames
are drawn and when, the grid, streams that cannot seek, and what damaged,
huge or slow videos give."""

from __future__ import annotations

import io
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from builders import panning_frames, video_of
from PIL import Image

import childsafe.media.contact_sheet as contact_sheet_module
from childsafe.media import MediaLimits
from childsafe.media.contact_sheet import ContactSheet, SheetTiles, contact_sheet

#: 30 s at 10 frames a second: frame n shows from n / 10 s; tile i is the frame showing at (i + 0.5) x 1.5 s.
THIRTY_SECONDS = [round(0.7 + 1.5 * i, 3) for i in range(20)]


class NonSeekable(io.BytesIO):
    """Bytes read as from a pipe: forwards only (PyAV asks ``seekable()``)."""

    def seekable(self) -> bool:
        return False


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return panning_frames(300)  # 320 x 240, panning 4 pixels a frame


@pytest.fixture(scope="module")
def thirty_seconds(frames: list[np.ndarray]) -> bytes:
    return video_of(frames, 10)


def _picture(sheet: ContactSheet) -> Image.Image:
    assert sheet.jpeg is not None, sheet.error
    picture = Image.open(io.BytesIO(sheet.jpeg))
    assert picture.format == "JPEG"
    return picture.convert("RGB")


def _difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


def test_a_30_second_video_gives_20_tiles_spread_over_it(thirty_seconds: bytes, frames: list[np.ndarray]) -> None:
    sheet = contact_sheet(io.BytesIO(thirty_seconds))
    assert sheet.error is None and sheet.frames == 20
    assert sheet.timestamps == pytest.approx(THIRTY_SECONDS, abs=1e-3)
    assert sheet.timestamps[0] < 2 and sheet.timestamps[-1] > 27
    assert all(a < b for a, b in zip(sheet.timestamps, sheet.timestamps[1:], strict=False))
    picture = _picture(sheet)
    assert picture.size == (5 * 192, 4 * 144)  # 5 columns x 4 rows of 192 x 144 tiles (320 x 240 reduced)
    # Each tile is its frame (the video pans 2.4 tile pixels a frame, so a neighbour a few frames off differs).
    for index in (0, 7, 19):
        row, column = divmod(index, 5)
        tile = picture.crop((column * 192, row * 144, (column + 1) * 192, (row + 1) * 144))
        number = round(sheet.timestamps[index] * 10)
        own = _difference(tile, Image.fromarray(frames[number]).resize((192, 144)))
        assert own < 12, own
        assert own < _difference(tile, Image.fromarray(frames[number + 5]).resize((192, 144))) / 2


def test_a_file_path_and_another_grid(tmp_path: Path, thirty_seconds: bytes) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(thirty_seconds)
    sheet = contact_sheet(str(path), frames=6, columns=4, tile_width=100)
    assert sheet.error is None and sheet.frames == 6
    assert sheet.timestamps == pytest.approx([2.5, 7.5, 12.5, 17.5, 22.5, 27.5], abs=1e-3)
    assert _picture(sheet).size == (4 * 100, 2 * 75)


def test_a_video_of_3_frames_gives_3_tiles_once_each() -> None:
    sheet = contact_sheet(io.BytesIO(video_of(panning_frames(3), 25)))
    assert sheet.error is None and sheet.frames == 3
    assert sheet.timestamps == pytest.approx([0.0, 0.04, 0.08], abs=1e-3)
    assert _picture(sheet).size == (3 * 192, 144)  # one row of as many columns as tiles


def test_seeking_and_one_pass_draw_the_same_frames(frames: list[np.ndarray]) -> None:
    # Matroska states its duration in its header, so a stream that cannot seek is spread over it too.
    data = video_of(frames, 10, container="matroska")
    sought, streamed = contact_sheet(io.BytesIO(data)), contact_sheet(NonSeekable(data))
    assert sought.error is None and streamed.error is None
    assert sought.timestamps == streamed.timestamps == pytest.approx(THIRTY_SECONDS, abs=1e-3)
    assert sought.jpeg == streamed.jpeg


def test_frequent_keyframes_are_sought_past_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    data = video_of(panning_frames(600, (160, 120)), 10, codec="mpeg4", container="matroska")  # keyframes 1.2 s apart
    decoded: list[float] = []
    offer = contact_sheet_module._Picker.offer

    def counting(picker: contact_sheet_module._Picker, frame: av.VideoFrame) -> None:
        decoded.append(frame.time or 0.0)
        offer(picker, frame)

    monkeypatch.setattr(contact_sheet_module._Picker, "offer", counting)
    sought = contact_sheet(io.BytesIO(data))
    sought_frames, decoded[:] = len(decoded), []
    streamed = contact_sheet(NonSeekable(data))
    assert sought.error is None and sought.frames == 20
    assert sought.timestamps == streamed.timestamps == pytest.approx([1.5 + 3 * i for i in range(20)], abs=1e-3)
    assert sought_frames < 300 and len(decoded) >= 580  # seeking decodes from the keyframe before each tile only


def test_a_stream_without_a_duration_gives_its_first_frames_at_one_a_second(frames: list[np.ndarray]) -> None:
    data = video_of(frames, 10, container="mpegts")  # through a pipe, MPEG-TS states no duration
    sheet = contact_sheet(NonSeekable(data))
    assert sheet.error is None and sheet.frames == 20
    assert sheet.timestamps == pytest.approx([float(i) for i in range(20)], abs=1e-3)
    assert _picture(sheet).size == (960, 576)
    # Seekable, its duration is known (and FFmpeg's seek in it lands past the target: read in one pass instead).
    assert contact_sheet(io.BytesIO(data)).timestamps == pytest.approx(THIRTY_SECONDS, abs=1e-3)


def _huge_header_avi() -> bytes:
    small = video_of([np.zeros((240, 320, 3), dtype=np.uint8)] * 3, 10, codec="rawvideo", container="avi")
    size = struct.pack("<II", 320, 240)  # the AVI main header's and the stream format's width and height
    assert small.count(size) == 2
    return small.replace(size, struct.pack("<II", 100_000, 100_000))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("text renamed .mp4", "not a video FFmpeg can read: "),
        ("MP4 cut in half", "not a video FFmpeg can read: "),
        ("frames over the pixel limit", "video frames of 320 x 240 pixels are over the 76,799-pixel limit"),
        ("header of 100000 x 100000", "video stream without a frame size FFmpeg accepts"),
    ],
)
def test_what_cannot_be_drawn_says_why_in_one_line(
    tmp_path: Path, thirty_seconds: bytes, name: str, message: str
) -> None:
    limits = MediaLimits()
    if name == "text renamed .mp4":
        path = tmp_path / "notes.mp4"
        path.write_text("purple umbrella\n" * 100)
        source: str | io.BytesIO = str(path)
    elif name == "MP4 cut in half":
        source = io.BytesIO(thirty_seconds[: len(thirty_seconds) // 2])  # its index (moov) is at the end
    elif name == "frames over the pixel limit":
        source, limits = io.BytesIO(thirty_seconds), MediaLimits(max_pixels=320 * 240 - 1)
    else:
        source = io.BytesIO(_huge_header_avi())
    sheet = contact_sheet(source, limits)
    assert (sheet.jpeg, sheet.frames, sheet.timestamps) == (None, 0, [])
    assert sheet.error is not None and sheet.error.startswith(message) and "\n" not in sheet.error


def test_a_cut_video_keeps_the_tiles_before_the_cut_and_says_so(frames: list[np.ndarray]) -> None:
    whole = video_of(frames, 10, container="matroska")  # readable without an index
    sheet = contact_sheet(io.BytesIO(whole[: len(whole) // 2]))
    assert sheet.frames == 10 and sheet.timestamps == pytest.approx(THIRTY_SECONDS[:10], abs=1e-3)
    assert _picture(sheet).size == (960, 288)
    assert (sheet.error or "").startswith("damaged video: it ends at 14.")
    assert sheet.error is not None and sheet.error.endswith("of the 30.000 s the file states; 10 frames drawn")


def test_the_decode_time_limit_stops_drawing_and_names_the_limit(thirty_seconds: bytes) -> None:
    sheet = contact_sheet(io.BytesIO(thirty_seconds), MediaLimits(video_decode_seconds=1e-9))
    assert (sheet.jpeg, sheet.frames) == (None, 0)  # one frame decoded, before the first tile's time
    assert sheet.error == "video decode time limit (1e-09 s) reached at 0.100 s; 0 of 20 frames drawn"


def test_nonsense_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        contact_sheet(io.BytesIO(b""), frames=0)


def _frame(seconds: float, key: bool = False) -> av.VideoFrame:
    """A decoded-looking frame of 0.1 s from ``seconds``."""
    frame = av.VideoFrame.from_ndarray(np.zeros((12, 16, 3), dtype=np.uint8), format="rgb24")
    frame.pts, frame.time_base, frame.duration = round(seconds * 1000), Fraction(1, 1000), 100
    frame.key_frame = key  # type: ignore[misc]  # settable, though the stubs say otherwise
    return frame


def test_a_seek_that_lands_behind_where_decoding_was_stops_seeking_and_draws_nothing_twice() -> None:
    tiles = SheetTiles(3, tile_width=16, duration=3.3, frame_seconds=0.1)  # targets 0.55, 1.65 and 2.75 s
    picker = contact_sheet_module._Picker(tiles, 0.0)
    for seconds in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5):
        picker.offer(_frame(seconds, key=seconds == 0.0))
    assert tiles.timestamps == [0.5]
    assert not picker.worth_seeking(1.0) and picker.worth_seeking(2.05)  # decoding on 0.5 s costs less than a seek
    picker.sought(2.05)
    slow = _frame(0.5, key=True)
    slow.duration = 4000  # a frame drawn already, here said to show until 4.5 s
    picker.offer(slow)
    assert tiles.timestamps == [0.5]  # not twice
    assert not picker.worth_seeking(3.05)  # the seek went back to where decoding was: decode on instead


def test_the_tiles_draw_each_frame_once_even_when_offered_again_or_showing_over_several_targets() -> None:
    tiles = SheetTiles(4, columns=2, tile_width=16, duration=4.0, frame_seconds=0.1)  # targets 0.5, 1.5, 2.5, 3.5 s
    assert tiles.targets == [0.5, 1.5, 2.5, 3.5]
    assert not tiles.offer(0.3, _frame(0.3))  # over at 0.4 s, before the first target
    assert tiles.offer(0.45, _frame(0.45))  # showing at 0.5 s
    assert not tiles.offer(0.45, _frame(0.45))  # the same frame again (a seek went back): not twice
    long = _frame(1.4)
    long.duration = 1500  # shows from 1.4 s to 2.9 s: over the targets at 1.5 and 2.5 s
    assert tiles.offer(1.4, long) and not tiles.offer(1.4, long)
    again = _frame(0.45)
    again.duration = 3500  # the first tile's frame once more, said to show until 3.95 s: over the next target
    assert not tiles.offer(0.45, again)  # drawn already: an earlier frame than the latest tile
    assert not tiles.offer(2.0, _frame(2.0)) and not tiles.offer(2.9, _frame(2.9))  # before 3.5 s, drawn for none
    assert tiles.offer(3.45, _frame(3.45)) and tiles.done and not tiles.offer(3.6, _frame(3.6))
    sheet = tiles.finish(None)
    assert (sheet.frames, sheet.timestamps, sheet.error) == (3, [0.45, 1.4, 3.45], None)
    assert _picture(sheet).size == (2 * 16, 2 * 12)
    assert len(set(sheet.timestamps)) == sheet.frames


def test_the_tiles_stop_at_a_frame_over_the_pixel_limit_and_say_why() -> None:
    tiles = SheetTiles(2, tile_width=16, duration=2.0, frame_seconds=0.1, max_pixels=16 * 12 - 1)
    assert not tiles.offer(0.5, _frame(0.5)) and tiles.done and tiles.drawn == 0
    assert tiles.finish("ignored: the tiles' own reason comes first") == ContactSheet(
        None, 0, [], "a frame of 16 x 12 pixels at 0.500 s is over the 191-pixel limit; 0 frames drawn"
    )
    with pytest.raises(ValueError, match="at least 1"):
        SheetTiles(0)
