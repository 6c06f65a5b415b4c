"""vPDQ, Meta's video hash (facebook/ThreatExchange ``vpdq/``): the PDQ hash
of one frame every ``seconds_per_hash``, each with its quality and time,
compared later as a bag of frame hashes.

Frames are chosen as Meta's reference (``vpdq/cpp``) chooses them: the
frame rate is the stream's average rate (its ``r_frame_rate`` when that is
unknown); every frame whose number (counted from 0 in the order the decoder
gives them) is a multiple of ``int(seconds_per_hash * frame rate)`` (at
least 1) is hashed in RGB, its timestamp the frame number over the frame
rate: at the video's own size up to ``vpdq_hash_pixels`` (1280 x 720), a
larger frame first reduced by a whole factor (``_hashed_pixels``; a few
bits from the reference's full-size hash, several times cheaper). Decoding
is PyAV's (the wheel bundles FFmpeg), one thread, streaming: one frame in
memory at a time; when the stream's packets vouch for Meta's numbering
(``_frame_order``), frames that are neither hashed, drawn nor referred to
are left undecoded (``_hash_skipping``), else every frame is decoded and
counted (``_hash_frames``).

Bounded (``MediaLimits``): a frame larger than ``max_pixels`` is refused
before decoding; decoding stops after ``video_decode_seconds`` or
``video_max_frames`` hashed frames. A damaged or truncated video keeps the
frames hashed before the damage. Each of these says so in ``error``, so a
limit is never a silent "no match".

Contact sheet: with ``sheet_tiles``, the same decoding pass draws the
video's contact sheet (``childsafe/media/contact_sheet.py``'s
``SheetTiles``: the frames at the tiles' times are converted and reduced,
every other frame costs a float comparison), so a scan that keeps sheets
of unmatched videos decodes each video once.

Comparing: ``vpdq_compare`` counts, as Meta's matcher does, the share of
each video's usable frames (quality at least 50, each distinct hash once)
within 31 bits of a frame of the other, and the query's matching time
ranges; ``VpdqComparison.matches`` applies Meta's rule (80% of the query's
frames). The index that finds candidate videos comes with vPDQ banks.

Files: Meta's text format, one ``frame,quality,pdqhex,timestamp`` line a
hashed frame (``format_vpdq``, ``parse_vpdq``), and python-threatexchange's
serialisation of a vPDQ signal (``format_threatexchange``,
``parse_threatexchange``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import time
from array import array
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import IO

import av
import numpy as np
import pdqhash

from childsafe.errors import UsageError
from childsafe.fileio import atomic_file
from childsafe.media.contact_sheet import ContactSheet, SheetTiles
from childsafe.media.limits import MediaLimits
from childsafe.media.video import (
    VideoUnreadable,
    frame_rate,
    open_video,
    reason,
    seekable_source,
    start_seconds,
    stated_seconds,
)
from childsafe.signals.pdq import PDQ_MIN_QUALITY, bits_to_hex
from childsafe.signals.registry import SignalType, digest_distance, register

__all__ = [
    "VpdqFeature",
    "VideoHash",
    "vpdq_hash",
    "format_vpdq",
    "parse_vpdq",
    "parse_vpdq_line",
    "vpdq_feature",
    "format_threatexchange",
    "parse_threatexchange",
    "write_vpdq_file",
    "vpdq_folder",
    "VPDQ_MIN_QUALITY",
    "VPDQ_DISTANCE",
    "VPDQ_QUERY_PERCENT",
    "VPDQ_COMPARED_PERCENT",
    "VpdqComparison",
    "vpdq_compare",
    "FrameHashes",
    "compare_usable",
    "VPDQ",
    "vpdq_digest",
]

#: Meta's default: frames of lower quality are left out of matching.
VPDQ_MIN_QUALITY = PDQ_MIN_QUALITY


@dataclass(frozen=True)
class VpdqFeature:
    """One hashed frame: its number, PDQ quality (0-100), PDQ hash (hex) and time in seconds."""

    frame: int
    quality: int
    pdq: str
    timestamp: float

    def line(self) -> str:
        """The frame in Meta's text format (timestamps to the millisecond)."""
        return f"{self.frame},{self.quality},{self.pdq},{self.timestamp:.3f}"


