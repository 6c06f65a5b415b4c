"""One page of a fetch written into the bank, in the caller's transaction
(``fetching.py`` commits it with the exchange's checkpoint).

Provenance and ownership: each fetch is a ``BankImport`` row (a *run*) with
``exchange_id`` set, and an entry belongs to the exchange when its
``import_id`` is one of the exchange's runs. A page's entries that are new
are added under the current run; those the exchange already had are moved
to it ("confirmed by this fetch"); entries that other imports or people
added are left as they are, and never deleted by an exchange. A whole-list
source (a URL's file) ends with a pruning page: the exchange's entries that
this run did not confirm are deleted.

Every change is logged in the bank change log in the same transaction, so
matchers see the fetch's deletions as soon as it commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from childsafe.banks.catalogue import entry_key, with_video_signal
from childsafe.banks.changes import ChangeOp, log_change
from childsafe.banks.formats import ParsedEntry
from childsafe.banks.importing import BULK_CHANGE_LIMIT
from childsafe.errors import InputFormatError, UsageError
from childsafe.exchanges.base import Page
from childsafe.signals.vpdq import FrameHashes
from childsafe.store.models import Bank, BankEntry, BankImport, EntrySignal, EntryVideo, utc_now

__all__ = ["PageCounts", "apply_page"]

#: Keys or ids a statement: well under SQLite's and PostgreSQL's limits on bound values.
CHUNK = 500

T = TypeVar("T")


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


@dataclass
class PageCounts:
    """What one page (or a whole fetch, summed) changed."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    rejected: int = 0

    def __iadd__(self, other: PageCounts) -> PageCounts:
        self.added += other.added
        self.updated += other.updated
        self.removed += other.removed
        self.rejected += other.rejected
        return self

    def to_dict(self) -> dict[str, int]:
        return {"added": self.added, "updated": self.updated, "removed": self.removed, "rejected": self.rejected}


@dataclass
class _New:
    key: str
    signals: list[tuple[str, str]]
    category: str | None
    source_id: str | None
    note: str | None
    video: FrameHashes | None


def _by_key(adds: Iterable[ParsedEntry]) -> tuple[dict[str, _New], int]:
    """The page's entries by key (a later one of the same key wins), and how many had no signal."""
    entries: dict[str, _New] = {}
    rejected = 0
    for entry in adds:
        try:
            signals = with_video_signal(sorted(set(entry.signals)), entry.video)
        except UsageError as exc:
            raise InputFormatError(f"{entry.where}: {exc}") from None
        if not signals:
            rejected += 1
            continue
        key = entry_key(signals)
        entries[key] = _New(key, signals, entry.category, entry.source_id, entry.note, entry.video)
    return entries, rejected


def _owned(bank_id: int, exchange_id: int) -> Any:
    """A condition on ``bank_entries``: brought in by one of the exchange's runs."""
    runs = select(BankImport.id).where(BankImport.bank_id == bank_id, BankImport.exchange_id == exchange_id)
    return (BankEntry.bank_id == bank_id) & BankEntry.import_id.in_(runs)


