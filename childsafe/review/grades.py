"""Grades an investigator gives the pictures and videos of a case that no
list knew, stored with the case (``CASE_OUT/review.sqlite``).

A grade is a category of the case's scheme (UK A/B/C, Project VIC's numbers,
NCMEC's A1-B2: the scheme of the banks the case was scanned against) or
``not-indecent``. A change grades one or more items at once (a group graded
together) and is logged whole, with who made it and when, so the reviewer's
last change can be undone (``undo``) and the log shows every grade ever given.
With the two-person check, a grade in the scheme's most severe category
enters a bank only once a second reviewer has confirmed it (``confirm``).

Nothing here reads or shows the evidence itself: it stores labels by item id.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from childsafe.banks.schemes import SCHEMES, check_category
from childsafe.errors import UsageError
from childsafe.triage import read_case_manifest

__all__ = ["GRADES_FILE", "NOT_INDECENT", "Grade", "GradeBook", "case_scheme", "grade_keys"]

#: The file in the case output folder that holds its grades.
GRADES_FILE = "review.sqlite"
#: The grade of an item that is not indecent (it never enters a bank).
NOT_INDECENT = "not-indecent"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS grades (
    item_id TEXT PRIMARY KEY, category TEXT NOT NULL, reviewer TEXT NOT NULL, at TEXT NOT NULL,
    change INTEGER NOT NULL, confirmed_by TEXT, confirmed_at TEXT
);
CREATE TABLE IF NOT EXISTS changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, reviewer TEXT NOT NULL, at TEXT NOT NULL, action TEXT NOT NULL,
    category TEXT, before TEXT NOT NULL, undone_by INTEGER
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Grade:
    """An item's grade: its category, who gave it and when (UTC, ISO 8601),
    and who confirmed it, when the two-person check asked for that."""

    item_id: str
    category: str
    reviewer: str
    at: str
    confirmed_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The report item's ``grade`` object (docs/spec.md)."""
        return {"category": self.category, "reviewer": self.reviewer, "at": self.at}


def case_scheme(case_out: Path) -> str:
    """The category scheme of a scanned case: that of the banks it was
    matched against (from its ``manifest.json``), ``uk`` when they have
    none; a ``UsageError`` when they disagree (grade such a case per bank)."""
    manifest = read_case_manifest(case_out)
    schemes = {bank.get("scheme") for bank in manifest.get("banks", []) if bank.get("scheme") not in (None, "none")}
    if len(schemes) > 1:
        raise UsageError(f"the case's banks use different category schemes ({', '.join(sorted(schemes))})")
    return schemes.pop() if schemes else "uk"


