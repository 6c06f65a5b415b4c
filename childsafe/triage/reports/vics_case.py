"""``case.vics.json``: a VICS 2.0 case export of the matched media, and of
the media an investigator graded (``Comments`` says who, when, in what
grade; ``not-indecent`` ones are left out), each with every place a copy was
found (MediaFiles), for Griffeye-style tools.

A copy found in a disk image has its path inside the image (``FilePath``,
``disk.E01!/p1/Users/...``) and the file system's dates (``Created``,
``Modified``, ``Accessed``), and, beyond VICS 2.0, ``ItemState``
(allocated, deleted or carved)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from childsafe.banks.schemes import category_to_vics
from childsafe.triage.case import NOT_INDECENT, UNCATEGORISED, CaseReport, item_category
from childsafe.triage.reports.registry import register

__all__ = ["VICS_CASE"]

_CONTEXT = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/CUSTOM/$metadata#Cases"


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


@dataclass(frozen=True)
class VicsCase:
    filename: str = "case.vics.json"

    def write(self, case: CaseReport, out: TextIO) -> None:
        media: dict[str, dict[str, Any]] = {}  # by sha1; only matched items, so bounded by the matches
        for item in case.items():
            grade = case.grades.get(item.id)
            if not item.matches and (grade is None or grade["category"] == NOT_INDECENT):
                continue
            hashes = item.hashes
            key = hashes.sha1 or item.id
            record = media.get(key)
            if record is None:
                if item.matches:
                    category = item_category(item.matches, case.schemes)
                    scheme = next((case.schemes[m.bank] for m in item.matches if m.category == category), "none")
                    banks = sorted({f"{m.bank} entry {m.entry_id}" for m in item.matches})
                    comment = "matched " + ", ".join(banks)
                else:
                    assert grade is not None
                    category, scheme = str(grade["category"]), case.grade_scheme
                    comment = f"graded {category} by {grade['reviewer']} at {grade['at']}"
                record = {
                    "MediaID": len(media) + 1,
                    "Category": category_to_vics(scheme, category) if category != UNCATEGORISED else 0,
                    "MD5": hashes.md5,
                    "SHA1": hashes.sha1,
                    "MediaSize": hashes.size,
                    "AlternativeHashes": [{"HashName": "PDQ", "HashValue": hashes.pdq}] if hashes.pdq else [],
                    "Comments": comment,
                    "MediaFiles": [],
                }
                media[key] = record
            folder, _, name = hashes.path.rpartition("/")
            placed = {"FileName": name, "FilePath": folder, "FileSize": hashes.size, "Modified": _iso(item.modified)}
            if item.provenance is not None:
                where = item.provenance.location
                placed.update(Created=where.created, Modified=where.modified, Accessed=where.accessed)
            # Extensions beyond VICS: which item this is, and the raw bytes of a path that is not UTF-8.
            placed["ItemID"] = item.id
            if item.path_bytes is not None:
                placed["PathBytes"] = item.path_bytes
            if item.provenance is not None:
                placed["ItemState"] = item.provenance.state
            record["MediaFiles"].append(placed)
        document = {
            "@odata.context": _CONTEXT,
            "value": [
                {
                    "CaseNumber": case.case_id,
                    "SourceApplicationName": case.tool["name"],
                    "SourceApplicationVersion": case.tool["version"],
                    "Media": list(media.values()),
                }
            ],
        }
        json.dump(document, out, ensure_ascii=False, indent=1)
        out.write("\n")


VICS_CASE = register(VicsCase())
