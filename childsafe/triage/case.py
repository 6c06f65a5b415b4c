"""A finished scan as the report writers see it: settings, banks, summary,
and the items (streamed from the scan state, sorted by path)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from childsafe.banks.schemes import severity_rank
from childsafe.index import Match
from childsafe.triage.provenance import STATES
from childsafe.triage.records import BankSnapshot, CaseSummary, CategoryCount, StateCount
from childsafe.triage.state import ScanState, StoredItem

__all__ = ["CaseReport", "item_category", "schemes_of", "summarise", "UNCATEGORISED"]

UNCATEGORISED = "uncategorised"
#: The grade of a reviewed item that is not indecent (childsafe.review): counted in no category.
NOT_INDECENT = "not-indecent"


def item_category(matches: list[Match], schemes: dict[str, str]) -> str | None:
    """The most severe category among an item's matches (each judged in its
    bank's scheme); ``uncategorised`` when it matched but no match has a label."""
    if not matches:
        return None
    labelled = [m for m in matches if m.category is not None]
    if not labelled:
        return UNCATEGORISED
    worst = min(labelled, key=lambda m: (severity_rank(schemes.get(m.bank, "none"), m.category), m.bank))
    return str(worst.category)


@dataclass
class _Matched:
    """Running counts of one category while summing up."""

    files: int = 0
    unique: set[str] = field(default_factory=set)


def summarise(
    items: Iterator[StoredItem], schemes: dict[str, str], grades: Mapping[str, Mapping[str, Any]] | None = None
) -> CaseSummary:
    """The docs/spec.md ``summary`` of a case, in one pass over its items.
    Matched videos count in ``by_category`` like every file, and again in
    ``videos_by_category`` (UK sentencing counts videos apart). Items an
    investigator graded (``grades``: item id -> grade) count apart, in
    ``graded_by_category``, by their grade (``not-indecent`` is not a category).
    ``by_state`` (items from disk images, by allocated/deleted/carved) is there
    only when the evidence held a disk image (docs/spec.md, deviations)."""
    files = images = videos = errors = matched_files = unmatched_images = 0
    matched_sha1: set[str] = set()
    by_category: dict[str, _Matched] = {}
    videos_by_category: dict[str, _Matched] = {}
    graded_by_category: dict[str, _Matched] = {}
    by_state: dict[str, StateCount] = {}
    for item in items:
        hashes = item.hashes
        files += 1
        if item.provenance is not None:
            counts = by_state.get(item.provenance.state, StateCount(0, 0))
            by_state[item.provenance.state] = StateCount(counts.files + 1, counts.matched + bool(item.matches))
        images += hashes.media_type == "image"
        videos += hashes.media_type == "video"
        errors += hashes.error is not None
        if item.matches:
            matched_files += 1
            key = hashes.sha1 or item.id
            matched_sha1.add(key)
            label = item_category(item.matches, schemes) or UNCATEGORISED
            for tally in (by_category, videos_by_category) if hashes.media_type == "video" else (by_category,):
                bucket = tally.setdefault(label, _Matched())
                bucket.files += 1
                bucket.unique.add(key)
        elif hashes.media_type == "image":
            unmatched_images += 1
        grade = (grades or {}).get(item.id)
        if grade is not None and grade["category"] != NOT_INDECENT:
            graded = graded_by_category.setdefault(str(grade["category"]), _Matched())
            graded.files += 1
            graded.unique.add(hashes.sha1 or item.id)

    def ordered(counts: dict[str, _Matched]) -> dict[str, CategoryCount]:
        labels = sorted(counts, key=lambda label: (label == UNCATEGORISED, _label_rank(label, schemes), label))
        return {label: CategoryCount(counts[label].files, len(counts[label].unique)) for label in labels}

    return CaseSummary(
        files=files,
        images=images,
        videos=videos,
        errors=errors,
        matched_files=matched_files,
        matched_unique=len(matched_sha1),
        unmatched_images=unmatched_images,
        by_category=ordered(by_category),
        videos_by_category=ordered(videos_by_category),
        graded_by_category=ordered(graded_by_category),
        by_state={state: by_state[state] for state in STATES if state in by_state} if by_state else None,
    )


def schemes_of(banks: list[BankSnapshot]) -> dict[str, str]:
    """Each bank's category scheme, by bank name."""
    return {bank.name: bank.scheme for bank in banks}


def _label_rank(label: str, schemes: dict[str, str]) -> int:
    return min((severity_rank(scheme, label) for scheme in set(schemes.values())), default=0)


@dataclass
class CaseReport:
    """Everything the writers need. ``items`` and ``duplicates`` stream from
    the scan state, so a case of a million items is never all in memory."""

    state: ScanState
    case_id: str
    tool: dict[str, str]
    started_at: str
    finished_at: str | None  # None while the scan has not finished
    evidence: str
    command: list[str]
    banks: list[BankSnapshot]
    summary: CaseSummary
    #: False for the reports rewritten while a scan runs (a killed scan leaves them).
    complete: bool = True
    #: Investigators' grades by item id (``childsafe.review``): ``{"category", "reviewer", "at"}``,
    #: categories of ``grade_scheme``.
    grades: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    grade_scheme: str = "uk"

    @property
    def schemes(self) -> dict[str, str]:
        return schemes_of(self.banks)

    def items(self) -> Iterator[StoredItem]:
        return self.state.items()

    def item_dict(self, item: StoredItem) -> dict[str, Any]:
        """The docs/spec.md item object."""
        hashes = item.hashes
        placed: dict[str, Any] = {"id": item.id, "path": item.label}
        if item.path_bytes is not None:
            placed["path_bytes"] = item.path_bytes
        placed["member_index"] = item.position
        placed |= {
            "size": hashes.size,
            "media_type": hashes.media_type,
            "mime": hashes.mime,
            "md5": hashes.md5,
            "sha1": hashes.sha1,
            "sha256": hashes.sha256,
            "pdq": hashes.pdq,
            "pdq_quality": hashes.pdq_quality,
            "matches": [match.to_dict() for match in item.matches],
            "category": item_category(item.matches, self.schemes),
            "error": hashes.error,
        }
        grade = self.grades.get(item.id)
        placed["grade"] = dict(grade) if grade is not None else None
        if hashes.media_type == "video":  # as in the hash object: after error, for videos only
            placed["vpdq"] = item.vpdq
        if item.provenance is not None:  # found in a disk image: its state and location
            placed |= item.provenance.to_dict()
        return placed

    def duplicates(self) -> Iterator[tuple[str, list[str]]]:
        return self.state.duplicate_groups()