@dataclass
class VideoHash:
    """A video's frame hashes, its frame rate, what stopped the hashing early,
    if anything, and its contact sheet when one was asked for (``vpdq_hash``'s
    ``sheet_tiles``), made in the same decoding."""

    features: list[VpdqFeature] = field(default_factory=list)
    frame_rate: float | None = None
    error: str | None = None
    sheet: ContactSheet | None = None

    def digest(self) -> str:
        """A SHA-256 of the frame hashes (``vpdq_digest``): equal for equal vPDQ hashes."""
        return vpdq_digest(self.features)

    def summary(self) -> dict[str, object]:
        """The ``vpdq`` object of the ``hash`` output (docs/spec.md): frames hashed and the digest."""
        return {"frames": len(self.features), "digest": self.digest()}


def vpdq_digest(features: list[VpdqFeature]) -> str:
    """A SHA-256 of the frame hashes in python-threatexchange's serialisation
    (``format_threatexchange``), which has no frame numbers: so a video's
    identity in a bank survives every format it travels in (Meta's text,
    threatexchange, CSV, VICS)."""
    return hashlib.sha256(format_threatexchange(features).encode()).hexdigest()


def format_vpdq(features: list[VpdqFeature]) -> str:
    """Meta's vPDQ text format: one ``frame,quality,pdqhex,timestamp`` line a frame."""
    return "".join(feature.line() + "\n" for feature in features)


def parse_vpdq(text: str, name: str = "vPDQ file") -> list[VpdqFeature]:
    """The frames of a file in Meta's text format; a ``UsageError`` naming the line that is wrong."""
    features = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            features.append(parse_vpdq_line(line))
        except ValueError as exc:
            raise UsageError(f"{name}, line {number}: {exc}") from None
    return features


def parse_vpdq_line(line: str) -> VpdqFeature:
    """One ``frame,quality,pdqhex,timestamp`` line; ``ValueError`` saying what is wrong."""
    parts = [part.strip() for part in line.split(",")]
    if len(parts) != 4:
        raise ValueError(f"{len(parts)} fields, not 4 (frame,quality,pdqhex,timestamp)")
    return vpdq_feature(parts[0], parts[1], parts[2], parts[3])


def format_threatexchange(features: list[VpdqFeature]) -> str:
    """python-threatexchange's serialisation of a vPDQ signal: a JSON list of
    ``"pdqhex,quality,timestamp"`` strings (it keeps no frame numbers)."""
    return json.dumps([f"{f.pdq},{f.quality},{f.timestamp:.3f}" for f in features])


