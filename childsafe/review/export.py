"""Grades flow on: into the case's reports (``write_graded_reports``: each
item's ``grade``, ``summary.graded_by_category``), and graded pictures into a
bank (``export_graded``), so that what an investigator graded in one case is
found by the next scan, and can be sent on to other forces (as VICS or CSV,
``bank export``).

Each graded item becomes one entry with its digests (md5, sha1, sha256) and,
when usable, its PDQ hash; its category is the grade; its source id names
the case and the item; its note says who graded it, when, and who confirmed
it. ``not-indecent`` grades never enter a bank. With the two-person check
(the default), a grade in the scheme's most severe category enters only once
a second reviewer has confirmed it.

A graded video enters with its vPDQ frame hashes as well, as ``bank add``
adds a video (its ``vpdq`` signal, the frames beside it), so the next scan
finds re-encoded copies of it. The scan keeps an unmatched video's frames
in the case's item store (``case.sqlite``, ``ScanState.frames``), never in
its reports. A case scanned before frames were kept, or a video none of
whose frames could be hashed, has none: such a video enters by its digests
alone, and ``videos_without_frames`` counts it. Adding is ``add_entries``'s:
one transaction, audited, and idempotent (an item exported twice is one
entry).
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from childsafe.banks import NewEntry, add_entries, create_bank, list_banks
from childsafe.config import Settings
from childsafe.review.grades import NOT_INDECENT, GradeBook
from childsafe.review.groups import load_review_items
from childsafe.triage import ScanResult, read_case_manifest, rewrite_case_reports
from childsafe.triage.state import ScanState

__all__ = ["GradedExport", "export_graded", "write_graded_reports"]


@dataclass(frozen=True)
class GradedExport:
    """What ``review export-bank`` did: entries added, and the graded items left out and why."""

    bank: str
    added: int
    already_in_bank: int
    not_indecent: int
    awaiting_confirmation: int
    #: Graded videos that entered by their digests alone: the case keeps no
    #: frame hashes of them (scanned before frames were kept, or none hashed).
    videos_without_frames: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "bank": self.bank,
            "added": self.added,
            "already_in_bank": self.already_in_bank,
            "not_indecent": self.not_indecent,
            "awaiting_confirmation": self.awaiting_confirmation,
            "videos_without_frames": self.videos_without_frames,
        }

    def frames_note(self) -> str:
        """What entering by digests alone means for ``videos_without_frames`` videos ("" for none)."""
        if not self.videos_without_frames:
            return ""
        return (
            f"{self.videos_without_frames} graded videos entered by their digests only (this case keeps no frame"
            " hashes of them: scanned by an older childsafe, or no frame could be hashed), so a re-encoded copy"
            " is not found; scan the evidence again into a new folder to add them by their frames."
        )


def export_graded(
    engine: Engine, case_out: Path, bank: str, actor: str | None = None, two_person: bool = True
) -> GradedExport:
    """Add the graded items of the case in ``case_out`` to ``bank`` (made,
    in the case's scheme, if there is none of that name)."""
    case_out = Path(case_out)
    with GradeBook(case_out) as book:
        grades, scheme, severe = book.grades(), book.scheme, book.most_severe()
    case_id = str(read_case_manifest(case_out).get("case_id", ""))
    entries: list[NewEntry] = []
    not_indecent = awaiting = without_frames = 0
    # The frames of graded videos, from the case's item store (never its reports).
    with closing(ScanState.of_case(case_out)) as store:
        for item in load_review_items(case_out):
            grade = grades.get(item.id)
            if grade is None:
                continue
            if grade.category == NOT_INDECENT:
                not_indecent += 1
                continue
            if two_person and grade.category == severe and grade.confirmed_by is None:
                awaiting += 1
                continue
            signals = [("md5", item.md5), ("sha1", item.sha1), ("sha256", item.sha256)]
            if item.links_by_pdq():
                signals.append(("pdq", item.pdq))
            note = f"graded {grade.category} in case {case_id} by {grade.reviewer} at {grade.at}"
            if grade.confirmed_by:
                note += f", confirmed by {grade.confirmed_by}"
            source = f"{case_id}:{item.id}"[:200]
            video = store.frames(item.id) if item.media_type == "video" else None
            without_frames += item.media_type == "video" and video is None
            entries.append(NewEntry([(s, v) for s, v in signals if v], grade.category, source, note, video=video))
    if not any(known.name == bank for known in list_banks(engine)):
        create_bank(engine, bank, scheme=scheme, actor=actor)
    added = add_entries(engine, bank, entries, actor).added if entries else 0
    return GradedExport(bank, added, len(entries) - added, not_indecent, awaiting, without_frames)


def write_graded_reports(case_out: Path, settings: Settings, actor: str | None = None) -> ScanResult:
    """Write the case's reports again with its grades (``rewrite_case_reports``)."""
    with GradeBook(Path(case_out)) as book:
        grades = {item: grade.to_dict() for item, grade in book.grades().items()}
        scheme = book.scheme
    return rewrite_case_reports(Path(case_out), grades, settings, actor, scheme)
