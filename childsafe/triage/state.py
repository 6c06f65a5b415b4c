"""The saved state of a scan, so that a killed scan can be resumed.

A small SQLite file in the output folder (``.childsafe-scan/state.sqlite``):
the scan's settings, which pieces of evidence are done, and every item's
hashes and matches. Each piece of evidence is written with all its items in
one transaction, so a scan killed at any moment leaves either all of a piece
or none of it. Raw sqlite3, not the project database: this file belongs to
the case folder, is written by several worker processes, and is deleted when
the reports are complete.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from childsafe.index import Match
from childsafe.signals import FileHashes

__all__ = ["ScanState", "StoredItem", "STATE_FOLDER"]

STATE_FOLDER = ".childsafe-scan"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS done (task TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS items (
    path TEXT PRIMARY KEY, task TEXT NOT NULL, size INTEGER NOT NULL, media_type TEXT NOT NULL,
    mime TEXT NOT NULL, md5 TEXT, sha1 TEXT, sha256 TEXT, pdq TEXT, pdq_quality INTEGER,
    error TEXT, modified REAL, matches TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_items_sha1 ON items (sha1);
"""


@dataclass
class StoredItem:
    """An item as saved: hashes, when modified, and its matches."""

    hashes: FileHashes
    modified: float | None
    matches: list[dict[str, Any]]


class ScanState:
    """Open (creating if needed) the state file of the scan writing to ``out``."""

    def __init__(self, out: Path) -> None:
        self.folder = out / STATE_FOLDER
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "state.sqlite"
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def meta(self) -> dict[str, Any]:
        return {key: json.loads(value) for key, value in self.db.execute("SELECT key, value FROM meta")}

    def set_meta(self, values: dict[str, Any]) -> None:
        with self._transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in values.items()]
            )

    def done_tasks(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT task FROM done")}

    def save_task(self, task: str, items: list[tuple[FileHashes, float | None, list[Match]]]) -> None:
        """Save one piece of evidence and all its items, atomically."""
        rows = [
            (
                h.path,
                task,
                h.size,
                h.media_type,
                h.mime,
                h.md5,
                h.sha1,
                h.sha256,
                h.pdq,
                h.pdq_quality,
                h.error,
                modified,
                json.dumps([m.to_dict() for m in matches]),
            )
            for h, modified, matches in items
        ]
        with self._transaction():
            self.db.execute("DELETE FROM items WHERE task = ?", (task,))
            self.db.executemany("INSERT OR REPLACE INTO items VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            self.db.execute("INSERT OR REPLACE INTO done VALUES (?)", (task,))

    def items(self) -> Iterator[StoredItem]:
        """Every item, sorted by path (the report's order), streamed."""
        cursor = self.db.execute(
            "SELECT path, size, media_type, mime, md5, sha1, sha256, pdq, pdq_quality, error, modified, matches"
            " FROM items ORDER BY path"
        )
        for row in cursor:
            hashes = FileHashes(*row[:10])
            yield StoredItem(hashes, row[10], json.loads(row[11]))

    def duplicate_groups(self) -> Iterator[tuple[str, list[str]]]:
        """(sha1, paths) for every content found more than once."""
        cursor = self.db.execute(
            "SELECT sha1, path FROM items WHERE sha1 IN (SELECT sha1 FROM items WHERE sha1 IS NOT NULL"
            " GROUP BY sha1 HAVING COUNT(*) > 1) ORDER BY sha1, path"
        )
        current, paths = None, []
        for sha1, path in cursor:
            if sha1 != current and current is not None:
                yield current, paths
                paths = []
            current = sha1
            paths.append(path)
        if current is not None:
            yield current, paths

    def _transaction(self) -> Any:
        return _Transaction(self.db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
