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
    - ``query_variants``: the query-side mechanisms used when matching
      (``childsafe/signals/derived.py``): ``dihedral``, ``trim``, ``caption``,
      ``grid``, and ``keypoints`` (the query's keypoints, looked up against
      the bank-side ones, ``childsafe/signals/keypoints.py``) and ``full`` (a
      full-resolution hash of pictures whose hash depends on the decode's
      scale, ``childsafe/signals/full_resolution.py``); each can be switched off.
    - ``bank_variants``: whether ``bank add`` also stores the hashes of
      crops and small rotations of each image, and its keypoints
      (``CHILDSAFE_BANK_VARIANTS=0`` switches them off).
    """

    max_decode_bytes: int = 512 * 1024 * 1024
    max_pixels: int = 250_000_000
    decode_seconds: float = 30.0
    pdq_min_side: int = 256
    query_variants: tuple[str, ...] = ("dihedral", "trim", "caption", "grid", "keypoints", "full")
    bank_variants: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MediaLimits:
        """Limits with overrides from ``CHILDSAFE_MAX_DECODE_BYTES``,
        ``CHILDSAFE_MAX_PIXELS``, ``CHILDSAFE_DECODE_SECONDS`` and
        ``CHILDSAFE_QUERY_VARIANTS`` (a comma-separated list, or ``none``) and
        ``CHILDSAFE_BANK_VARIANTS``."""
        base = cls()
        variants = env.get("CHILDSAFE_QUERY_VARIANTS")
        chosen = base.query_variants
        if variants is not None:
            chosen = tuple(v.strip() for v in variants.split(",") if v.strip() and v.strip() != "none")
            unknown = set(chosen) - set(base.query_variants)
            if unknown:
                raise ValueError(
                    f"CHILDSAFE_QUERY_VARIANTS: unknown {', '.join(sorted(unknown))}; "
                    f"use {', '.join(base.query_variants)} or none"
                )
        return cls(
            max_decode_bytes=int(env.get("CHILDSAFE_MAX_DECODE_BYTES", base.max_decode_bytes)),
            max_pixels=int(env.get("CHILDSAFE_MAX_PIXELS", base.max_pixels)),
            decode_seconds=float(env.get("CHILDSAFE_DECODE_SECONDS", base.decode_seconds)),
            query_variants=chosen,
            bank_variants=env.get("CHILDSAFE_BANK_VARIANTS", "1").strip().lower() not in ("0", "no", "false", "off"),
        )
