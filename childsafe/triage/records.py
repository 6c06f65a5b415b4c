"""The records a scan reports besides its items: the case summary (with its
counts by category, and by state for the items of disk images) and the banks
it matched against. Each is read by field
name; ``to_dict`` gives the docs/spec.md JSON, its keys in the order below."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["BankSnapshot", "CaseSummary", "CategoryCount", "StateCount"]


@dataclass(frozen=True)
class CategoryCount:
    """The matched items of one category: all of them, and distinct by SHA-1."""

    files: int
    unique: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON object."""
        return {"files": self.files, "unique": self.unique}


@dataclass(frozen=True)
class StateCount:
    """The items of disk images in one state (allocated, deleted, carved): all
    of them, and those that matched."""

    files: int
    matched: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON object."""
        return {"files": self.files, "matched": self.matched}


@dataclass(frozen=True)
class CaseSummary:
    """The docs/spec.md ``summary`` of a case."""

    files: int
    images: int
    videos: int
    errors: int
    matched_files: int
    matched_unique: int
    unmatched_images: int
    #: Most severe category first, ``uncategorised`` last.
    by_category: dict[str, CategoryCount]
    #: The matched videos alone, in the same order (also counted in ``by_category``).
    videos_by_category: dict[str, CategoryCount] = field(default_factory=dict)
    #: Items an investigator graded, by grade (apart from what banks matched).
    graded_by_category: dict[str, CategoryCount] = field(default_factory=dict)
    #: Items of disk images by state, in ``provenance.STATES`` order; ``None``
    #: when the evidence held no disk image (then the JSON has no ``by_state``).
    by_state: dict[str, StateCount] | None = None

    def totals(self) -> dict[str, int]:
        """The counts without the ``..._by_category`` and ``by_state`` (what the audit log records)."""
        return {
            "files": self.files,
            "images": self.images,
            "videos": self.videos,
            "errors": self.errors,
            "matched_files": self.matched_files,
            "matched_unique": self.matched_unique,
            "unmatched_images": self.unmatched_images,
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON object."""
        by_category = {label: count.to_dict() for label, count in self.by_category.items()}
        videos = {label: count.to_dict() for label, count in self.videos_by_category.items()}
        graded = {label: count.to_dict() for label, count in self.graded_by_category.items()}
        summary = {
            **self.totals(),
            "by_category": by_category,
            "videos_by_category": videos,
            "graded_by_category": graded,
        }
        if self.by_state is not None:
            summary["by_state"] = {state: count.to_dict() for state, count in self.by_state.items()}
        return summary


@dataclass(frozen=True)
class BankSnapshot:
    """A bank as a scan matched against it: the SHA-256 ``digest`` of its
    content (signals and categories of every entry) says exactly which list it was."""

    name: str
    scheme: str
    kind: str
    entries: int
    digest: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (in the scan state and ``manifest.json``)."""
        return {
            "name": self.name,
            "scheme": self.scheme,
            "kind": self.kind,
            "entries": self.entries,
            "digest": self.digest,
        }
