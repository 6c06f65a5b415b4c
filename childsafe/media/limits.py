"""Limits that keep one hostile or huge file from stalling or exhausting a run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from childsafe.errors import UsageError

__all__ = ["MediaLimits", "QueryStep", "QuerySteps", "ALL_QUERY_STEPS", "number_setting", "parse_query_steps"]


class QueryStep(StrEnum):
    """One query-side mechanism of matching (docs/detection.md), named as in
    ``CHILDSAFE_QUERY_VARIANTS``. A ``StrEnum``, so a step equals its name."""

    DIHEDRAL = "dihedral"  # the PDQ hash turned and flipped 8 ways
    TRIM = "trim"  # cuts: frames, borders (childsafe/signals/derived.py)
    CAPTION = "caption"  # cuts: caption bars
    GRID = "grid"  # cuts: collage cells
    KEYPOINTS = "keypoints"  # ORB keypoints against the bank-side ones (signals/keypoints.py)
    FULL = "full"  # a full-resolution hash of scale-sensitive pictures (signals/full_resolution.py)


#: The steps switched on, in the order above. A tuple of ``QueryStep``s, so
#: ``QueryStep.TRIM in steps`` and ``steps == ("trim",)`` both read naturally.
QuerySteps = tuple[QueryStep, ...]
ALL_QUERY_STEPS: QuerySteps = tuple(QueryStep)


Number = TypeVar("Number", int, float)


def number_setting(env: Mapping[str, str], setting: str, default: Number) -> Number:
    """The positive number ``env[setting]`` (``_`` allowed between digits), of
    the type of ``default``; ``default`` when unset. A ``UsageError`` naming the
    setting when it is not one."""
    text = env.get(setting)
    if text is None or not text.strip():
        return default
    try:
        value = type(default)(text.strip().replace("_", ""))
    except ValueError:
        raise UsageError(f"{setting} must be a number, not {text!r:.40}") from None
    if not value > 0:  # also refuses NaN
        raise UsageError(f"{setting} must be above 0, not {text!r:.40}")
    return value


def parse_query_steps(text: str) -> QuerySteps:
    """The steps named in ``text`` (comma-separated, or ``none``), in the
    canonical order; a ``UsageError`` naming any unknown one."""
    names = {name.strip() for name in text.split(",")} - {"", "none"}
    unknown = names - set(ALL_QUERY_STEPS)
    if unknown:
        raise UsageError(
            f"CHILDSAFE_QUERY_VARIANTS: unknown {', '.join(sorted(unknown))}; use {', '.join(ALL_QUERY_STEPS)} or none"
        )
    return tuple(step for step in ALL_QUERY_STEPS if step in names)


@dataclass(frozen=True)
class MediaLimits:
    """Bounds on decoding one image.

    - ``max_decode_bytes``: images larger than this are digested but not decoded
      (the digests stream in constant memory; decoding needs the bytes at hand).
    - ``max_pixels``: declared width x height above this is refused before any
      pixel is decoded (decompression bombs). 30000 x 30000 is refused; a
      200-megapixel panorama is allowed.
    - ``decode_seconds``: wall-clock bound on decoding one image.
    - ``pdq_min_side``: the smallest side of the decode PDQ is computed from.
      PDQ downsamples to 64 x 64 anyway; decoding at this size instead of full
      resolution is what makes hashing fast (see docs/benchmarks.md).
    - ``query_variants``: the query-side mechanisms (``QueryStep``) used when
      matching: ``dihedral``, ``trim``, ``caption``, ``grid``
      (``childsafe/signals/derived.py``), ``keypoints`` (the query's
      keypoints, looked up against the bank-side ones,
      ``childsafe/signals/keypoints.py``) and ``full`` (a full-resolution hash
      of pictures whose hash depends on the decode's scale,
      ``childsafe/signals/full_resolution.py``); each can be switched off.
    - ``bank_variants``: whether ``bank add`` also stores the hashes of
      crops and small rotations of each image, and its keypoints
      (``CHILDSAFE_BANK_VARIANTS=0`` switches them off).
    - Videos (``childsafe/signals/vpdq.py``): ``vpdq_seconds_per_hash``, the
      time between hashed frames (Meta's default, 1 s);
      ``vpdq_hash_pixels``, the largest frame PDQ hashes at its own size: a
      larger one is reduced by a whole factor first (1080p to 960 x 540),
      which is several times cheaper and moves a frame hash a few bits from
      Meta's reference (a mean of 1 to 3 in docs/benchmarks.md); set it to
      ``max_pixels`` to hash every frame at full size, as the reference does;
      ``video_decode_seconds``, the wall-clock bound on decoding one video;
      ``video_max_frames``, the most frames hashed of one video (a day at one
      a second); a frame over ``max_pixels`` is refused before decoding;
      ``video_keep_bytes``, the largest video read from memory when its
      stream cannot be read twice (an archive member): larger ones are
      digested only, and say so.
    """

    max_decode_bytes: int = 512 * 1024 * 1024
    max_pixels: int = 250_000_000
    decode_seconds: float = 30.0
    pdq_min_side: int = 256
    query_variants: QuerySteps = ALL_QUERY_STEPS
    bank_variants: bool = True
    vpdq_seconds_per_hash: float = 1.0
    vpdq_hash_pixels: int = 1280 * 720
    video_decode_seconds: float = 600.0
    video_max_frames: int = 86_400
    video_keep_bytes: int = 256 * 1024 * 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MediaLimits:
        """Limits with overrides from ``CHILDSAFE_MAX_DECODE_BYTES``,
        ``CHILDSAFE_MAX_PIXELS``, ``CHILDSAFE_DECODE_SECONDS`` and
        ``CHILDSAFE_QUERY_VARIANTS`` (a comma-separated list, or ``none``),
        ``CHILDSAFE_BANK_VARIANTS``, ``CHILDSAFE_VPDQ_SECONDS_PER_HASH``,
        ``CHILDSAFE_VPDQ_HASH_PIXELS``,
        ``CHILDSAFE_VIDEO_DECODE_SECONDS``, ``CHILDSAFE_VIDEO_MAX_FRAMES`` and
        ``CHILDSAFE_VIDEO_KEEP_BYTES``."""
        base = cls()
        variants = env.get("CHILDSAFE_QUERY_VARIANTS")
        chosen = base.query_variants if variants is None else parse_query_steps(variants)
        return cls(
            max_decode_bytes=number_setting(env, "CHILDSAFE_MAX_DECODE_BYTES", base.max_decode_bytes),
            max_pixels=number_setting(env, "CHILDSAFE_MAX_PIXELS", base.max_pixels),
            decode_seconds=number_setting(env, "CHILDSAFE_DECODE_SECONDS", base.decode_seconds),
            query_variants=chosen,
            bank_variants=env.get("CHILDSAFE_BANK_VARIANTS", "1").strip().lower() not in ("0", "no", "false", "off"),
            vpdq_seconds_per_hash=number_setting(env, "CHILDSAFE_VPDQ_SECONDS_PER_HASH", base.vpdq_seconds_per_hash),
            vpdq_hash_pixels=number_setting(env, "CHILDSAFE_VPDQ_HASH_PIXELS", base.vpdq_hash_pixels),
            video_decode_seconds=number_setting(env, "CHILDSAFE_VIDEO_DECODE_SECONDS", base.video_decode_seconds),
            video_max_frames=number_setting(env, "CHILDSAFE_VIDEO_MAX_FRAMES", base.video_max_frames),
            video_keep_bytes=number_setting(env, "CHILDSAFE_VIDEO_KEEP_BYTES", base.video_keep_bytes),
        )