def apply_page(
    connection: Connection,
    bank: Bank,
    exchange_id: int,
    run_import_id: int,
    page: Page,
    replaces_by_source_id: bool,
) -> PageCounts:
    """Write ``page`` into ``bank`` under the run ``run_import_id``; returns
    what it changed. Deletions come first, then additions (a source gives
    each entry's latest state once a page)."""
    entries, rejected = _by_key(page.adds)
    owned = _owned(bank.id, exchange_id)
    removed: set[int] = set()

    for keys in _chunks(page.deleted_keys):
        removed.update(connection.scalars(select(BankEntry.id).where(owned, BankEntry.entry_key.in_(keys))))
    for ids in _chunks(page.deleted_source_ids):
        removed.update(connection.scalars(select(BankEntry.id).where(owned, BankEntry.source_id.in_(ids))))
    if replaces_by_source_id:
        # An entry the source sends again under its id with other hashes: the old one goes.
        by_source = sorted({e.source_id for e in entries.values() if e.source_id})
        for ids in _chunks(by_source):
            rows = connection.execute(
                select(BankEntry.id, BankEntry.entry_key).where(owned, BankEntry.source_id.in_(ids))
            )
            removed.update(entry_id for entry_id, key in rows if key not in entries)

    existing: dict[str, tuple[int, int | None, str | None, str | None, str | None]] = {}
    keys = list(entries)
    for chunk in _chunks(keys):
        found = connection.execute(
            select(BankEntry.id, BankEntry.entry_key, BankEntry.import_id, BankEntry.category,
                   BankEntry.source_id, BankEntry.note)
            .where(BankEntry.bank_id == bank.id, BankEntry.entry_key.in_(chunk))
        )  # fmt: skip
        for entry_id, key, import_id, category, source_id, note in found:
            if entry_id not in removed:
                existing[key] = (entry_id, import_id, category, source_id, note)
    runs = set(
        connection.scalars(
            select(BankImport.id).where(BankImport.bank_id == bank.id, BankImport.exchange_id == exchange_id)
        )
    )

    # Confirm the exchange's own entries under this run, with the source's latest category, id and note.
    confirmed: list[int] = []
    changed: list[dict[str, Any]] = []
    for key, (entry_id, import_id, category, source_id, note) in existing.items():
        if import_id not in runs:
            continue  # another import's or a person's entry: left as it is
        new = entries[key]
        if (category, source_id, note) != (new.category, new.source_id, new.note):
            changed.append({"id_": entry_id, "c": new.category, "s": new.source_id, "n": new.note})
        elif import_id != run_import_id:
            confirmed.append(entry_id)
    for some in _chunks(confirmed):
        connection.execute(update(BankEntry).where(BankEntry.id.in_(some)).values(import_id=run_import_id))
    if changed:
        connection.execute(
            update(BankEntry)
            .where(BankEntry.id == bindparam("id_"))
            .values(category=bindparam("c"), source_id=bindparam("s"), note=bindparam("n"), import_id=run_import_id),
            changed,
        )

    if page.complete and page.prune:
        # What this run confirmed was moved to it above: what is left of the exchange's is gone from the list.
        removed.update(connection.scalars(select(BankEntry.id).where(owned, BankEntry.import_id != run_import_id)))

    removed_ids = sorted(removed)
    for doomed in _chunks(removed_ids):
        # Signals, variants, keypoints and frames go with the entry: ON DELETE CASCADE.
        connection.execute(delete(BankEntry).where(BankEntry.id.in_(doomed)))

    new_entries = [entries[key] for key in keys if key not in existing]
    new_ids = _insert(connection, bank.id, run_import_id, new_entries)

    if changed:
        log_change(connection, bank.id, ChangeOp.UPDATE)
    if len(new_ids) + len(removed_ids) > BULK_CHANGE_LIMIT:
        log_change(connection, bank.id, ChangeOp.RELOAD)
    else:
        if removed_ids:
            log_change(connection, bank.id, ChangeOp.REMOVE, removed_ids)
        if new_ids:
            log_change(connection, bank.id, ChangeOp.ADD, new_ids)
    return PageCounts(len(new_ids), len(changed), len(removed_ids), rejected + page.rejected)


def _insert(connection: Connection, bank_id: int, run_import_id: int, entries: list[_New]) -> list[int]:
    """Add new entries with their signals (and a video's frames); their ids, in order."""
    if not entries:
        return []
    now = utc_now()
    # A plain many-row insert, then the ids by key: INSERT ... RETURNING in
    # parameter order costs SQLAlchemy one statement a row on SQLite (10x slower).
    connection.execute(
        insert(BankEntry),
        [
            {"bank_id": bank_id, "entry_key": e.key, "category": e.category, "source_id": e.source_id,
             "note": e.note, "added_at": now, "import_id": run_import_id}
            for e in entries
        ],
    )  # fmt: skip
    ids: dict[str, int] = {}
    for chunk in _chunks(entries):
        rows = connection.execute(
            select(BankEntry.id, BankEntry.entry_key).where(
                BankEntry.bank_id == bank_id, BankEntry.entry_key.in_([e.key for e in chunk])
            )
        )
        ids.update((key, entry_id) for entry_id, key in rows)
    connection.execute(
        insert(EntrySignal),
        [
            {"bank_id": bank_id, "entry_id": ids[e.key], "signal": signal, "value": value}
            for e in entries
            for signal, value in e.signals
        ],
    )
    videos = [
        {"bank_id": bank_id, "entry_id": ids[e.key], "frame_count": len(e.video), **e.video.to_columns()}
        for e in entries
        if e.video is not None
    ]
    if videos:
        connection.execute(insert(EntryVideo), videos)
    return [ids[e.key] for e in entries]
