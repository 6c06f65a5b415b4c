"""Query-side variants: PDQ hashes of the parts of a picture that may be a
known image, for hash lists that arrive as hashes only.

Sharing changes pictures in ways PDQ does not see through: a border or
letterbox bars around them, a phone screenshot's frame, a caption bar above
or below, or a collage of several pictures. Each mechanism cuts out what may
be the original and hashes it; a match reports which cut found it (its
``transform``):

- ``trim``: lines at the edges in the colour of the outermost line, nearly
  all one colour (solid borders, letterboxing, a screenshot's background and
  the icons and text on it), are cut away.
- ``trim-blur``: lines at the edges much flatter than the middle of the
  picture (a blurred, enlarged copy of the picture used as its border);
  ``trim-edge``: the lines outside the sharpest step in the outer third of
  each side (the hard edge of a picture pasted on such a border).
- ``caption``: after ``trim``, rows at the top and bottom in one colour with
  text on it (a meme's caption bars) are cut away too.
- ``grid-RxC-rIcJ``: when the picture divides into a 1x2, 2x1, 2x2 or 3x3
  grid (a line of one colour, or a sharp step, runs right across it at each
  division), each cell, trimmed of the collage's gaps.

Safeguards against false matches: cuts are made only where the frame or
grid is seen; a cut smaller than ``MIN_SIDE`` pixels, or less than 3% smaller
than what it was cut from, is not hashed; a hash below PDQ_MIN_QUALITY is
dropped; and the matcher holds derived hashes to ``DERIVED_MAX_DISTANCE``.
The work is done on a copy at most ``WORK_SIDE`` pixels across, so that all
of it costs about as much as hashing the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from childsafe.signals.pdq import PDQ_MIN_QUALITY, PdqHash, pdq_hash

__all__ = ["DERIVED_MAX_DISTANCE", "MECHANISMS", "MIN_SIDE", "WORK_SIDE", "bank_variant_hashes", "derived_pdq_hashes"]

#: Every query-side mechanism, by the name used to switch it on or off.
MECHANISMS = ("dihedral", "trim", "caption", "grid")
#: A cut smaller than this (pixels, either side, in the working copy) is not hashed.
MIN_SIDE = 48
#: Derived hashes match only this close (the plain PDQ threshold is 31).
DERIVED_MAX_DISTANCE = 31
#: The working copy's longer side (about: it is reduced by a whole factor).
WORK_SIDE = 512

_GRIDS = ((1, 2), (2, 1), (2, 2), (3, 3))
# Grey levels: a pixel this close to a colour is that colour. Frames, bars and
# gaps are flat colours, which JPEG keeps within a few levels; a wider margin
# (12) also took the edges of smooth skies and gradients for frames, so that
# most pictures had a cut hashed for nothing (detect_quality: recall unchanged
# or better at 4, a quarter less CPU on pictures that match nothing).
_NEAR = 4.0

Box = tuple[int, int, int, int]  # left, top, right, bottom


def _median(values: np.ndarray) -> float:
    """The middle value (the upper one of an even count). By hand because
    ``np.median``'s checks cost more than the work on these short profiles,
    and a picture's cuts take a dozen of them."""
    middle = len(values) // 2
    return float(np.partition(values, middle)[middle])


def _run_in_colour(lines: np.ndarray, share: float, from_end: bool) -> int:
    """How many lines from the start (or the end) are, nearly all of them,
    the colour of the outermost line."""
    ordered = lines[::-1] if from_end else lines
    colour = _median(ordered[0])
    quarter = (len(ordered) + 3) // 4
    for offset, part in ((0, ordered[:quarter]), (quarter, ordered[quarter:])):  # most frames are thin
        same = (np.abs(part - colour) <= _NEAR).mean(axis=1)
        outside = np.flatnonzero(same < share)
        if len(outside):
            return offset + int(outside[0])
    return len(lines)


@dataclass(frozen=True)
class _Profile:
    """One axis of a picture, line by line: how much it changes along each
    line, and the step from each line to the next."""

    along: np.ndarray
    across: np.ndarray

    @classmethod
    def of(cls, gray: np.ndarray) -> tuple[_Profile, _Profile]:
        """The profiles of a picture's rows and of its columns (one pass of steps each way)."""
        sideways, downwards = np.abs(np.diff(gray, axis=1)), np.abs(np.diff(gray, axis=0))
        return (
            cls(sideways.mean(axis=1), downwards.mean(axis=1)),
            cls(downwards.mean(axis=0), sideways.mean(axis=0)),
        )