def grade_keys(scheme: str) -> tuple[tuple[str, str], ...]:
    """The grades of ``scheme`` with the key that gives each, as ``(key,
    category)`` pairs in key order (the order of the app's buttons).

    Project VIC's categories (``us-vics``) are graded by their own numbers,
    0-4, and ``not-indecent`` by 5: the keys Autopsy gives Project VIC's
    categories (its 5 is "non-pertinent"), which its users know by heart.
    Any other scheme numbers its categories from 1, most severe first, and
    ``not-indecent`` next (UK: 1-4 for A, B, C, not-indecent; NCMEC: 1-5)."""
    if scheme == "us-vics":
        return (*((label, label) for label in sorted(SCHEMES[scheme])), ("5", NOT_INDECENT))
    return tuple((str(key), label) for key, label in enumerate((*SCHEMES[scheme], NOT_INDECENT), start=1))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class GradeBook:
    """The grades of one case, in ``CASE_OUT/review.sqlite`` (made on first use)."""

    def __init__(self, case_out: Path, scheme: str | None = None) -> None:
        self.case_out = Path(case_out)
        if not (self.case_out / "report.json").is_file():
            raise UsageError(f"no report.json in {case_out}: is this a scan's output folder?")
        self.db = sqlite3.connect(self.case_out / GRADES_FILE, isolation_level=None)
        self.db.executescript(_SCHEMA)
        stored = self.db.execute("SELECT value FROM meta WHERE key = 'scheme'").fetchone()
        self.scheme = stored[0] if stored else (scheme or case_scheme(self.case_out))
        if not stored:
            self.db.execute("INSERT INTO meta VALUES ('scheme', ?)", (self.scheme,))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> GradeBook:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def categories(self) -> tuple[str, ...]:
        """The grades a reviewer may give: the scheme's categories, most severe first, then ``not-indecent``."""
        return (*SCHEMES[self.scheme], NOT_INDECENT)

    def keys(self) -> tuple[tuple[str, str], ...]:
        """The grades with their keys, in key order (``grade_keys`` of the case's scheme)."""
        return grade_keys(self.scheme)

    def most_severe(self) -> str | None:
        """The category the two-person check applies to (``None`` for a scheme without categories)."""
        return SCHEMES[self.scheme][0] if SCHEMES[self.scheme] else None

    def _checked(self, category: str) -> str:
        if category.strip().lower() == NOT_INDECENT:
            return NOT_INDECENT
        try:
            label = check_category(self.scheme, category)
        except UsageError:
            label = None
        if label is None:
            raise UsageError(f"a grade is one of {', '.join(self.categories())} (the case's {self.scheme} scheme)")
        return label

    def grade(self, item_ids: Sequence[str], category: str, reviewer: str) -> list[Grade]:
        """Give ``item_ids`` (a group, or one item) ``category``, as one change
        that ``undo`` takes back whole; a new grade needs a new confirmation."""
        label = self._checked(category)
        if not item_ids:
            raise UsageError("grade at least one item")
        if not reviewer.strip():
            raise UsageError("a grade needs the reviewer's name")
        at = _now()
        with self._transaction() as db:
            before = self._rows(db, item_ids)
            change = db.execute(
                "INSERT INTO changes (reviewer, at, action, category, before) VALUES (?, ?, 'grade', ?, ?)",
                (reviewer, at, label, json.dumps(before)),
            ).lastrowid
            db.executemany(
                "INSERT OR REPLACE INTO grades VALUES (?, ?, ?, ?, ?, NULL, NULL)",
                [(item, label, reviewer, at, change) for item in item_ids],
            )
        return [Grade(item, label, reviewer, at) for item in item_ids]

    def confirm(self, item_ids: Sequence[str], reviewer: str) -> int:
        """A second reviewer confirms these items' grades (the two-person
        check); returns how many were confirmed. The reviewer who gave a
        grade cannot confirm it (``UsageError``)."""
        at = _now()
        with self._transaction() as db:
            before = self._rows(db, item_ids)
            own = [item for item, row in before.items() if row and row[1] == reviewer]
            if own:
                raise UsageError(f"{reviewer} graded {own[0]}: a second reviewer must confirm it")
            graded = [item for item, row in before.items() if row]
            change = db.execute(
                "INSERT INTO changes (reviewer, at, action, category, before) VALUES (?, ?, 'confirm', NULL, ?)",
                (reviewer, at, json.dumps(before)),
            ).lastrowid
            db.executemany(
                "UPDATE grades SET confirmed_by = ?, confirmed_at = ?, change = ? WHERE item_id = ?",
                [(reviewer, at, change, item) for item in graded],
            )
        return len(graded)

    def undo(self, reviewer: str) -> list[str]:
        """Take back ``reviewer``'s latest change not yet undone: each item it
        touched gets back what it had before (no grade, an earlier grade, or
        an earlier confirmation). Returns the items restored; ``UsageError``
        when the reviewer has nothing to undo, or another change touched the
        same items since (undo that one first)."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT id, before FROM changes WHERE reviewer = ? AND undone_by IS NULL AND action != 'undo'"
                " ORDER BY id DESC LIMIT 1",
                (reviewer,),
            ).fetchone()
            if row is None:
                raise UsageError(f"{reviewer} has no change to undo")
            change, before = row[0], json.loads(row[1])
            later = db.execute(
                f"SELECT COUNT(*) FROM grades WHERE change > ? AND item_id IN ({', '.join('?' * len(before))})",
                (change, *before),
            ).fetchone()[0]
            if later:
                raise UsageError("another change graded these items since: undo that one first")
            undo = db.execute(
                "INSERT INTO changes (reviewer, at, action, category, before) VALUES (?, ?, 'undo', NULL, ?)",
                (reviewer, _now(), json.dumps(self._rows(db, list(before)))),
            ).lastrowid
            db.execute("UPDATE changes SET undone_by = ? WHERE id = ?", (undo, change))
            for item, old in before.items():
                db.execute("DELETE FROM grades WHERE item_id = ?", (item,))
                if old:
                    db.execute("INSERT INTO grades VALUES (?, ?, ?, ?, ?, ?, ?)", (item, *old))
        return list(before)

    @staticmethod
    def _rows(db: sqlite3.Connection, item_ids: Sequence[str]) -> dict[str, list[Any] | None]:
        """Each item's grade row as it is now (``None``: not graded), for the change log."""
        rows: dict[str, list[Any] | None] = dict.fromkeys(item_ids)
        for start in range(0, len(item_ids), 500):
            chunk = list(item_ids[start : start + 500])
            for item, *rest in db.execute(
                f"SELECT item_id, category, reviewer, at, change, confirmed_by, confirmed_at FROM grades"
                f" WHERE item_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            ):
                rows[item] = rest
        return rows

    def grades(self) -> dict[str, Grade]:
        """Every item's grade now, by item id."""
        with closing(self.db.execute("SELECT item_id, category, reviewer, at, confirmed_by FROM grades")) as rows:
            return {row[0]: Grade(*row) for row in rows}

    def history(self) -> list[dict[str, Any]]:
        """Every change, oldest first: who, when, what, and whether it was undone."""
        keys = ("id", "reviewer", "at", "action", "category", "undone_by")
        return [
            dict(zip(keys, row, strict=True))
            for row in self.db.execute("SELECT id, reviewer, at, action, category, undone_by FROM changes ORDER BY id")
        ]
