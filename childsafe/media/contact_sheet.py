"""Contact sheets of videos: a grid of frames spread evenly over a video, as
one small JPEG.

Why: a video that matched nothing still has to be graded by a reviewer, and
watching every unmatched video of a case takes hours; a single small picture
of 20 frames taken across the whole video lets the reviewer grade most of
them at a glance and open only the few that need it (IPED, the forensic
tool, shows videos as 20-frame sheets for the same reason). The sheet is
made as it is; blurring for review is applied later, elsewhere.

How: for a video of ``D`` seconds the tiles are the frames showing at
``(i + 0.5) * D / frames``, each drawn once (a short video gives as many
tiles as it has distinct frames). When the source can seek and states its
duration, the decoder seeks to each target unless decoding on from where it
is costs less (the keyframe interval seen so far is longer than the gap, or
a seek went back behind where decoding was); a seek that lands after its
target (FFmpeg's MPEG-TS seek may) starts the video again in one pass.
Otherwise the video is decoded in one pass, keeping the frames at the
targets, or the first ``frames`` frames at one a second when the duration is
unknown. Decoding is PyAV's as in ``childsafe/signals/vpdq.py``: one thread,
one decoded frame at a time, each chosen frame reduced at once to a tile
``tile_width`` pixels wide (Pillow), so only the tiles are kept.

Bounded (``MediaLimits``): frames over ``max_pixels`` are refused (from the
stream's header, before decoding, or frame by frame), and the whole work (a
second pass included) stops after ``video_decode_seconds``, with the tiles
drawn so far. Bad content never
raises: ``error`` says in one line why there is no sheet or why it has fewer
tiles than asked.
"""

from __future__ import annotations

import io
import math
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import IO

import av
from PIL import Image

from childsafe.media.limits import MediaLimits

__all__ = ["ContactSheet", "contact_sheet", "SHEET_JPEG_QUALITY"]

#: JPEG quality of the sheet: small, and plenty to grade from.
SHEET_JPEG_QUALITY = 75
#: A tile is at most this many times as high as it is wide (a 1 x 60,000-pixel "video" keeps a bounded tile).
_MAX_TILE_ASPECT = 4
#: How far before the stated end the last frame may end without the video counting as cut short.
_END_SLACK_SECONDS = 1.0
#: Times closer than this (seconds) are equal.
_EPSILON = 1e-6
#: Frames one a second when the duration is unknown.
_UNKNOWN_DURATION_STEP = 1.0


@dataclass(frozen=True)
class ContactSheet:
    """A video's contact sheet: the JPEG (``None`` when no frame could be
    drawn), the number of tiles drawn, each tile's time in seconds from the
    video's start (to the millisecond), and why there is no sheet or fewer
    tiles than asked (``None`` when the video was drawn whole: then fewer
    tiles means the video has no more distinct frames)."""

    jpeg: bytes | None
    frames: int
    timestamps: list[float] = field(default_factory=list)
    error: str | None = None


@dataclass
class _Tile:
    image: Image.Image
    seconds: float


class _Stop(Exception):
    """Drawing stops here, for the reason given; the tiles drawn so far are kept."""


class _SeekUnreliable(Exception):
    """A seek landed after its target (MPEG-TS, for one, may): start again without seeking."""


