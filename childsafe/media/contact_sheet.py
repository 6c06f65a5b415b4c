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
tiles as it has distinct frames); ``SheetTiles`` chooses and draws them
from frames as they are decoded, so a pass decoding the video anyway (vPDQ
hashing, ``vpdq_hash(..., sheet_tiles=20)``) makes the sheet with it.
``contact_sheet`` decodes for the sheet alone: when the source can seek
and states its duration, the decoder seeks to each target unless decoding
on from where it is costs less (the keyframe interval seen so far is longer
than the gap, or a seek went back behind where decoding was); a seek that
lands after its target (FFmpeg's MPEG-TS seek may) starts the video again
in one pass. Otherwise the video is decoded in one pass, keeping the frames
at the targets, or the first ``frames`` frames at one a second when the
duration is unknown. Decoding is PyAV's, opened as vPDQ opens it
(``childsafe/media/video.py``): one thread, one decoded frame at a time,
each chosen frame reduced at once to a tile ``tile_width`` pixels wide
(Pillow), so only the tiles are kept.

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
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

import av
from PIL import Image

from childsafe.media.limits import MediaLimits
from childsafe.media.video import (
    VideoUnreadable,
    frame_rate,
    open_video,
    pixel_aspect,
    reason,
    seekable_source,
    start_seconds,
    stated_seconds,
)

__all__ = ["ContactSheet", "SheetTiles", "contact_sheet", "SHEET_JPEG_QUALITY"]

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


def _check_grid(tiles: int, columns: int, tile_width: int) -> None:
    if tiles < 1 or columns < 1 or tile_width < 1:
        raise ValueError(f"frames, columns and tile_width must be at least 1, not {tiles}, {columns}, {tile_width}")


class SheetTiles:
    """The tiles of one contact sheet, chosen and drawn from a video's frames
    as they are decoded, so that any pass decoding the video (vPDQ hashing's,
    or ``contact_sheet``'s own) makes its sheet.

    For a video of ``duration`` seconds (as stated; ``None`` when unknown),
    tile i is the frame showing at ``(i + 0.5) * duration / tiles`` seconds
    from the start (at ``i`` seconds when the duration is unknown): the first
    frame offered whose display ends after that time. Each frame is drawn at
    most once (a frame showing over several targets fills them all; one
    offered again, after a seek, is not drawn twice). ``offer`` costs a few
    float comparisons for a frame that is not the next tile; only a chosen
    frame is converted to RGB and reduced to ``tile_width`` pixels wide
    (display aspect kept, ``pixel_aspect`` the width over the height of one
    pixel), so only the tiles are held. ``frame_seconds`` is a frame's
    duration when it states none (1 / frame rate). With ``max_pixels``, a
    chosen frame larger than that stops the drawing, with the tiles so far.
    ``finish`` lays the tiles out in a grid of up to ``columns`` columns (rows
    as needed, black background) as a JPEG of quality 75.
    """

    def __init__(
        self,
        tiles: int = 20,
        columns: int = 5,
        tile_width: int = 192,
        duration: float | None = None,
        *,
        frame_seconds: float = 0.0,
        pixel_aspect: float = 1.0,
        max_pixels: int | None = None,
    ) -> None:
        _check_grid(tiles, columns, tile_width)
        self.columns, self.tile_width, self.duration = columns, tile_width, duration
        self.frame_seconds, self.pixel_aspect, self.max_pixels = frame_seconds, pixel_aspect, max_pixels
        if duration:
            self.targets = [(i + 0.5) * duration / tiles for i in range(tiles)]
        else:
            self.targets = [i * _UNKNOWN_DURATION_STEP for i in range(tiles)]
        self.next = 0  # index of the first target still to fill
        self.stopped: str | None = None  # why drawing stopped early, when it was the tiles' own reason
        self._tiles: list[_Tile] = []
        self._last_taken: float | None = None
        self._time_base: float | None = None  # the frames' time base (one stream's frames share it)
        self._before = self._after = math.inf  # a frame before the first is over before the next target
        self._advance(0)

    @classmethod
    def for_video(
        cls,
        container: av.container.InputContainer,
        stream: av.video.stream.VideoStream,
        tiles: int = 20,
        columns: int = 5,
        tile_width: int = 192,
        max_pixels: int | None = None,
    ) -> SheetTiles:
        """The tiles of the open ``stream``: its stated duration, frame rate and pixel shape."""
        rate = frame_rate(stream)
        return cls(
            tiles,
            columns,
            tile_width,
            stated_seconds(container, stream),
            frame_seconds=1 / float(rate) if rate else 0.0,
            pixel_aspect=pixel_aspect(stream),
            max_pixels=max_pixels,
        )

    @property
    def done(self) -> bool:
        """Whether every tile is drawn (or drawing stopped)."""
        return self.next >= len(self.targets)

    @property
    def drawn(self) -> int:
        """The number of tiles drawn so far."""
        return len(self._tiles)

    @property
    def timestamps(self) -> list[float]:
        """The drawn tiles' times, seconds from the video's start, to the millisecond."""
        return [round(tile.seconds, 3) for tile in self._tiles]

    def span(self, frame: av.VideoFrame) -> float:
        """How long ``frame`` shows, in seconds (``frame_seconds`` when it does not say)."""
        duration = frame.duration
        if not duration:
            return self.frame_seconds
        if self._time_base is None:
            time_base = frame.time_base
            if not time_base:
                return self.frame_seconds
            self._time_base = float(time_base)
        return duration * self._time_base

    def may_take(self, time_seconds: float, span: float) -> bool:
        """Whether a frame showing from ``time_seconds`` for at most ``span``
        seconds may still become a tile (it does not end before the next
        target): a decoding pass that leaves frames out (vPDQ's) decodes
        these in full. Targets only move later, so a frame this refuses is
        one ``offer`` would refuse too."""
        return not self.done and time_seconds + span > self._before

    def offer(self, time_seconds: float, frame: av.VideoFrame) -> bool:
        """Look at the next decoded frame, showing from ``time_seconds`` after
        the video's start: draw it if it is the next tile's. Whether it was drawn."""
        if time_seconds < self._before and time_seconds + self.span(frame) <= self._after:
            return False  # over before the next target (to the microsecond: 0.2 + 1.0 is not quite 1.1 + 0.1)
        if self.done or (self._last_taken is not None and time_seconds <= self._last_taken):
            return False  # drawn already (seen again after a seek)
        if self.max_pixels is not None and frame.width * frame.height > self.max_pixels:
            self.stopped = (
                f"a frame of {frame.width} x {frame.height} pixels at {max(0.0, time_seconds):.3f} s is over the"
                f" {self.max_pixels:,}-pixel limit; {self.drawn} frames drawn"
            )
            self._advance(len(self.targets))
            return False
        self._tiles.append(_Tile(_tile(frame, self.tile_width, self.pixel_aspect), max(0.0, time_seconds)))
        self._last_taken = time_seconds
        end = max(time_seconds + self.span(frame) - _EPSILON, time_seconds + _EPSILON)
        following = self.next
        while following < len(self.targets) and self.targets[following] < end:
            following += 1
        self._advance(following)
        return True

    def finish(self, error: str | None = None) -> ContactSheet:
        """The sheet of the tiles drawn; ``error`` says why the decoding stopped
        early, if it did (the tiles' own reason, when they stopped first, wins)."""
        error = self.stopped or error
        if not self._tiles:
            return ContactSheet(None, 0, [], error or "no frame could be decoded")
        return ContactSheet(_sheet(self._tiles, self.columns, self.tile_width), self.drawn, self.timestamps, error)

    def _advance(self, following: int) -> None:
        """Make target ``following`` the next, and the bounds ``offer`` compares with."""
        self.next = following
        if self.done:
            self._before = self._after = math.inf  # every frame is "over before": one comparison more
        else:
            self._before = self.targets[following] - _EPSILON
            self._after = self.targets[following] + _EPSILON


class _Stop(Exception):
    """Drawing stops here, for the reason given; the tiles drawn so far are kept."""


class _SeekUnreliable(Exception):
    """A seek landed after its target (MPEG-TS, for one, may): start again without seeking."""


class _Picker:
    """Gives the sheet's tiles (``SheetTiles``) the frames in decoding order,
    with their times from the video's start, and keeps what tells whether
    seeking to the next target pays."""

    def __init__(self, sheet: SheetTiles, start: float) -> None:
        self.sheet = sheet
        self.start = start
        self.decoded = 0  # frames decoded
        self.last_end: float | None = None  # where the latest decoded frame ends (seconds)
        self.position: float | None = None  # the latest decoded frame's time, None after a seek
        self.keyframe: float | None = None  # the latest keyframe seen since the last seek
        self.keyframe_gap = 0.0  # the longest stretch seen without a keyframe
        self.seek_target: float | None = None  # the target of the last seek, until a frame comes
        self.seek_from: float | None = None  # where decoding was then
        self.no_more_seeking = False  # a seek landed at or before where decoding was, or frames have no times

    def target(self) -> float:
        """The next target's time in the stream (seconds, its start included)."""
        return self.start + self.sheet.targets[self.sheet.next]

    def offer(self, frame: av.VideoFrame) -> None:
        """Look at one decoded frame: note where decoding is, and draw it when it is the next target's."""
        if frame.time is None:
            self.no_more_seeking = True  # its time is guessed from its number: only right decoding from the start
        seconds = frame.time if frame.time is not None else self.start + self.decoded * self.sheet.frame_seconds
        span = self.sheet.span(frame)
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
        self.sheet.offer(seconds - self.start, frame)

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
    _check_grid(frames, columns, tile_width)
    limits = limits or MediaLimits()
    deadline = time.monotonic() + limits.video_decode_seconds
    seeking = seekable_source(source)
    while True:
        try:
            return _open_and_draw(source, limits, frames, columns, tile_width, seeking, deadline)
        except _SeekUnreliable:
            seeking = False  # once more, from the start, in one pass
            if not isinstance(source, str):
                try:
                    source.seek(0)
                except (OSError, ValueError) as exc:
                    return ContactSheet(None, 0, [], f"video cannot be read again from its start: {reason(exc)}")


def _open_and_draw(
    source: str | IO[bytes],
    limits: MediaLimits,
    count: int,
    columns: int,
    tile_width: int,
    seeking: bool,
    deadline: float,
) -> ContactSheet:
    """The sheet of the video at ``source``, and why there is none or fewer tiles than asked, if so."""
    try:
        container, stream = open_video(source, limits)
    except VideoUnreadable as exc:
        return ContactSheet(None, 0, [], str(exc))
    with container:
        sheet = SheetTiles.for_video(container, stream, count, columns, tile_width)
        error = _draw(container, stream, limits, sheet, seeking, deadline)
    return sheet.finish(error)


def _draw(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    limits: MediaLimits,
    sheet: SheetTiles,
    seeking: bool,
    deadline: float,
) -> str | None:
    """Draw the tiles of the open video; why drawing stopped early, if it did."""
    start = start_seconds(container, stream)
    duration = sheet.duration
    picker = _Picker(sheet, start)
    time_base = stream.time_base if duration and seeking else None
    decoded: Iterator[av.VideoFrame] | None = None
    try:
        while not sheet.done:
            index, target = sheet.next, picker.target()
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
                        f" {limits.max_pixels:,}-pixel limit; {sheet.drawn} frames drawn"
                    )
                picker.offer(frame)
                if time.monotonic() > deadline:
                    raise _Stop(
                        f"video decode time limit ({limits.video_decode_seconds:g} s) reached at"
                        f" {_at(picker, start)}; {sheet.drawn} of {len(sheet.targets)} frames drawn"
                    )
                if sheet.next != index:
                    break
            else:
                break  # the end of the video
    except _Stop as stop:
        return str(stop)
    except (av.FFmpegError, ValueError) as exc:
        if not picker.decoded:
            return f"not a video FFmpeg can read: {reason(exc)}"
        return f"damaged video at {_at(picker, start)}: {reason(exc)}; {sheet.drawn} frames drawn"
    if duration and not sheet.done and (picker.last_end or 0.0) + _END_SLACK_SECONDS < start + duration:
        # FFmpeg ends a cut or damaged stream quietly: compare with what the file says it holds.
        return (
            f"damaged video: it ends at {_at(picker, start)} of the {duration:.3f} s the file states;"
            f" {sheet.drawn} frames drawn"
        )
    return None


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


def _at(picker: _Picker, start: float) -> str:
    """Where decoding is, for a message."""
    return f"{max(0.0, picker.last_end - start):.3f} s" if picker.last_end is not None else "the start"
