"""The saved state of a scan, so that a killed scan can be resumed.

A small SQLite file in the output folder (``.childsafe-scan/state.sqlite``):
the scan's settings, which pieces of evidence are done, every item's hashes
and matches, and the vPDQ frame hashes of every unmatched video (table
``item_frames``, 45 bytes a frame; never in the reports), so that a video
graded in review enters a bank by its frames. Each piece of evidence is
written with all its items and their frames in one transaction, so a scan
killed at any moment leaves either all of a piece or none of it, and a
resumed scan keeps the frames of the pieces done before. Raw sqlite3, not
the project database: this file belongs to the case folder, is written by
several worker processes, and becomes the case's item store (``CASE_STORE``)
when the reports are complete.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from childsafe.errors import UsageError
from childsafe.index import Match
from childsafe.signals import FileHashes
from childsafe.signals.vpdq import FrameHashes
from childsafe.triage.names import display_name, item_id, name_bytes_hex, raw_name
from childsafe.triage.provenance import Provenance, provenance_from_dict
from childsafe.triage.reading import ScannedItem

__all__ = ["ScanState", "StoredItem", "STATE_FOLDER", "CASE_STORE", "TaskRows", "task_rows"]

STATE_FOLDER = ".childsafe-scan"
#: A finished scan's state, kept in its output folder: the case's items, from
#: which its reports are written again after review (grades).
CASE_STORE = "case.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS done (task BLOB PRIMARY KEY);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY, task BLOB NOT NULL, seq INTEGER NOT NULL, label TEXT NOT NULL, path BLOB NOT NULL,
    position TEXT NOT NULL, size INTEGER NOT NULL, media_type TEXT NOT NULL,
    mime TEXT NOT NULL, md5 TEXT, sha1 TEXT, sha256 TEXT, pdq TEXT, pdq_quality INTEGER,
    error TEXT, modified REAL, matches TEXT NOT NULL, provenance TEXT, image TEXT, vpdq TEXT
);
-- An unmatched video's frame hashes (FrameHashes.to_columns), by item id.
-- Added after the first case files: an older file gains it empty when opened.
CREATE TABLE IF NOT EXISTS item_frames (
    id TEXT PRIMARY KEY, task BLOB NOT NULL, frame_count INTEGER NOT NULL,
    hashes BLOB NOT NULL, qualities BLOB NOT NULL, frame_numbers BLOB NOT NULL, timestamps BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_item_frames_task ON item_frames (task);
CREATE INDEX IF NOT EXISTS ix_items_sha1 ON items (sha1);
CREATE INDEX IF NOT EXISTS ix_items_order ON items (label, task, seq);
"""

# Items in report order, each numbered among those that share its label
# (a tar holding a.jpg twice, a folder named like an archive member).
_NUMBERED = "SELECT {columns}, ROW_NUMBER() OVER (PARTITION BY label ORDER BY task, seq) AS occurrence FROM items"
_ITEM_COLUMNS = (
    "id, label, path, position, size, media_type, mime, md5, sha1, sha256, pdq, pdq_quality, error, modified, matches,"
    " provenance, image, vpdq"
)
#: Columns added since the first state files, which a resumed scan adds to an older file.
_ADDED_COLUMNS = ("provenance", "image", "vpdq")
_INSERT_ITEM = (
    f"INSERT INTO items (task, seq, {_ITEM_COLUMNS}) VALUES (:task, :seq, :{_ITEM_COLUMNS.replace(', ', ', :')})"
)
_INSERT_FRAMES = (
    "INSERT INTO item_frames (id, task, frame_count, hashes, qualities, frame_numbers, timestamps)"
    " VALUES (:id, :task, :frame_count, :hashes, :qualities, :frame_numbers, :timestamps)"
)


@dataclass
class StoredItem:
    """An item as saved: where it is, its hashes, when modified, and its matches.

    ``hashes.path`` is the display label (valid text); ``path_bytes`` the raw
    bytes in hex when the name is not UTF-8; ``occurrence`` its number among
    items with the same label (1 for the first)."""

    id: str
    position: list[int]
    hashes: FileHashes
    modified: float | None
    matches: list[Match]
    path_bytes: str | None = None
    occurrence: int = 1
    #: Where in a disk image it was found (``None`` outside disk images).
    provenance: Provenance | None = None
    #: A video's vPDQ summary (frames hashed, digest); ``None`` when none was made.
    vpdq: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        """The label reports show: ``a.tar!/a.jpg``, then ``a.tar!/a.jpg #2``."""
        return self.hashes.path if self.occurrence == 1 else f"{self.hashes.path} #{self.occurrence}"