class _Picker:
    """Takes, from frames in decoding order, the frame showing at each target
    time (the first whose display ends after it), each frame at most once;
    and keeps what tells whether seeking to the next target pays."""

    def __init__(
        self, targets: list[float], start: float, fallback_span: float, tile_width: int, pixel_aspect: float
    ) -> None:
        self.targets = targets
        self.start = start
        self.fallback_span = fallback_span  # a frame's duration when it does not say (1 / frame rate)
        self.tile_width = tile_width
        self.pixel_aspect = pixel_aspect  # width over height of one pixel as displayed
        self.tiles: list[_Tile] = []
        self.next = 0  # index of the first target still to fill
        self.decoded = 0  # frames decoded
        self.last_taken: float | None = None
        self.last_end: float | None = None  # where the latest decoded frame ends (seconds)
        self.position: float | None = None  # the latest decoded frame's time, None after a seek
        self.keyframe: float | None = None  # the latest keyframe seen since the last seek
        self.keyframe_gap = 0.0  # the longest stretch seen without a keyframe
        self.seek_target: float | None = None  # the target of the last seek, until a frame comes
        self.seek_from: float | None = None  # where decoding was then
        self.no_more_seeking = False  # a seek landed at or before where decoding was, or frames have no times

    @property
    def done(self) -> bool:
        return self.next >= len(self.targets)

    def offer(self, frame: av.VideoFrame) -> None:
        """Look at one decoded frame: note where decoding is, and draw it when it is the next target's."""
        if frame.time is None:
            self.no_more_seeking = True  # its time is guessed from its number: only right decoding from the start
        seconds = frame.time if frame.time is not None else self.start + self.decoded * self.fallback_span
        span = float(frame.duration * frame.time_base) if frame.duration and frame.time_base else self.fallback_span
        end = seconds + span
        self.decoded += 1
        if self.seek_target is not None:
            if seconds > self.seek_target + 2 * span:
                raise _SeekUnreliable
            if self.seek_from is not None and seconds <= self.seek_from:
                self.no_more_seeking = True  # decoding on would have cost less
        self.position, self.last_end, self.seek_target, self.seek_from = seconds, end, None, None
        if frame.key_frame:
            self.keyframe = seconds
        elif self.keyframe is not None:
            self.keyframe_gap = max(self.keyframe_gap, end - self.keyframe)
        if self.done or (end <= self.targets[self.next] + _EPSILON and seconds < self.targets[self.next] - _EPSILON):
            return  # over before the target (to the microsecond: 0.2 + 1.0 is not quite 1.1 + 0.1)
        if self.last_taken is not None and seconds <= self.last_taken:
            return  # drawn already (seen again after a seek)
        self.tiles.append(_Tile(_tile(frame, self.tile_width, self.pixel_aspect), max(0.0, seconds - self.start)))
        self.last_taken = seconds
        while not self.done and self.targets[self.next] < max(end - _EPSILON, seconds + _EPSILON):
            self.next += 1

    def worth_seeking(self, target: float) -> bool:
        """Whether seeking to ``target`` is likely cheaper than decoding on to it: the gap is
        longer than the longest keyframe interval seen (a seek lands on the keyframe before it),
        and no seek so far has landed at or before where decoding already was."""
        if self.no_more_seeking:
            return False
        return self.position is None or target - self.position > self.keyframe_gap

    def sought(self, target: float) -> None:
        """The decoder has just sought to ``target``: the next frame starts a new stretch."""
        self.seek_target, self.seek_from = target, self.position
        self.position = self.keyframe = None


def contact_sheet(
    source: str | IO[bytes],
    limits: MediaLimits | None = None,
    *,
    frames: int = 20,
    columns: int = 5,
    tile_width: int = 192,
) -> ContactSheet:
    """The contact sheet of the video at ``source`` (a path or a binary stream
    at its start, seekable or not): up to ``frames`` frames spread evenly over
    the video, each reduced to ``tile_width`` pixels wide (aspect kept), in a
    grid of ``columns`` columns (rows as needed, black background), as a JPEG
    of quality 75. Never raises for bad content: the sheet's ``error`` says
    why there is none, or why it has fewer tiles; a ``ValueError`` for
    ``frames``, ``columns`` or ``tile_width`` below 1."""
    if frames < 1 or columns < 1 or tile_width < 1:
        raise ValueError(f"frames, columns and tile_width must be at least 1, not {frames}, {columns}, {tile_width}")
    limits = limits or MediaLimits()
    deadline = time.monotonic() + limits.video_decode_seconds
    seeking = _seekable(source)
    while True:
        try:
            tiles, error = _open_and_draw(source, limits, frames, tile_width, seeking, deadline)
            break
        except _SeekUnreliable:
            seeking = False  # once more, from the start, in one pass
            if not isinstance(source, str):
                try:
                    source.seek(0)
                except (OSError, ValueError) as exc:
                    return ContactSheet(None, 0, [], f"video cannot be read again from its start: {_reason(exc)}")
    if not tiles:
        return ContactSheet(None, 0, [], error or "no frame could be decoded")
    return ContactSheet(_sheet(tiles, columns, tile_width), len(tiles), [round(t.seconds, 3) for t in tiles], error)


