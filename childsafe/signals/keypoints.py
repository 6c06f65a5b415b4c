"""Keypoints: local features that find a known picture inside another one.

PDQ describes a whole picture, so it cannot follow an off-centre crop, a
picture shrunk into a collage cell or a screenshot: the frame changes and so
does every bit. Local features can. ORB (OpenCV) finds corners and describes
the patch around each with 256 bits; a copy of a known picture, however it
was framed, shares many such patches with it, *in the same geometric
arrangement*. Matching (``childsafe/index/keypoint_index.py``) finds patches
within Hamming distance ``KEYPOINT_RADIUS`` in the bank and then checks that
enough of them agree on one similarity transform (scale, turn, shift).

These are bank-side variants: computed by ``bank add`` from the original
image (never from a supplied hash list, which has no pixels), stored with the
entry, never exported. The query's keypoints are computed when matching.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from types import ModuleType

import numpy as np

__all__ = ["Keypoints", "image_keypoints", "opencv", "BANK_KEYPOINTS", "QUERY_KEYPOINTS", "MIN_KEYPOINTS"]

#: How many keypoints are kept of a bank image (its index memory) and of a query.
BANK_KEYPOINTS = 300
QUERY_KEYPOINTS = 500
#: A bank image with fewer keypoints (a smooth gradient, a flat logo) gets none:
#: too few to tell it from other pictures with any confidence.
MIN_KEYPOINTS = 40
#: Levels of ORB's image pyramid (each 1/1.2 the size of the one before).
LEVELS = 8
_EDGE = 15  # pixels at the border where no keypoint is looked for


@cache
def opencv() -> ModuleType:
    """OpenCV, imported on first use: it adds a tenth of a second to every
    start of the command, and most commands never need it."""
    import cv2

    # Workers are processes; OpenCV's own threads would only fight them for the cores.
    cv2.setNumThreads(1)
    return cv2


@dataclass(frozen=True)
class Keypoints:
    """Keypoints of one image: positions in pixels of an image ``width`` x
    ``height``, and a 256-bit ORB descriptor for each (32 bytes, one row)."""

    width: int
    height: int
    points: np.ndarray  # (n, 2) float32: x, y
    descriptors: np.ndarray  # (n, 32) uint8

    def __len__(self) -> int:
        return int(self.descriptors.shape[0])

    def points_bytes(self) -> bytes:
        """The positions as stored (little-endian float32 pairs)."""
        return np.ascontiguousarray(self.points, dtype="<f4").tobytes()

    def descriptors_bytes(self) -> bytes:
        """The descriptors as stored (32 bytes each)."""
        return np.ascontiguousarray(self.descriptors, dtype=np.uint8).tobytes()

    @classmethod
    def from_bytes(cls, width: int, height: int, points: bytes, descriptors: bytes) -> Keypoints:
        """Keypoints read back from storage."""
        return cls(
            width,
            height,
            np.frombuffer(points, dtype="<f4").astype(np.float32).reshape(-1, 2),
            np.frombuffer(descriptors, dtype=np.uint8).reshape(-1, 32),
        )


def image_keypoints(grey: np.ndarray, most: int) -> Keypoints:
    """Up to ``most`` ORB keypoints of a greyscale picture (the small decode
    PDQ is made from: bank images and queries are then at about the same scale)."""
    height, width = grey.shape
    if min(height, width) <= 2 * _EDGE:  # no patch fits (and OpenCV fails on a 1-pixel picture)
        return _no_keypoints(width, height)
    # edgeThreshold 15 (not 31) and fastThreshold 10 (not 20) keep keypoints
    # near the edges and on soft pictures: crops and wallpapers need both.
    orb = opencv().ORB_create(nfeatures=most, nlevels=LEVELS, edgeThreshold=_EDGE, fastThreshold=10)
    found, descriptors = orb.detectAndCompute(np.ascontiguousarray(grey, dtype=np.uint8), None)
    if descriptors is None or not found:
        return _no_keypoints(width, height)
    points = np.array([k.pt for k in found], dtype=np.float32)
    return Keypoints(width, height, points, np.ascontiguousarray(descriptors, dtype=np.uint8))


def _no_keypoints(width: int, height: int) -> Keypoints:
    return Keypoints(width, height, np.empty((0, 2), np.float32), np.empty((0, 32), np.uint8))
