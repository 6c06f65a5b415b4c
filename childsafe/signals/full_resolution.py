"""Full-resolution hashes, for pictures whose detail is finer than PDQ's grid.

childsafe hashes a small decode of each picture (``media.decode``), which
lands within a few bits of the full-resolution hash that hash lists are made
from. Not so on pictures of fine, regular detail (wood grain, stripes,
fabric) about as fine as PDQ's 64-point grid or finer: their hash is mostly
aliasing, and where the grid's points fall on the stripes decides it. At a
small decode those points are rounded to whole pixels a quarter of a stripe
wide, so a copy at another size (upscaled, stretched, or only decoded
differently) lands 40-80 bits away; at full resolution the rounding is a
fraction of a stripe and the copy lands where the original did.

Such a picture shows itself: halving its small decode moves its hash far
(``is_scale_sensitive``). For those only, and only when nothing cheaper
matched, the query is hashed again from a decode at least ``FULL_SIDE``
across (the ``full`` transform). ``bank add`` stores the same hash of a
bank image as ``variant:full`` when it differs from the entry's own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from PIL import Image

from childsafe.errors import MediaError
from childsafe.media.decode import decode_small_rgb
from childsafe.media.limits import MediaLimits, QueryStep
from childsafe.signals.pdq import PDQ_MIN_QUALITY, PdqHash, pdq_distance, pdq_hash

__all__ = [
    "FULL_SIDE",
    "SCALE_SENSITIVE_BITS",
    "FullSource",
    "full_resolution_hash",
    "is_scale_sensitive",
    "was_reduced",
    "query_full_source",
    "bank_full_variant",
]

#: The decode a full-resolution hash is made from keeps both sides at least
#: this long (or the whole picture, if smaller). On the benchmark's stripe
#: wallpapers 720 already loses copies (docs/detection.md).
FULL_SIDE = 1024
#: A picture whose small decode's hash moves more than this when the decode
#: is halved is hashed at full resolution too. On ordinary pictures halving
#: moves the hash 16-22 bits (median; 9 of 52 generated pictures go over);
#: on the stripe wallpapers' copies that need it, 32-56.
SCALE_SENSITIVE_BITS = 28


def was_reduced(small: Image.Image) -> bool:
    """Whether ``small`` (from ``decode_small_rgb``) is at most half of the
    picture it was decoded from: otherwise a full decode is the same picture."""
    width, height = small.info.get("decoded_from", small.size)
    return bool(min(width, height) >= 2 * min(small.size))


def is_scale_sensitive(small: Image.Image, small_hash: PdqHash) -> bool:
    """Whether the hash of ``small`` depends on the scale it was decoded at:
    the hash of it halved is more than ``SCALE_SENSITIVE_BITS`` away."""
    halved = pdq_hash(small.reduce(2))
    return pdq_distance(small_hash.hex, halved.hex) > SCALE_SENSITIVE_BITS


def full_resolution_hash(data: bytes, mime: str, limits: MediaLimits) -> PdqHash:
    """The PDQ hash of ``data`` decoded at least ``FULL_SIDE`` across (under
    the same limits on pixels and time as any decode)."""
    return pdq_hash(decode_small_rgb(data, mime, replace(limits, pdq_min_side=FULL_SIDE)))


@dataclass(frozen=True)
class FullSource:
    """What a query needs to be hashed again at full resolution: its bytes,
    kept only for the scale-sensitive pictures that may need it."""

    data: bytes
    mime: str
    limits: MediaLimits

    def hash(self) -> PdqHash | None:
        """Its full-resolution hash, or ``None`` if the larger decode fails
        (over the time limit, say: the file's small decode already stands)."""
        try:
            return full_resolution_hash(self.data, self.mime, self.limits)
        except MediaError:
            return None


def query_full_source(
    small: Image.Image, small_hash: PdqHash, data: bytes, mime: str, limits: MediaLimits
) -> FullSource | None:
    """For matching: the query's bytes if it may need a full-resolution hash
    (a reduced decode whose hash depends on scale), else ``None``."""
    if QueryStep.FULL not in limits.query_variants or not was_reduced(small) or not is_scale_sensitive(small, small_hash):
        return None
    return FullSource(data, mime, limits)


#: ``bank add`` keeps an image's full-resolution hash only if it is more than
#: this from the entry's own: closer, it is two decodes' ordinary difference
#: (a mean of 8 bits on camera photos, docs/benchmarks.md) and adds nothing.
FULL_VARIANT_MIN_BITS = 8


def bank_full_variant(
    small: Image.Image, small_hash: PdqHash, data: bytes, mime: str, limits: MediaLimits
) -> dict[str, PdqHash]:
    """For ``bank add``: ``{"variant:full": hash}`` when the image's
    full-resolution hash is usable and far from its own, else nothing."""
    full = FullSource(data, mime, limits).hash() if was_reduced(small) else None
    if (
        full is None
        or full.quality < PDQ_MIN_QUALITY
        or pdq_distance(full.hex, small_hash.hex) <= FULL_VARIANT_MIN_BITS
    ):
        return {}
    return {"variant:full": full}
