"""Limits that keep one hostile or huge file from stalling or exhausting a run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["MediaLimits"]


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
    """

    max_decode_bytes: int = 512 * 1024 * 1024
    max_pixels: int = 250_000_000
    decode_seconds: float = 30.0
    pdq_min_side: int = 256

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MediaLimits:
        """Limits with overrides from ``CHILDSAFE_MAX_DECODE_BYTES``,
        ``CHILDSAFE_MAX_PIXELS`` and ``CHILDSAFE_DECODE_SECONDS``."""
        base = cls()
        return cls(
            max_decode_bytes=int(env.get("CHILDSAFE_MAX_DECODE_BYTES", base.max_decode_bytes)),
            max_pixels=int(env.get("CHILDSAFE_MAX_PIXELS", base.max_pixels)),
            decode_seconds=float(env.get("CHILDSAFE_DECODE_SECONDS", base.decode_seconds)),
        )
