"""PDQ, Meta's perceptual hash for photos: 256 bits, compared by Hamming distance.

Computed with the ``pdqhash`` package (bindings to Meta's C++ reference) and
written as 64 lowercase hex characters in the bit order of the reference and
of ``threatexchange``, so hashes move between childsafe, HMA and hash-list
suppliers unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pdqhash
from PIL import Image

from childsafe.signals.registry import SignalType, register

__all__ = [
    "PDQ",
    "PdqHash",
    "DIHEDRAL_TRANSFORMS",
    "PDQ_MATCH_THRESHOLD",
    "PDQ_MIN_QUALITY",
    "pdq_distance",
    "pdq_hash",
    "pdq_dihedral_hashes",
]

#: Default match threshold: Hamming distance at most this is a match.
PDQ_MATCH_THRESHOLD = 31
#: Hashes of lower quality are kept but not used for perceptual matching.
PDQ_MIN_QUALITY = 50
#: Names of the 8 dihedral variants, in the order pdqhash computes them.
DIHEDRAL_TRANSFORMS = ("none", "rot90", "rot180", "rot270", "flipx", "flipy", "flip+1", "flip-1")


@dataclass(frozen=True)
class PdqHash:
    """A PDQ hash (64 hex characters) and its quality (0-100)."""

    hex: str
    quality: int


def pdq_distance(a: str, b: str) -> int:
    """Hamming distance between two PDQ hashes given as hex."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def bits_to_hex(bits: np.ndarray) -> str:
    """PDQ's 256 bits (as ``pdqhash`` gives them) as 64 hex characters."""
    # pdqhash gives the most significant bit first, as the reference's hex does.
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


def _rgb_array(image: Image.Image) -> np.ndarray:
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def pdq_hash(image: Image.Image) -> PdqHash:
    """The PDQ hash of ``image`` (any size; decode it small first, see media.decode)."""
    bits, quality = pdqhash.compute(_rgb_array(image))
    return PdqHash(bits_to_hex(bits), int(quality))


def pdq_dihedral_hashes(image: Image.Image) -> dict[str, PdqHash]:
    """The PDQ hashes of all 8 rotations and flips of ``image``, by transform name.

    One pass: the reference derives the 7 variants from the same DCT, so this
    costs little more than ``pdq_hash``.
    """
    vectors, quality = pdqhash.compute_dihedral(_rgb_array(image))
    return {
        name: PdqHash(bits_to_hex(bits), int(quality)) for name, bits in zip(DIHEDRAL_TRANSFORMS, vectors, strict=True)
    }


PDQ = register(SignalType(name="pdq", kind="perceptual", hex_length=64, distance=pdq_distance))
