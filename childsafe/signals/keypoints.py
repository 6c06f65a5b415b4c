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

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

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
# Corners are looked for at a contrast of 20 grey levels first, and at 10 only
# on a soft picture (a wallpaper, a blurred copy) with fewer than 150 of them.
# Strong corners are the repeatable ones: on a noisy photo the weak ones come
# in thousands, cost ORB twice the time and pair by chance with other noisy
# photos' (bench/match_stages.py: 5,729 chance pairs a picture at 10, 105 this
# way), for 0.2 points of recall on the detection benchmark.
_FAST_THRESHOLD = 20
_SOFT_FAST_THRESHOLD = 10
_FEW_CORNERS = 150


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
    grey = np.ascontiguousarray(grey, dtype=np.uint8)
    # edgeThreshold 15 (not 31) keeps keypoints near the edges: crops need them.
    found, descriptors = _orb(grey, most, _FAST_THRESHOLD)
    if len(found) < min(_FEW_CORNERS, most):
        found, descriptors = _orb(grey, most, _SOFT_FAST_THRESHOLD)
    if descriptors is None or not found:
        return _no_keypoints(width, height)
    points = np.array([k.pt for k in found], dtype=np.float32)
    return Keypoints(width, height, points, np.ascontiguousarray(descriptors, dtype=np.uint8))


def _orb(grey: np.ndarray, most: int, threshold: int) -> tuple[Sequence[Any], np.ndarray | None]:
    orb = opencv().ORB_create(nfeatures=most, nlevels=LEVELS, edgeThreshold=_EDGE, fastThreshold=threshold)
    found, descriptors = orb.detectAndCompute(grey, None)
    return found, descriptors


def _no_keypoints(width: int, height: int) -> Keypoints:
    return Keypoints(width, height, np.empty((0, 2), np.float32), np.empty((0, 32), np.uint8))
