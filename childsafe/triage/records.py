"""The records a scan reports besides its items: the case summary (with its
counts by category) and the banks it matched against. Each is read by field
name; ``to_dict`` gives the docs/spec.md JSON, its keys in the order below."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["BankSnapshot", "CaseSummary", "CategoryCount"]


@dataclass(frozen=True)
class CategoryCount:
    """The matched items of one category: all of them, and distinct by SHA-1."""

    files: int
    unique: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON object."""
        return {"files": self.files, "unique": self.unique}


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

    def totals(self) -> dict[str, int]:
        """The counts without ``by_category`` (what the audit log records)."""
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
        return {**self.totals(), "by_category": by_category}


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
