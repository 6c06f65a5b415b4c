"""Members carved from the unallocated space of a disk image: space no
partition uses (``volumes.py``) and the free space of each file system
(``filesystems.py``). The pictures are found by their structure
(``childsafe/triage/carving.py``); each is a member with state ``carved``,
named ``$Carved/OFFSET.EXT`` under its partition's prefix, with the byte
offset in the image where it starts. The whole image is carved after all
its files are listed (so that the files' numbers do not depend on carving,
which one share of a shared image does: ``base.Share``).

Which space a file system leaves free is worked out as the complement of
the blocks its files use (``BlockRuns``), because pytsk3 has no block walk.
Every run of every file the walk met counts as used, deleted files that are
reported included, so that no content is reported twice (once as a deleted
file, once carved): what is carved is what no other item covers.
"""

from __future__ import annotations

import io
from array import array
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from childsafe.media.budgets import ScanBudgets
from childsafe.triage.carving import MAX_CARVED_BYTES, CarvedPicture, carve_pictures
from childsafe.triage.provenance import Location, Provenance
from childsafe.triage.sources.base import Member
from childsafe.triage.sources.disk_image import Media, short_reason

__all__ = ["UnallocatedRange", "UnallocatedArea", "BlockRuns", "carve"]

#: The folder carved members are named in (``$``: no file system's own folder is likely to be named so).
CARVED_FOLDER = "$Carved"


@dataclass(frozen=True)
class UnallocatedRange:
    """Bytes of the image (``offset``, ``length``) that no partition or file uses."""

    offset: int
    length: int


@dataclass(frozen=True)
class UnallocatedArea:
    """Ranges to carve, and where they lie: ``where`` gives the image (and the
    partition and file system, for a file system's free space); carved members
    are named under ``prefix``."""

    ranges: list[UnallocatedRange]
    where: Location
    prefix: str = ""


class BlockRuns:
    """The blocks a file system's files use, noted run by run as its folders
    are walked (two flat arrays: millions of runs stay a few tens of MB)."""

    def __init__(self) -> None:
        self._starts = array("q")
        self._lengths = array("q")

    def add(self, start: int, length: int) -> None:
        """Blocks ``start`` to ``start + length - 1`` are used."""
        if length > 0:
            self._starts.append(start)
            self._lengths.append(length)

    def free(self, first: int, last: int) -> list[tuple[int, int]]:
        """The runs of blocks in ``[first, last]`` that no noted run covers, as (start, length)."""
        if last < first:
            return []
        starts = np.frombuffer(self._starts, dtype=np.int64)
        order = np.argsort(starts, kind="stable")
        starts = starts[order]
        ends = starts + np.frombuffer(self._lengths, dtype=np.int64)[order]
        # Where the next run starts after every run before it has ended, there is a gap.
        covered_to = np.maximum.accumulate(ends) if len(ends) else ends
        gap_starts = np.concatenate(([first], covered_to))
        gap_ends = np.concatenate((starts, [last + 1]))
        gap_starts = np.maximum(gap_starts, first)
        gap_ends = np.minimum(gap_ends, last + 1)
        wanted = gap_ends > gap_starts
        return [(int(s), int(e - s)) for s, e in zip(gap_starts[wanted], gap_ends[wanted], strict=True)]


def carve(media: Media, areas: list[UnallocatedArea], budgets: ScanBudgets) -> Iterator[Member]:
    """Pictures carved from the ``areas`` of ``media``, each a member with
    state ``carved``, located where its area lies, at the byte offset where it starts."""
    largest = min(MAX_CARVED_BYTES, budgets.max_member_bytes)
    for area in areas:
        where, prefix = area.where, area.prefix
        for gap in area.ranges:
            try:
                for found in carve_pictures(media.read_at, gap.offset, gap.offset + gap.length, largest):
                    yield _carved(media, found, where, prefix)
            except OSError as exc:  # a part of the image that cannot be read ends that range's carving
                name = f"{prefix}{CARVED_FOLDER}/unallocated at {gap.offset}"
                location = Location(where.image, where.partition, gap.offset, where.filesystem)
                yield Member(name, gap.length, None, None, short_reason(exc), provenance=Provenance("carved", location))


def _carved(media: Media, found: CarvedPicture, where: Location, prefix: str) -> Member:
    extension = found.mime.rsplit("/", 1)[-1].replace("jpeg", "jpg")
    return Member(
        f"{prefix}{CARVED_FOLDER}/{found.offset}.{extension}",
        found.length,
        None,
        lambda: io.BytesIO(media.read_at(found.offset, found.length)),  # at most the member budget
        mime=found.mime,
        provenance=Provenance("carved", Location(where.image, where.partition, found.offset, where.filesystem)),
    )