def _run_flat(profile: _Profile, from_end: bool) -> int:
    """How many lines from the start (or the end) are much flatter than the picture's middle."""
    energy = profile.along + np.append(profile.across, profile.across[-1:])
    if from_end:
        energy = energy[::-1]
    middle = _median(energy[len(energy) // 4 : 3 * len(energy) // 4])
    if middle < 4:
        return 0  # the picture itself is flat: a flat edge says nothing
    busy = np.flatnonzero(energy > 0.25 * middle)
    return int(busy[0]) if len(busy) else 0


def _run_to_step(profile: _Profile, from_end: bool) -> int:
    """How many lines from the start (or the end) lie outside a sharp step
    within the outer third (the hard edge of a picture pasted on a blurred
    copy of itself), or 0 without one."""
    steps = profile.across[::-1] if from_end else profile.across
    outer = steps[: max(1, len(steps) // 3)]
    strongest = int(np.argmax(outer))
    return strongest + 1 if outer[strongest] > max(8.0, 5 * _median(steps)) else 0


def _trim(gray: np.ndarray, share: float) -> Box:
    """The box left when the edge lines in one colour (frame) are cut away."""
    height, width = gray.shape
    top, bottom = _run_in_colour(gray, share, False), _run_in_colour(gray, share, True)
    left, right = _run_in_colour(gray.T, share, False), _run_in_colour(gray.T, share, True)
    return left, top, max(left, width - right), max(top, height - bottom)


def _trim_by(rows: _Profile, columns: _Profile, run: Callable[[_Profile, bool], int]) -> Box:
    """The box left when ``run`` says how many edge lines to cut on each side."""
    height, width = len(rows.along), len(columns.along)
    top, bottom, left, right = run(rows, False), run(rows, True), run(columns, False), run(columns, True)
    return left, top, max(left, width - right), max(top, height - bottom)


def _worth_hashing(box: Box, within: Box) -> bool:
    width, height = box[2] - box[0], box[3] - box[1]
    area = (within[2] - within[0]) * (within[3] - within[1])
    return width >= MIN_SIDE and height >= MIN_SIDE and width * height <= 0.97 * area


def _line_breaks(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """For each row: whether it is all one colour (a collage's gap), the step
    to the next row, and the typical step."""
    sample = gray[:, ::2]  # every other pixel of a row says as much, for half the work
    # Mean absolute deviation, not a share near the median: a median per row costs a sort.
    uniform = np.abs(sample - sample.mean(axis=1, keepdims=True)).mean(axis=1) <= 3.0
    steps = np.abs(np.diff(gray, axis=0)).mean(axis=1)
    return uniform, steps, _median(steps) + 1.0


def _divisions(breaks: tuple[np.ndarray, np.ndarray, float], parts: int) -> list[int] | None:
    """Where the rows divide into ``parts`` pictures (a row of one colour or
    a sharp step near each k/parts of the height), or None."""
    uniform, steps, typical = breaks
    height = len(uniform)
    cuts = [0]
    for k in range(1, parts):
        centre = round(k * height / parts)
        reach = max(2, height // 50)
        window = range(max(1, centre - reach), min(height - 1, centre + reach + 1))
        separators = [i for i in window if uniform[i]]
        jumps = [i for i in window if steps[i - 1] > 6 * typical]
        if separators:
            cuts.append(separators[len(separators) // 2])
        elif jumps:
            cuts.append(max(jumps, key=lambda i: steps[i - 1]))
        else:
            return None
    return [*cuts, height]


def _working_copy(image: Image.Image) -> Image.Image:
    """``image`` reduced by a whole factor (fast: box averaging) to at most WORK_SIDE."""
    factor = -(-max(image.size) // WORK_SIDE)
    return image.reduce(factor) if factor >= 2 else image


def derived_pdq_hashes(image: Image.Image, mechanisms: Iterable[str] = MECHANISMS) -> dict[str, PdqHash]:
    """The derived hashes of ``image`` (an RGB decode), by transform name,
    for the mechanisms asked for (``dihedral`` is not one of these: see
    ``pdq_dihedral_hashes``)."""
    wanted = set(mechanisms)
    work = _working_copy(image)
    if min(work.size) < MIN_SIDE:
        return {}  # too small to cut anything from
    gray = np.asarray(work.convert("L"), dtype=np.float32)
    whole: Box = (0, 0, work.width, work.height)
    found: dict[str, PdqHash] = {}

    def hash_cut(name: str, box: Box, within: Box) -> bool:
        if not _worth_hashing(box, within):
            return False
        hashed = pdq_hash(work.crop(box))
        if hashed.quality >= PDQ_MIN_QUALITY:
            found[name] = hashed
        return True

    picture = whole
    if "trim" in wanted:
        box = _trim(gray, 0.9)
        if hash_cut("trim", box, whole):
            picture = box
        row_profile, column_profile = _Profile.of(gray)
        blurred = _trim_by(row_profile, column_profile, _run_flat)
        if blurred != box:
            hash_cut("trim-blur", blurred, whole)
        edged = _trim_by(row_profile, column_profile, _run_to_step)
        if edged not in (box, blurred):
            hash_cut("trim-edge", edged, whole)
    inner = gray[picture[1] : picture[3], picture[0] : picture[2]]
    if "caption" in wanted and inner.size:
        top = _run_in_colour(inner, 0.55, False)
        bottom = _run_in_colour(inner, 0.55, True)
        box = (picture[0], picture[1] + top, picture[2], max(picture[1] + top, picture[3] - bottom))
        if top or bottom:
            hash_cut("caption", box, picture)
    if "grid" in wanted and inner.size:
        row_breaks, column_breaks = _line_breaks(inner), _line_breaks(inner.T)
        for rows, columns in _GRIDS:
            row_cuts, column_cuts = _divisions(row_breaks, rows), _divisions(column_breaks, columns)
            if row_cuts is None or column_cuts is None:
                continue
            for r in range(rows):
                for c in range(columns):
                    cell = inner[row_cuts[r] : row_cuts[r + 1], column_cuts[c] : column_cuts[c + 1]]
                    if min(cell.shape) < MIN_SIDE:
                        continue
                    gap = _trim(cell, 0.9)
                    left, top = picture[0] + column_cuts[c], picture[1] + row_cuts[r]
                    box = (left + gap[0], top + gap[1], left + gap[2], top + gap[3])
                    hash_cut(f"grid-{rows}x{columns}-r{r}c{c}", box, picture)
    return found


#: Bank-side variants (``bank_variant_hashes``). PDQ moves 20-40 bits for a
#: crop 2% deeper per side, or a turn of 1-2 degrees more, so the variants are
#: dense: centre crops every 2% from 4% to 24% a side, and turns of 2 to 10
#: degrees each way, both as editors do them (corners filled black, same
#: size) and with the canvas grown to hold the whole picture.
BANK_CROPS = tuple(range(4, 25, 2))
BANK_TURNS = (-10, -8, -6, -4, -2, 2, 4, 6, 8, 10)
#: Shapes that apps crop pictures to (the largest centred crop of that shape:
#: a square profile or grid tile, portrait and landscape posts, stories, wide
#: cards, and cells of collage templates), width x height.
BANK_ASPECTS = ((1, 1), (4, 5), (3, 4), (2, 3), (9, 16), (16, 9), (4, 3), (3, 2))
_TURNS = {
    "turn90": Image.Transpose.ROTATE_90,
    "turn180": Image.Transpose.ROTATE_180,
    "turn270": Image.Transpose.ROTATE_270,
    "mirror": Image.Transpose.FLIP_LEFT_RIGHT,
    "flip": Image.Transpose.FLIP_TOP_BOTTOM,
    "transpose": Image.Transpose.TRANSPOSE,
    "transverse": Image.Transpose.TRANSVERSE,
}


def _fitted(width: int, height: int, aspect: float) -> Box | None:
    """The largest centred box of ``aspect`` (width / height) in the picture,
    or None when the picture has about that shape already (a crop of less than 3%)."""
    if width / height > aspect:
        keep = round(height * aspect)
        cut = (width - keep) // 2
        box = (cut, 0, cut + keep, height)
    else:
        keep = round(width / aspect)
        cut = (height - keep) // 2
        box = (0, cut, width, cut + keep)
    return box if _worth_hashing(box, (0, 0, width, height)) else None


def bank_variant_hashes(image: Image.Image) -> dict[str, PdqHash]:
    """PDQ hashes of the turns and mirrors, crops and small rotations of a
    bank's own image (when the original is at hand, ``bank add``), by variant
    name (``variant:...``): they make such copies findable. Variants below
    PDQ_MIN_QUALITY are dropped."""
    work = _working_copy(image)
    width, height = work.size
    found: dict[str, PdqHash] = {}
    if min(work.size) < MIN_SIDE:
        return found  # too small for crops and turns to mean anything

    def keep(name: str, variant: Image.Image) -> None:
        hashed = pdq_hash(variant)
        if hashed.quality >= PDQ_MIN_QUALITY:
            found[f"variant:{name}"] = hashed

    # The turned and mirrored picture itself: the query's dihedral hashes come
    # from one DCT, which on fine textures (wood, stripes) can land 40-60 bits
    # from the hash of the actually turned picture.
    for name, method in _TURNS.items():
        keep(name, image.transpose(method))
    for percent in BANK_CROPS:
        dx, dy = round(width * percent / 100), round(height * percent / 100)
        keep(f"crop-{percent}", work.crop((dx, dy, width - dx, height - dy)))
    for wide, high in BANK_ASPECTS:
        box = _fitted(width, height, wide / high)
        if box is not None:
            keep(f"fit-{wide}x{high}", work.crop(box))
    for angle in BANK_TURNS:
        keep(f"rotate{angle:+d}", work.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=(0, 0, 0)))
        grown = work.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(0, 0, 0))
        keep(f"rotate{angle:+d}-whole", grown)
    return found