class ScanState:
    """Open (creating if needed) the state file of the scan writing to ``out``;
    ``of_case`` opens a finished case's (``CASE_STORE``)."""

    def __init__(self, out: Path, path: Path | None = None) -> None:
        self.folder = out / STATE_FOLDER
        if path is None:
            self.folder.mkdir(parents=True, exist_ok=True)
        self.path = path or self.folder / "state.sqlite"
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        present = {row[1] for row in self.db.execute("PRAGMA table_info(items)")}
        for column in _ADDED_COLUMNS:
            if column not in present:
                self.db.execute(f"ALTER TABLE items ADD COLUMN {column} TEXT")

    @classmethod
    def of_case(cls, case_out: Path) -> ScanState:
        """A finished scan's items, kept in ``case_out`` (``CASE_STORE``);
        ``UsageError`` for a folder without them."""
        store = case_out / CASE_STORE
        if not store.is_file():
            raise UsageError(
                f"no {CASE_STORE} in {case_out}: review needs a finished scan's output folder"
                " (from a scan by this version: scan the evidence again into a new folder)"
            )
        return cls(case_out, store)

    def close(self) -> None:
        self.db.close()

    def keep_as(self, store: Path) -> None:
        """Copy a finished scan's state to ``store``, one self-contained file
        (``VACUUM INTO``: a consistent copy, its write-ahead log folded in,
        even while a worker of a killed run still holds the state open), then close it."""
        partial = store.with_name(f".{store.name}.partial")
        partial.unlink(missing_ok=True)
        self.db.execute("VACUUM INTO ?", (str(partial),))
        self.db.close()
        os.replace(partial, store)

    def meta(self) -> dict[str, Any]:
        return {key: json.loads(value) for key, value in self.db.execute("SELECT key, value FROM meta")}

    def set_meta(self, values: dict[str, Any]) -> None:
        with self._transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in values.items()]
            )

    def done_tasks(self) -> set[bytes]:
        """The pieces of evidence finished, by their ``Task.key`` (the raw bytes of their path)."""
        return {bytes(row[0]) for row in self.db.execute("SELECT task FROM done")}

    def save_task(self, task: str, items: list[tuple[ScannedItem, list[Match]]], key: bytes | None = None) -> None:
        """Save one piece of evidence (its label ``task``; ``key``: ``Task.key``, when
        not just the label's bytes) and all its items, atomically, with the
        frame hashes of its unmatched videos (``_frames_row``)."""
        key = raw_name(task) if key is None else key
        self.save_rows(key, task_rows(task, items, key))

    def save_rows(self, key: bytes, rows: TaskRows) -> None:
        """Save one piece of evidence's items as ``task_rows`` made them (in a
        worker on another machine, say), replacing any saved before, atomically."""
        with self._transaction():
            self.db.execute("DELETE FROM items WHERE task = ?", (key,))
            self.db.execute("DELETE FROM item_frames WHERE task = ?", (key,))
            # A plain INSERT: two items with one identity is a bug to stop at, never a silent overwrite.
            self.db.executemany(_INSERT_ITEM, rows.items)
            self.db.executemany(_INSERT_FRAMES, rows.frames)
            self.db.execute("INSERT OR REPLACE INTO done VALUES (?)", (key,))

    def items(self) -> Iterator[StoredItem]:
        """Every item, sorted by label (the report's order), streamed."""
        cursor = self.db.execute(_NUMBERED.format(columns=_ITEM_COLUMNS) + " ORDER BY label, task, seq")
        cursor.row_factory = sqlite3.Row
        for row in cursor:
            hashes = FileHashes(
                path=row["label"],
                size=row["size"],
                media_type=row["media_type"],
                mime=row["mime"],
                md5=row["md5"],
                sha1=row["sha1"],
                sha256=row["sha256"],
                pdq=row["pdq"],
                pdq_quality=row["pdq_quality"],
                error=row["error"],
            )
            yield StoredItem(
                id=row["id"],
                position=json.loads(row["position"]),
                hashes=hashes,
                modified=row["modified"],
                matches=[Match.from_dict(match) for match in json.loads(row["matches"])],
                path_bytes=name_bytes_hex(bytes(row["path"]).decode("utf-8", "surrogateescape")),
                occurrence=row["occurrence"],
                provenance=provenance_from_dict(json.loads(row["provenance"])) if row["provenance"] else None,
                vpdq=json.loads(row["vpdq"]) if row["vpdq"] else None,
            )

    def frames(self, item: str) -> FrameHashes | None:
        """The vPDQ frame hashes kept of the video ``item`` (an unmatched
        video with at least one frame hashed); ``None`` for any other item,
        and for every item of a case scanned before frames were kept."""
        row = self.db.execute(
            "SELECT hashes, qualities, frame_numbers, timestamps FROM item_frames WHERE id = ?", (item,)
        ).fetchone()
        return None if row is None else FrameHashes.from_columns(*(bytes(column) for column in row))

    def images(self) -> list[dict[str, Any]]:
        """The disk images read (format, segments, stored hashes, verification), by path, for the manifest."""
        cursor = self.db.execute(
            "WITH numbered AS (" + _NUMBERED.format(columns="label, task, seq, image") + ")"
            " SELECT label, occurrence, image FROM numbered WHERE image IS NOT NULL ORDER BY label, task, seq"
        )
        return [
            {"path": label if occurrence == 1 else f"{label} #{occurrence}", **json.loads(image)}
            for label, occurrence, image in cursor
        ]

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def duplicate_groups(self) -> Iterator[tuple[str, list[str]]]:
        """(sha1, labels) for every content found more than once."""
        cursor = self.db.execute(
            "WITH numbered AS (" + _NUMBERED.format(columns="sha1, label, task, seq") + ")"
            " SELECT sha1, label, occurrence FROM numbered WHERE sha1 IN (SELECT sha1 FROM items"
            " WHERE sha1 IS NOT NULL GROUP BY sha1 HAVING COUNT(*) > 1) ORDER BY sha1, label, task, seq"
        )
        current, labels = None, []
        for sha1, label, occurrence in cursor:
            if sha1 != current and current is not None:
                yield current, labels
                labels = []
            current = sha1
            labels.append(label if occurrence == 1 else f"{label} #{occurrence}")
        if current is not None:
            yield current, labels

    def _transaction(self) -> Any:
        return _Transaction(self.db)


