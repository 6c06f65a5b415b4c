"""``items.csv``: one row an item, for a spreadsheet.

Items found in a disk image fill the provenance columns (``state`` and the
``location`` fields, after the earlier columns); other items leave them empty.

Cells that a spreadsheet would run as a formula (file names starting with
``=``, ``+``, ``-``, ``@``: evidence can be named to attack the analyst) are
written with a leading apostrophe.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import Any, TextIO

from childsafe.triage.case import CaseReport
from childsafe.triage.reports.registry import register

__all__ = ["ITEMS_CSV", "COLUMNS"]

COLUMNS = [
    "path",
    "size",
    "media_type",
    "mime",
    "md5",
    "sha1",
    "sha256",
    "pdq",
    "pdq_quality",
    "category",
    "matched_banks",
    "matched_entries",
    "match_signals",
    "best_distance",
    "transforms",
    "error",
    "id",
    "path_bytes",
    "member_index",
]
#: The provenance of items found in disk images (report.json's ``state`` and ``location``).
LOCATION_COLUMNS = ["image", "partition", "offset", "filesystem", "inode", "created", "modified", "accessed"]
COLUMNS += ["state", *LOCATION_COLUMNS]


def _safe(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@dataclass(frozen=True)
class ItemsCsv:
    filename: str = "items.csv"

    def write(self, case: CaseReport, out: TextIO) -> None:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for item in case.items():
            row = case.item_dict(item)
            matches = item.matches
            row.update(
                matched_banks=" ".join(sorted({m.bank for m in matches})),
                matched_entries=" ".join(sorted({f"{m.bank}:{m.entry_id}" for m in matches})),
                match_signals=" ".join(sorted({m.signal for m in matches})),
                best_distance=min((m.distance for m in matches), default=""),
                transforms=" ".join(sorted({m.transform for m in matches})),
                path_bytes=item.path_bytes,
                member_index=" ".join(str(number) for number in item.position),
            )
            if item.provenance is not None:  # found in a disk image: the provenance columns
                where = item.provenance.location
                row.update(
                    state=item.provenance.state,
                    image=where.image,
                    partition=where.partition,
                    offset=where.offset,
                    filesystem=where.filesystem,
                    inode=where.inode,
                    created=where.created,
                    modified=where.modified,
                    accessed=where.accessed,
                )
            writer.writerow([_safe("" if row.get(c) is None else row[c]) for c in COLUMNS])


ITEMS_CSV = register(ItemsCsv())