def _open_and_draw(
    source: str | IO[bytes], limits: MediaLimits, count: int, tile_width: int, seeking: bool, deadline: float
) -> tuple[list[_Tile], str | None]:
    """The tiles of the video at ``source``, and why there are none or fewer than asked, if so."""
    try:
        container = av.open(source, mode="r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        return [], f"not a video FFmpeg can read: {_reason(exc)}"
    with container:
        if not container.streams.video:
            return [], "no video stream"
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            return [], "video stream without a frame size FFmpeg accepts"
        if width * height > limits.max_pixels:
            return [], f"video frames of {width} x {height} pixels are over the {limits.max_pixels:,}-pixel limit"
        stream.thread_type = "SLICE"  # within one frame only: one worker, one core
        stream.codec_context.thread_count = 1
        return _draw(container, stream, limits, count, tile_width, seeking, deadline)


def _draw(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    limits: MediaLimits,
    count: int,
    tile_width: int,
    seeking: bool,
    deadline: float,
) -> tuple[list[_Tile], str | None]:
    """The tiles of the open video, and why drawing stopped early, if it did."""
    start = _start_seconds(container, stream)
    duration = _stated_seconds(container, stream)
    rate = _frame_rate(stream)
    if duration:
        targets = [start + (i + 0.5) * duration / count for i in range(count)]
    else:
        targets = [start + i * _UNKNOWN_DURATION_STEP for i in range(count)]
    aspect = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    pixel_aspect = float(aspect) if aspect and aspect > 0 else 1.0
    picker = _Picker(targets, start, 1 / float(rate) if rate else 0.0, tile_width, pixel_aspect)
    time_base = stream.time_base if duration and seeking else None
    decoded: Iterator[av.VideoFrame] | None = None
    try:
        while not picker.done:
            target = picker.targets[picker.next]
            if time_base is not None and picker.worth_seeking(target):
                try:
                    container.seek(int(target / time_base), stream=stream, backward=True, any_frame=False)
                    decoded = None
                    picker.sought(target)
                except (av.FFmpegError, OverflowError):  # a format that cannot, or an absurd stated duration
                    time_base = None  # carry on decoding from where it is
            if decoded is None:
                decoded = container.decode(stream)
            for frame in decoded:
                if frame.width * frame.height > limits.max_pixels:
                    raise _Stop(
                        f"a frame of {frame.width} x {frame.height} pixels at {_at(picker, start)} is over the"
                        f" {limits.max_pixels:,}-pixel limit; {len(picker.tiles)} frames drawn"
                    )
                picker.offer(frame)
                if time.monotonic() > deadline:
                    raise _Stop(
                        f"video decode time limit ({limits.video_decode_seconds:g} s) reached at"
                        f" {_at(picker, start)}; {len(picker.tiles)} of {count} frames drawn"
                    )
                if picker.done or picker.targets[picker.next] != target:
                    break
            else:
                break  # the end of the video
    except _Stop as stop:
        return picker.tiles, str(stop)
    except (av.FFmpegError, ValueError) as exc:
        if not picker.decoded:
            return [], f"not a video FFmpeg can read: {_reason(exc)}"
        return picker.tiles, f"damaged video at {_at(picker, start)}: {_reason(exc)}; {len(picker.tiles)} frames drawn"
    if duration and not picker.done and (picker.last_end or 0.0) + _END_SLACK_SECONDS < start + duration:
        # FFmpeg ends a cut or damaged stream quietly: compare with what the file says it holds.
        return picker.tiles, (
            f"damaged video: it ends at {_at(picker, start)} of the {duration:.3f} s the file states;"
            f" {len(picker.tiles)} frames drawn"
        )
    return picker.tiles, None


def _tile(frame: av.VideoFrame, tile_width: int, pixel_aspect: float) -> Image.Image:
    """The frame reduced to ``tile_width`` pixels wide, its display aspect kept (within bounds)."""
    image = Image.fromarray(frame.to_ndarray(format="rgb24"))
    display_width = frame.width * pixel_aspect
    height = round(tile_width * frame.height / display_width) if display_width > 0 else tile_width
    height = min(max(height, 1), tile_width * _MAX_TILE_ASPECT)
    return image.resize((tile_width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)


def _sheet(tiles: list[_Tile], columns: int, tile_width: int) -> bytes:
    """The tiles in a grid (as many columns as tiles, up to ``columns``), as a JPEG."""
    columns = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    cell_height = max(tile.image.height for tile in tiles)
    sheet = Image.new("RGB", (columns * tile_width, rows * cell_height))
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        sheet.paste(tile.image, (column * tile_width, row * cell_height))
    buffer = io.BytesIO()
    sheet.save(buffer, format="JPEG", quality=SHEET_JPEG_QUALITY)
    return buffer.getvalue()


def _seekable(source: str | IO[bytes]) -> bool:
    """Whether the source can seek: a regular file, or a stream that says it can."""
    if isinstance(source, str):
        try:
            return stat.S_ISREG(os.stat(source).st_mode)
        except OSError:
            return False
    try:
        return bool(source.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _frame_rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    for rate in (stream.average_rate, stream.base_rate, stream.guessed_rate):
        if rate:
            return Fraction(rate)
    return None


def _start_seconds(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    """When the video stream starts (MPEG-TS streams rarely start at 0)."""
    if stream.start_time is not None and stream.time_base:
        return float(stream.start_time * stream.time_base)
    return container.start_time / av.time_base if container.start_time else 0.0


def _stated_seconds(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """How long the video stream says it is (the file's duration, when the stream does not say)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration and container.duration > 0 else None


def _at(picker: _Picker, start: float) -> str:
    """Where decoding is, for a message."""
    return f"{max(0.0, picker.last_end - start):.3f} s" if picker.last_end is not None else "the start"


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