def parse_threatexchange(text: str, name: str = "threatexchange vPDQ signal") -> list[VpdqFeature]:
    """The frames of python-threatexchange's serialisation, numbered by their
    place in it (it keeps no frame numbers); a ``UsageError`` naming the entry that is wrong."""
    try:
        entries = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise UsageError(f"{name}: not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(entries, list):
        raise UsageError(f'{name}: a JSON list of "pdqhex,quality,timestamp" strings is expected')
    features = []
    for number, entry in enumerate(entries):
        try:
            parts = entry.split(",") if isinstance(entry, str) else []
            if len(parts) != 3:
                raise ValueError('not a "pdqhex,quality,timestamp" string')
            features.append(vpdq_feature(str(number), parts[1], parts[0], parts[2]))
        except ValueError as exc:
            raise UsageError(f"{name}, entry {number + 1}: {exc}") from None
    return features


def vpdq_feature(frame_text: str, quality_text: str, pdq_text: str, timestamp_text: str) -> VpdqFeature:
    """One frame from its fields as text (whatever format carried them); ``ValueError`` saying which is wrong."""
    frame, quality, pdq, timestamp = int(frame_text), int(quality_text), pdq_text.strip().lower(), float(timestamp_text)
    if len(pdq) != 64 or any(c not in "0123456789abcdef" for c in pdq):
        raise ValueError("the PDQ hash is not 64 hexadecimal characters")
    if not 0 <= quality <= 100 or frame < 0 or not timestamp >= 0:
        raise ValueError("frame, quality (0-100) or timestamp out of range")
    return VpdqFeature(frame, quality, pdq, timestamp)


def vpdq_folder(folder: Path) -> Path:
    """``folder``, made if need be, for ``write_vpdq_file``; a ``UsageError`` when it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"{{field}} {folder} is not a folder: name a folder", field="vpdq_out") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"{{field}} {folder} cannot be made: {reason}", field="vpdq_out") from None
    return folder


def write_vpdq_file(folder: Path, video_name: str, features: list[VpdqFeature]) -> Path:
    """Write ``features`` in Meta's text format to ``folder/NAME.vpdq.txt``
    (``NAME`` the video's file name; ``NAME-2.vpdq.txt``... when taken), whole
    or not at all. Returns the file written."""
    base = os.path.basename(video_name.rstrip("/")) or "video"
    for number in itertools.count(1):
        target = folder / (f"{base}.vpdq.txt" if number == 1 else f"{base}-{number}.vpdq.txt")
        if not target.exists():
            break
    with atomic_file(target) as handle:
        handle.write(format_vpdq(features))
    return target


def vpdq_hash(source: str | IO[bytes], limits: MediaLimits | None = None, sheet_tiles: int = 0) -> VideoHash:
    """The vPDQ hash of the video at ``source`` (a path or a seekable binary
    stream at its start). Never raises for bad content: the ``error`` says
    what went wrong, and the frames hashed before it are kept.

    With ``sheet_tiles`` above 0, the same decoding makes the video's
    contact sheet of that many tiles (``VideoHash.sheet``; 5 columns of
    192-pixel tiles, as ``contact_sheet`` draws them in one pass): its
    ``error`` is the hash's when the decoding stopped early, and it keeps
    the tiles drawn before.

    Two ways, the same frames: when ``_frame_order`` vouches for the
    stream, decoding leaves out the frames that are neither hashed, drawn
    nor referred to by other frames (``_hash_skipping``); otherwise, or when
    that pass finds anything it did not expect, every frame is decoded and
    counted (``_hash_frames``), as Meta's reference does."""
    limits = limits or MediaLimits()
    deadline = time.monotonic() + limits.video_decode_seconds
    order = _frame_order(source, limits, deadline)
    if order is not None:
        try:
            return _hash_pass(source, limits, sheet_tiles, deadline, order)
        except _NotExact:
            _rewind(source)  # _frame_order vouches only for a source that can be read again
    return _hash_pass(source, limits, sheet_tiles, deadline, None)


class _NotExact(Exception):
    """The skipping pass cannot vouch for Meta's frame numbers: hash again decoding every frame."""


#: Decoders whose ``skip_frame = "NONREF"`` leaves out only frames no other
#: frame refers to (H.264's and HEVC's non-reference pictures, MPEG's B-frames).
_SKIPPING_CODECS = frozenset({"h264", "hevc", "mpeg4", "mpeg1video", "mpeg2video"})


def _hash_pass(
    source: str | IO[bytes], limits: MediaLimits, sheet_tiles: int, deadline: float, order: np.ndarray | None
) -> VideoHash:
    """One decoding of ``source``: skipping frames when ``order`` (``_frame_order``'s) is given, else every frame."""
    result = VideoHash()
    try:
        container, stream = open_video(source, limits, frame_rate_needed=True)
    except VideoUnreadable as exc:
        result.error = str(exc)
    else:
        with container:
            rate = frame_rate(stream)
            assert rate is not None  # open_video refuses a stream without one
            result.frame_rate = float(rate)
            tiles = None
            if sheet_tiles > 0:
                tiles = SheetTiles.for_video(container, stream, sheet_tiles, max_pixels=limits.max_pixels)
            if order is None:
                _hash_frames(container, stream, rate, limits, result, tiles, deadline)
            else:
                _hash_skipping(container, stream, rate, limits, result, tiles, deadline, order)
        if tiles is not None:
            result.sheet = tiles.finish(result.error)
    if sheet_tiles > 0 and result.sheet is None:
        result.sheet = ContactSheet(None, 0, [], result.error)
    return result


def _rewind(source: str | IO[bytes]) -> bool:
    """Whether ``source`` can be read again from its start (a path can; a stream if it seeks back)."""
    if isinstance(source, str):
        return True
    try:
        source.seek(0)
    except (OSError, ValueError, AttributeError):
        return False
    return True


def _frame_order(source: str | IO[bytes], limits: MediaLimits, deadline: float) -> np.ndarray | None:
    """The presentation times (``pts``, sorted) of every frame of the video
    stream, read from its packets without decoding them, when they vouch
    that Meta's count-based frame numbers are the frames' ranks in time: the
    frame numbered n is the one with the n-th smallest ``pts``. That holds
    when the decoder gives one frame a packet, in time order, which a stream
    shows by: a decoder that can skip frames (``_SKIPPING_CODECS``), every
    packet with a time of its own (none missing, none twice, none flagged
    corrupt or to be discarded), a keyframe first, with the earliest time
    (no leading frames that need an earlier one), and as many packets as the
    stream states frames and time. Variable frame rates are fine: only the
    order counts. ``None`` otherwise (the video is then decoded whole and
    counted); ``source`` is left at its start either way."""
    if not seekable_source(source):
        return None  # read only once: no look ahead
    try:
        container, stream = open_video(source, limits, frame_rate_needed=True)
    except VideoUnreadable:
        _rewind(source)
        return None
    times = array("q")
    try:
        with container:
            if stream.codec_context.name not in _SKIPPING_CODECS:
                return None
            for packet in container.demux(stream):
                if packet.size == 0 and packet.pts is None:
                    continue  # the end-of-stream packet that flushes the decoder
                if (
                    packet.pts is None
                    or packet.is_corrupt
                    or packet.is_discard
                    or (not times and not packet.is_keyframe)
                ):
                    return None
                times.append(packet.pts)
                if len(times) % 1024 == 0 and time.monotonic() > deadline:
                    return None
            rate = frame_rate(stream)
            assert rate is not None
            stated = stated_seconds(container, stream)
            if not times or (stream.frames and len(times) != stream.frames):
                return None
            if stated and len(times) / float(rate) + 1.0 < stated:
                return None  # cut short: the exact pass says so
    except (av.FFmpegError, ValueError):
        return None
    finally:
        _rewind(source)
    order = np.sort(np.frombuffer(times, dtype=np.int64))
    if order[0] != times[0] or np.any(order[1:] == order[:-1]):
        return None  # frames shown before the first keyframe, or two frames at one time
    return order


def _hash_skipping(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    rate: Fraction,
    limits: MediaLimits,
    result: VideoHash,
    tiles: SheetTiles | None,
    deadline: float,
    order: np.ndarray,
) -> None:
    """Hash the frames Meta's reference hashes, decoding in full only the
    packets of those frames (and of the contact sheet's, while it wants
    one): the decoder is told to leave out every other frame that no other
    frame refers to (``skip_frame = "NONREF"``), which in a stream with
    B-frames is about half of them. Frame n is the one with the n-th
    smallest ``pts`` (``order``, from ``_frame_order``). ``_NotExact`` when
    the frames that come out are not the ones expected (out of time order,
    a hashed frame missing) or the decoder fails: the exact pass then
    decodes every frame and, for a damaged video, says where."""
    per_second = float(rate)
    every = max(1, int(limits.vpdq_seconds_per_hash * per_second))
    hashed = {int(order[number]): number for number in range(0, len(order), every)}  # pts -> frame number
    context = stream.codec_context
    time_base = float(stream.time_base) if stream.time_base else 0.0
    start = start_seconds(container, stream) if tiles is not None else 0.0
    next_number = 0  # the next frame number to hash
    last_pts: int | None = None  # the latest frame out's
    try:
        for packet in container.demux(stream):
            pts = packet.pts
            wanted = pts is None or pts in hashed  # None: the packet that flushes the decoder
            if not wanted and tiles is not None and pts is not None:
                # The sheet takes the first frame showing at its next target: decode in full every
                # frame that may still show then (twice its stated span, or two frames, of margin).
                span = max(packet.duration * time_base, tiles.frame_seconds) if packet.duration else tiles.frame_seconds
                wanted = tiles.may_take(pts * time_base - start, 2 * span)
            context.skip_frame = "DEFAULT" if wanted else "NONREF"
            for frame in packet.decode():
                if frame.pts is None or (last_pts is not None and frame.pts <= last_pts):
                    raise _NotExact  # not the stream _frame_order read
                last_pts = frame.pts
                number = hashed.get(frame.pts)
                if number is not None:
                    if number != next_number:
                        raise _NotExact  # a frame to hash did not come out
                    next_number += every
                    if not _hash_frame(frame, number, per_second, limits, result):
                        return
                if tiles is not None:
                    moment = frame.time
                    assert moment is not None  # its pts is
                    tiles.offer(moment - start, frame)
                if time.monotonic() > deadline:  # as the exact pass: after a frame, numbered as it is
                    result.error = _time_limit_error(limits, (int(np.searchsorted(order, last_pts)) + 1) / per_second)
                    return
    except (av.FFmpegError, ValueError):
        raise _NotExact from None
    if next_number < len(order):
        raise _NotExact  # frames to hash that never came out


def _hash_frame(frame: av.VideoFrame, number: int, per_second: float, limits: MediaLimits, result: VideoHash) -> bool:
    """Hash ``frame``, Meta's frame ``number``, into ``result``; ``False``
    (with ``result.error`` saying why) when a limit stops the hashing instead."""
    if len(result.features) >= limits.video_max_frames:
        result.error = f"video over the {limits.video_max_frames:,}-frame limit: hashed to {number / per_second:.3f} s"
        return False
    if frame.width * frame.height > limits.max_pixels:
        result.error = f"frame {number} of {frame.width} x {frame.height} pixels is over the pixel limit"
        return False
    bits, quality = pdqhash.compute(_hashed_pixels(frame, limits.vpdq_hash_pixels))
    result.features.append(VpdqFeature(number, int(quality), bits_to_hex(bits), number / per_second))
    return True


def _hashed_pixels(frame: av.VideoFrame, most_pixels: int) -> np.ndarray:
    """The RGB pixels PDQ hashes: the frame as it is, or, when it has more
    than ``most_pixels``, reduced by the smallest whole factor that brings it
    within (1080p by 2, 4K by 3), converted and reduced in one libswscale
    call with area averaging. PDQ blurs the frame by a window of 1/128 of
    its size and keeps a 64 x 64 grid, so a whole-factor reduction changes
    few bits (a mean of a few, against Meta's reference that hashes the
    full frame; docs/benchmarks.md) and costs a fraction of PDQ at full size."""
    width, height = frame.width, frame.height
    if width * height <= most_pixels:
        return frame.to_ndarray(format="rgb24")
    factor = math.ceil(math.sqrt(width * height / most_pixels))
    reduced = frame.reformat(
        width=max(1, round(width / factor)), height=max(1, round(height / factor)), format="rgb24", interpolation="AREA"
    )
    return reduced.to_ndarray()


def _time_limit_error(limits: MediaLimits, seconds: float) -> str:
    return (
        f"video decode time limit ({limits.video_decode_seconds:g} s) reached at {seconds:.3f} s;"
        " frames after it not hashed"
    )


def _hash_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    rate: Fraction,
    limits: MediaLimits,
    result: VideoHash,
    tiles: SheetTiles | None,
    deadline: float,
) -> None:
    """The exact pass: decode every frame, number them as they come (Meta's
    count), hash every ``seconds_per_hash``-th, and tell a video cut short
    or damaged from one that ends where it says."""
    per_second = float(rate)
    every = max(1, int(limits.vpdq_seconds_per_hash * per_second))
    start = start_seconds(container, stream) if tiles is not None else 0.0
    number = 0
    try:
        for frame in container.decode(stream):
            if number % every == 0 and not _hash_frame(frame, number, per_second, limits, result):
                return
            if tiles is not None:  # the sheet's tiles take the frame time as contact_sheet does
                moment = frame.time
                tiles.offer(moment - start if moment is not None else number * tiles.frame_seconds, frame)
            number += 1
            if time.monotonic() > deadline:
                result.error = _time_limit_error(limits, number / per_second)
                return
    except (av.FFmpegError, ValueError) as exc:
        result.error = f"damaged video after {number} frames ({number / per_second:.3f} s): {reason(exc)}"
        return
    # FFmpeg ends a cut or damaged stream quietly: compare with what the file says it holds.
    stated = stated_seconds(container, stream)
    if (stream.frames and number < stream.frames) or (stated and number / per_second + 1.0 < stated):
        shown = f"{stated:.3f} s" if stated else f"{stream.frames} frames"
        result.error = (
            f"damaged video after {number} frames ({number / per_second:.3f} s of the {shown} the file states):"
            " cut short or damaged; the frames read are hashed"
        )


# -- comparing two videos -------------------------------------------------------

#: Meta's defaults (python-threatexchange): a frame matches within this Hamming distance...
VPDQ_DISTANCE = 31
#: ...and a video matches when this share of the query's frames (percent) match the other's.
VPDQ_QUERY_PERCENT = 80.0
VPDQ_COMPARED_PERCENT = 0.0
_POPCOUNT = np.array([bin(n).count("1") for n in range(256)], dtype=np.uint8)


@dataclass(frozen=True)
class VpdqComparison:
    """How much of two videos match, frame by frame: the percentages of each
    one's usable frames (quality at least ``VPDQ_MIN_QUALITY``, duplicates
    counted once) that have a frame within the distance in the other, and the
    time ranges (seconds, first and last matching frame) of the query that match."""

    query_percent: float
    compared_percent: float
    query_ranges: list[tuple[float, float]]

    def matches(
        self, query_percent: float = VPDQ_QUERY_PERCENT, compared_percent: float = VPDQ_COMPARED_PERCENT
    ) -> bool:
        """Meta's rule: both percentages at least their thresholds (and something matched)."""
        return self.query_percent > 0 and (
            self.query_percent >= query_percent and self.compared_percent >= compared_percent
        )


@dataclass(frozen=True)
class FrameHashes:
    """A video's frame hashes as arrays, as banks store them and indexes keep
    them: 45 bytes a frame where a ``VpdqFeature`` costs about 400.

    ``hashes`` is (n, 32) uint8 (PDQ's bytes, most significant first), and
    ``qualities``, ``frames`` and ``timestamps`` (seconds) have n items each."""

    hashes: np.ndarray
    qualities: np.ndarray
    frames: np.ndarray
    timestamps: np.ndarray

    @classmethod
    def of(cls, features: list[VpdqFeature]) -> FrameHashes:
        """The arrays of ``features``, in their order."""
        joined = b"".join(bytes.fromhex(f.pdq) for f in features)
        return cls(
            np.frombuffer(joined, dtype=np.uint8).reshape(-1, 32),
            np.array([f.quality for f in features], dtype=np.uint8),
            np.array([f.frame for f in features], dtype=np.uint32),
            np.array([f.timestamp for f in features], dtype=np.float64),
        )

    def __len__(self) -> int:
        return len(self.qualities)

    def features(self) -> list[VpdqFeature]:
        """The frames as ``VpdqFeature``s again (for files and reports)."""
        return [
            VpdqFeature(int(frame), int(quality), bytes(row).hex(), round(float(moment), 3))
            for row, quality, frame, moment in zip(
                self.hashes, self.qualities, self.frames, self.timestamps, strict=True
            )
        ]

    def usable(self, quality: int = VPDQ_MIN_QUALITY) -> FrameHashes:
        """The frames good enough to match on (quality at least ``quality``),
        each distinct hash once, in order: as python-threatexchange prepares them."""
        good = np.flatnonzero(self.qualities >= quality)
        _, first = np.unique(self.hashes[good], axis=0, return_index=True)
        keep = good[np.sort(first)]
        return FrameHashes(self.hashes[keep], self.qualities[keep], self.frames[keep], self.timestamps[keep])

    def to_columns(self) -> dict[str, bytes]:
        """The arrays as bytes, for the ``entry_videos`` table (little-endian, fixed widths)."""
        return {
            "hashes": self.hashes.tobytes(),
            "qualities": self.qualities.tobytes(),
            "frame_numbers": self.frames.astype("<u4").tobytes(),
            "timestamps": self.timestamps.astype("<f8").tobytes(),
        }

    @classmethod
    def from_columns(cls, hashes: bytes, qualities: bytes, frame_numbers: bytes, timestamps: bytes) -> FrameHashes:
        """``to_columns`` read back."""
        return cls(
            np.frombuffer(hashes, dtype=np.uint8).reshape(-1, 32),
            np.frombuffer(qualities, dtype=np.uint8),
            np.frombuffer(frame_numbers, dtype="<u4").astype(np.uint32),
            np.frombuffer(timestamps, dtype="<f8").astype(np.float64),
        )

    def digest(self) -> str:
        """``vpdq_digest`` of these frames."""
        return vpdq_digest(self.features())


def vpdq_compare(
    query: list[VpdqFeature],
    compared: list[VpdqFeature],
    distance: int = VPDQ_DISTANCE,
    quality: int = VPDQ_MIN_QUALITY,
    seconds_per_hash: float = 1.0,
) -> VpdqComparison:
    """Compare two videos' frame hashes as Meta's matcher does (every usable
    frame of each against every usable frame of the other; a frame matches
    within ``distance`` bits)."""
    mine, theirs = FrameHashes.of(query).usable(quality), FrameHashes.of(compared).usable(quality)
    return compare_usable(mine, theirs, distance, seconds_per_hash)


def compare_usable(
    mine: FrameHashes, theirs: FrameHashes, distance: int = VPDQ_DISTANCE, seconds_per_hash: float = 1.0
) -> VpdqComparison:
    """``vpdq_compare`` of two videos' usable frames (``FrameHashes.usable``)."""
    if not len(mine) or not len(theirs):
        return VpdqComparison(0.0, 0.0, [])
    # Hamming distance of every pair: XOR the 32 bytes, count the bits (a table, numpy throughout).
    distances = _POPCOUNT[mine.hashes[:, None, :] ^ theirs.hashes[None, :, :]].sum(axis=2, dtype=np.uint16)
    close = distances <= distance
    query_hits, compared_hits = close.any(axis=1), close.any(axis=0)
    return VpdqComparison(
        round(100.0 * float(query_hits.mean()), 3),
        round(100.0 * float(compared_hits.mean()), 3),
        _ranges(mine.timestamps[query_hits].tolist(), seconds_per_hash),
    )


def _ranges(times: list[float], seconds_per_hash: float) -> list[tuple[float, float]]:
    """Matching frames' times as ranges: frames more than 1.5 hashing intervals apart start a new range."""
    ranges: list[tuple[float, float]] = []
    for moment in sorted(times):
        if ranges and moment - ranges[-1][1] <= 1.5 * seconds_per_hash:
            ranges[-1] = (ranges[-1][0], moment)
        else:
            ranges.append((moment, moment))
    return ranges


#: The signal banks hold for a video: its value is the digest of its frame
#: hashes (``VideoHash.digest``), which identifies the entry; the frames
#: themselves are stored beside it (``entry_videos``) and matched by
#: ``vpdq_compare``'s rule, never by the digest alone.
VPDQ = register(SignalType(name="vpdq", kind="video", hex_length=64, distance=digest_distance))
