"""Where an item found in a disk image came from (docs/spec.md, "Disk images").

An item read out of a disk image carries a ``Provenance``: its ``state``
(``allocated``: a file the file system lists; ``deleted``: a file whose name
or metadata the file system has released but whose content could still be
read; ``carved``: content found in unallocated space by its structure) and
its ``location``: the image, the partition and the byte offset in the image
of the file system it is in, the file system's type, its inode or MFT entry,
and the file system's timestamps. Items of a folder or an archive on disk
have none, and their reports are unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["Location", "Provenance", "State", "STATES", "iso_time", "provenance_from_dict"]

State = Literal["allocated", "deleted", "carved"]
#: The states in report order; a later one is "further from" an allocated file.
STATES: tuple[State, ...] = ("allocated", "deleted", "carved")


def iso_time(seconds: float | None) -> str | None:
    """A file-system timestamp as ISO 8601 in UTC; ``None`` where the file system has none (0)."""
    if not seconds:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    except (OverflowError, OSError, ValueError):  # a damaged timestamp: out of the calendar's range
        return None


@dataclass(frozen=True)
class Location:
    """Where in a disk image: ``image`` is the image's report path;
    ``partition`` its number (1 for the first partition, ``None`` for a file
    system without a partition table); ``offset`` the byte offset in the image
    of the file system (of the content itself, for carved items);
    ``filesystem`` e.g. ``ntfs``, ``fat32``, ``ext4``; ``inode`` the inode or
    MFT entry as The Sleuth Kit names it (``64-128-2`` on NTFS: entry, attribute
    type, attribute id, which ``icat`` takes); the times ISO 8601 in UTC."""

    image: str
    partition: int | None = None
    offset: int | None = None
    filesystem: str | None = None
    inode: str | None = None
    created: str | None = None
    modified: str | None = None
    accessed: str | None = None


@dataclass(frozen=True)
class Provenance:
    """An item's ``state`` and ``location``."""

    state: State
    location: Location

    def within(self, outer: Provenance) -> Provenance:
        """This provenance (from an image found inside another image, or from an
        archive in an image) as seen from the enclosing file's ``outer``: content
        recovered from a deleted file is deleted content, whatever it says itself."""
        state = max(self.state, outer.state, key=STATES.index)
        return self if state == self.state else replace(self, state=state)

    def to_dict(self) -> dict[str, Any]:
        """The report's ``state`` and ``location`` fields."""
        return {"state": self.state, "location": asdict(self.location)}


def provenance_from_dict(data: dict[str, Any]) -> Provenance:
    """The inverse of ``Provenance.to_dict`` (the scan state keeps it as JSON)."""
    return Provenance(data["state"], Location(**data["location"]))