@dataclass(frozen=True)
class TaskRows:
    """One piece of evidence's rows as ``ScanState.save_rows`` saves them:
    plain values only, small to send between processes."""

    items: list[dict[str, Any]]
    #: The frame hashes of its unmatched videos (``_frames_row``).
    frames: list[dict[str, Any]]


def task_rows(task: str, items: list[tuple[ScannedItem, list[Match]]], key: bytes) -> TaskRows:
    """The rows ``ScanState.save_rows`` saves for one piece of evidence (label
    ``task``, ``Task.key`` ``key``)."""
    rows = []
    frames = []
    for seq, (scanned, matches) in enumerate(items):
        h = scanned.hashes
        identity = item_id(task, scanned.position)
        # Unmatched videos only: they are the ones left for review, whose
        # grades enter banks; a matched video is in a bank already.
        if not matches:
            frames.extend(_frames_row(identity, key, h))
        rows.append(
            {
                "id": identity,
                "task": key,
                "seq": seq,
                "label": display_name(h.path),
                "path": raw_name(h.path),
                "position": json.dumps(list(scanned.position)),
                "size": h.size,
                "media_type": h.media_type,
                "mime": h.mime,
                "md5": h.md5,
                "sha1": h.sha1,
                "sha256": h.sha256,
                "pdq": h.pdq,
                "pdq_quality": h.pdq_quality,
                "error": None if h.error is None else display_name(h.error),
                "modified": scanned.modified,
                "matches": json.dumps([m.to_dict() for m in matches]),
                "provenance": _json_or_null(scanned.provenance.to_dict() if scanned.provenance else None),
                "vpdq": _json_or_null(h.vpdq_summary()),
                "image": _json_or_null(scanned.image),
            }
        )
    return TaskRows(rows, frames)


def _displayed(value: Any) -> Any:
    """``value`` with every string in it made valid text (names from evidence may hold raw bytes)."""
    if isinstance(value, str):
        return display_name(value)
    if isinstance(value, dict):
        return {key: _displayed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_displayed(item) for item in value]
    return value


def _frames_row(item: str, task: bytes, hashes: FileHashes) -> list[dict[str, Any]]:
    """The ``item_frames`` row of a video with frames hashed (none for
    anything else, or a video none of whose frames could be hashed). A
    damaged video keeps the frames hashed before the damage, as ``bank add``
    does: a bank entry made from them still finds what they show."""
    if hashes.video is None or not hashes.video.features:
        return []
    frames = FrameHashes.of(hashes.video.features)
    return [{"id": item, "task": task, "frame_count": len(frames), **frames.to_columns()}]


def _json_or_null(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(_displayed(value))


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
