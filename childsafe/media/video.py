"""Opening videos with PyAV (its wheel bundles FFmpeg), as vPDQ hashing
(``childsafe/signals/vpdq.py``) and contact sheets (``contact_sheet.py``)
both do: the first video stream, refused before decoding when its header
states no frame size or one over ``max_pixels``, decoded on one thread;
its frame rate, start, stated duration and pixel shape; and one-line
reasons for what went wrong.
"""

from __future__ import annotations

import os
import stat
from fractions import Fraction
from typing import IO

import av

from childsafe.media.limits import MediaLimits

__all__ = [
    "VideoUnreadable",
    "open_video",
    "frame_rate",
    "start_seconds",
    "stated_seconds",
    "pixel_aspect",
    "reason",
    "seekable_source",
]


class VideoUnreadable(Exception):
    """Why a video cannot be decoded at all, in one line (its ``str``)."""


def open_video(
    source: str | IO[bytes], limits: MediaLimits, *, frame_rate_needed: bool = False
) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """The open container at ``source`` (a path or a binary stream at its
    start) and its first video stream, set to decode on one thread; close
    the container when done (``with container:``). ``VideoUnreadable`` when
    FFmpeg cannot read it, it has no video stream, its header states no
    frame size (or, with ``frame_rate_needed``, no frame rate), or frames
    over ``limits.max_pixels``."""
    try:
        container = av.open(source, mode="r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoUnreadable(f"not a video FFmpeg can read: {reason(exc)}") from None
    try:
        streams = container.streams.video
        if not streams:
            raise VideoUnreadable("no video stream")
        stream = streams[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if frame_rate_needed and (frame_rate(stream) is None or not width or not height):
            raise VideoUnreadable("video stream without a frame rate or frame size")
        if not width or not height:
            raise VideoUnreadable("video stream without a frame size FFmpeg accepts")
        if width * height > limits.max_pixels:
            raise VideoUnreadable(
                f"video frames of {width} x {height} pixels are over the {limits.max_pixels:,}-pixel limit"
            )
        stream.thread_type = "SLICE"  # within one frame only: one worker, one core
        stream.codec_context.thread_count = 1
    except BaseException:
        container.close()
        raise
    return container, stream


def frame_rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    """The stream's average frame rate (its stated or guessed rate when that is unknown)."""
    for rate in (stream.average_rate, stream.base_rate, stream.guessed_rate):
        if rate:
            return Fraction(rate)
    return None


def start_seconds(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    """When the video stream starts (MPEG-TS streams rarely start at 0)."""
    if stream.start_time is not None and stream.time_base:
        return float(stream.start_time * stream.time_base)
    return container.start_time / av.time_base if container.start_time else 0.0


def stated_seconds(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """How long the video stream says it is (the file's duration, when the stream does not say)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration and container.duration > 0 else None


def pixel_aspect(stream: av.video.stream.VideoStream) -> float:
    """The width over the height of one pixel as displayed (1 when the stream does not say)."""
    aspect = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    return float(aspect) if aspect and aspect > 0 else 1.0


def reason(exc: BaseException) -> str:
    """An exception's message in one line of at most 200 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def seekable_source(source: str | IO[bytes]) -> bool:
    """Whether a video can be read more than once from its start: a path of
    a regular file (not a FIFO), or a stream that says it can seek."""
    if isinstance(source, str):
        try:
            return stat.S_ISREG(os.stat(source).st_mode)
        except OSError:
            return False
    try:
        return bool(source.seekable())
    except (AttributeError, OSError, ValueError):
        return False
