"""Following the bank change log: every bank's index kept in step with the
database by a ``ChangeFollower`` (the ``Matcher`` searches what it keeps).

It loads each bank's saved index (or builds it from the database and saves
it) — the newer of its own save and, when given, a *snapshot* folder's (a
replica on another machine starts from a snapshot another process wrote with
``write_snapshot``, instead of building from the database) — then follows the change log (``banks/changes.py``) so that a change made
by any process — the CLI, an API worker, another machine on the same
PostgreSQL — is matched by the next query, without a rebuild.

On PostgreSQL the log's ``seq`` values are handed out when a change is
written, not when it commits: a transaction that took seq 41 can commit after
one that took 42. The follower therefore remembers the seqs it has not seen
below the highest one it has (its *gaps*) and reads them again at each sync,
until the database shows they can no longer appear (``_Gap``).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Row, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import BigInteger

from childsafe.banks.catalogue import read_banks
from childsafe.banks.changes import Change, ChangeOp, bank_ops_between, changes_after, latest_seq
from childsafe.index.bank_index import BankIndex
from childsafe.index.shards import WHOLE, IndexPart
from childsafe.store.models import Bank

__all__ = ["ChangeFollower", "write_snapshot"]

#: A saved index this many changes behind is saved again once brought up to
#: date, so the next process does not replay them too; this many more, rebuilt.
_REPLAY_SAVED_AFTER = 1000
_REPLAY_REBUILT_AFTER = 100_000


@dataclass(frozen=True)
class _Gap:
    """Change-log seqs ``lo``..``hi`` missing below the highest seq seen
    (PostgreSQL only). The transactions that may still write them had their
    ids before ``xmax`` (the first transaction id unassigned when the gap was
    seen: every writer writes its change before it logs it, so it has an id
    before it takes a seq), so once the snapshot's ``xmin`` reaches ``xmax``
    they have all ended, and a seq still missing then is gone for good (a
    rolled-back transaction, or values the sequence skipped after a crash).
    ``seen_at`` (seconds, database clock) keeps a gap at least
    ``Matcher.gap_min_age`` besides, in case a writer took a seq before its
    transaction had an id."""

    lo: int
    hi: int
    xmax: int
    seen_at: float


#: On PostgreSQL, one statement reads the changes above the high-water mark,
#: those in the gaps, and the snapshot it read them in (one row even when
#: there are no changes), so that gaps are judged against exactly what was read.
_PG_CHANGES = text("""
SELECT snap.xmin, snap.xmax, snap.now, c.seq, c.bank_id, c.op, c.entry_id
FROM (
    SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin,
           pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax,
           extract(epoch FROM statement_timestamp())::float8 AS now
) AS snap
LEFT JOIN (
    SELECT seq, bank_id, op, entry_id FROM bank_changes WHERE seq > :hwm
    UNION ALL
    SELECT b.seq, b.bank_id, b.op, b.entry_id
    FROM unnest(:los, :his) AS gap(lo, hi)
    JOIN bank_changes AS b ON b.seq BETWEEN gap.lo AND gap.hi
) AS c ON true
ORDER BY c.seq
""").bindparams(bindparam("los", type_=ARRAY(BigInteger)), bindparam("his", type_=ARRAY(BigInteger)))

#: At start-up on PostgreSQL: the latest seq, and whether any transaction
#: that writes is running (if none, no gap below the latest can be filled).
_PG_LATEST = text("""
SELECT (SELECT coalesce(max(seq), 0) FROM bank_changes) AS latest,
       EXISTS (SELECT FROM pg_snapshot_xip(pg_current_snapshot())) AS busy
""")

#: If one is: the latest seq and every missing run below it (a window over
#: the log's primary key: about a second a million changes), in one snapshot.
_PG_GAPS = text("""
WITH steps AS (SELECT lag(seq, 1, 0) OVER (ORDER BY seq) AS prev, seq FROM bank_changes)
SELECT snap.xmin, snap.xmax, snap.now, snap.latest, g.lo, g.hi
FROM (
    SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin,
           pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax,
           extract(epoch FROM statement_timestamp())::float8 AS now,
           (SELECT coalesce(max(seq), 0) FROM bank_changes) AS latest
) AS snap
LEFT JOIN (SELECT prev + 1 AS lo, seq - 1 AS hi FROM steps WHERE seq > prev + 1) AS g ON true
ORDER BY g.lo
""")


def _next_gaps(gaps: list[_Gap], hwm: int, found: list[int], snapshot: Row[Any], min_age: float) -> list[_Gap]:
    """The gaps after a read that found the seqs ``found`` (sorted) in
    ``snapshot``: the old ones less what was found and less what can no
    longer appear, and new ones wherever ``found`` skips a seq above ``hwm``."""
    kept: list[_Gap] = []
    for gap in gaps:
        inside = [seq for seq in found if gap.lo <= seq <= gap.hi]
        settled = snapshot.xmin >= gap.xmax and snapshot.now - gap.seen_at >= min_age
        if settled:
            continue
        start = gap.lo
        for seq in [*inside, gap.hi + 1]:
            if seq > start:
                kept.append(_Gap(start, seq - 1, gap.xmax, gap.seen_at))
            start = seq + 1
    previous = hwm
    for seq in found:
        if seq > previous + 1 and seq > hwm:
            kept.append(_Gap(previous + 1, seq - 1, snapshot.xmax, snapshot.now))
        previous = max(previous, seq)
    return kept


class ChangeFollower:
    """Keeps ``banks`` (bank id -> its index, a dict the caller shares) in step
    with the change log, each holding the part of its bank ``part`` says (a
    shard's entries: docs/service.md). ``seq`` is the highest change-log seq read."""

    #: Seconds (database clock) a gap in the change log is kept at least; see ``_Gap``.
    gap_min_age = 10.0

    def __init__(
        self,
        engine: Engine,
        root: Path,
        banks: dict[int, BankIndex],
        snapshot: Path | None = None,
        part: IndexPart = WHOLE,
    ) -> None:
        self.engine = engine
        self.part = part
        self.root = root
        self.snapshot = snapshot
        self.banks = banks
        self.seq = -1
        #: How the first sync got each bank's index: "saved" (this process's
        #: folder), "snapshot" or "built" (from the database), counted.
        self.loaded_from: dict[str, int] = {}
        # SQLite has one writer at a time, so seqs commit in order there: no gaps.
        self._follows_gaps = engine.dialect.name == "postgresql"
        self._gaps: list[_Gap] = []
        # For ``behind``: a plain sqlite3 connection of its own, opened on first use.
        self._watch: sqlite3.Connection | None = None
        self._watch_lock = threading.Lock()

    def behind(self) -> bool:
        """Whether the change log may hold changes ``sync`` has not applied:
        a check cheap enough to make before every query (it is not a sync).

        On a SQLite file, seqs commit in order, so the log's highest seq above
        ``self.seq`` is the whole answer: one read of the primary key's last
        page on a connection kept for it, a few microseconds, against about
        350 for ``sync`` (a pooled connection, ``BEGIN``, a statement built and
        compiled, a rollback). On PostgreSQL (late commits fill gaps below the
        highest seq, and every read is a round trip) and for an in-memory
        database, always True: call ``sync``."""
        database = self.engine.url.database
        if self.engine.dialect.name != "sqlite" or not database or database == ":memory:" or self.seq < 0:
            return True
        with self._watch_lock:
            try:
                if self._watch is None:
                    # Autocommit, and no waiting for a lock (a WAL reader rarely
                    # meets one): this runs on the service's event loop. Any
                    # error says "behind", and ``sync`` then does the full read.
                    self._watch = sqlite3.connect(database, timeout=0, isolation_level=None, check_same_thread=False)
                # fetchall: the statement runs to its end, so no read snapshot is held between checks.
                ((latest,),) = self._watch.execute("SELECT max(seq) FROM bank_changes").fetchall()
            except sqlite3.Error:
                return True
        return latest is not None and latest > self.seq

    def close(self) -> None:
        """Close the connection ``behind`` keeps (the engine is the caller's)."""
        with self._watch_lock:
            if self._watch is not None:
                self._watch.close()
                self._watch = None

    def sync(self) -> bool:
        """Apply every change logged since the last sync, and any that
        committed late into a gap below it (one query when nothing changed).
        Returns whether anything changed."""
        with self.engine.connect() as connection:
            if self.seq < 0:
                self._load_all(connection)
                return True
            changes = self._read_changes(connection) if self._follows_gaps else changes_after(connection, self.seq)
            pending_adds: dict[int, list[int]] = {}

            def flush_adds() -> None:
                for bank_id, ids in pending_adds.items():
                    if bank_id in self.banks:
                        self.banks[bank_id].add_entries(connection, ids)
                pending_adds.clear()

            # Late changes (in a gap) come first, by seq: an entry's later
            # changes always have higher seqs, as they were made after it was committed.
            for change in changes:
                seq, bank_id, op, entry_id = change.seq, change.bank_id, change.op, change.entry_id
                if op == ChangeOp.ADD and entry_id is not None:
                    pending_adds.setdefault(bank_id, []).append(entry_id)
                    continue
                flush_adds()
                if op == ChangeOp.REMOVE and entry_id is not None and bank_id in self.banks:
                    self.banks[bank_id].remove_entries([entry_id])
                elif op in (ChangeOp.CREATE, ChangeOp.RELOAD):
                    for bank in read_banks(connection, bank_id):
                        self.banks[bank_id] = BankIndex.build(connection, bank, self._complete_to(seq), self.part)
                        if op == ChangeOp.RELOAD:
                            self.banks[bank_id].save(self.root)
                elif op == ChangeOp.DROP:
                    self.banks.pop(bank_id, None)
            flush_adds()
            if changes:
                self.seq = max(self.seq, changes[-1].seq)
            for _, bank_index in self.banks.items():
                bank_index.seq = max(bank_index.seq, self._complete_to(self.seq))
            return bool(changes)

    def _read_changes(self, connection: Any) -> list[Change]:
        """PostgreSQL: the changes above the high-water mark and those that
        filled a gap, by seq; the gaps are brought up to date."""
        rows = connection.execute(
            _PG_CHANGES,
            {"hwm": self.seq, "los": [gap.lo for gap in self._gaps], "his": [gap.hi for gap in self._gaps]},
        ).all()
        changes = [row for row in rows if row.seq is not None]
        self._gaps = _next_gaps(self._gaps, self.seq, [row.seq for row in changes], rows[0], self.gap_min_age)
        return [Change(row.seq, row.bank_id, ChangeOp(row.op), row.entry_id) for row in changes]

    def _complete_to(self, seq: int) -> int:
        """``seq``, or less when a gap below it may still be filled: what an
        index may claim to hold (a saved index is replayed from there)."""
        return min([seq, *(gap.lo - 1 for gap in self._gaps)])

    def _load_all(self, connection: Any) -> None:
        if self._follows_gaps:
            latest, busy = connection.execute(_PG_LATEST).one()
            if busy:
                rows = connection.execute(_PG_GAPS).all()
                latest = rows[0].latest
                self._gaps = [_Gap(row.lo, row.hi, row.xmax, row.now) for row in rows if row.lo is not None]
        else:
            latest = latest_seq(connection)
        complete = self._complete_to(latest)
        self.root.mkdir(parents=True, exist_ok=True)
        self.loaded_from = {}
        for bank in read_banks(connection):
            saved, where = self._newest_save(bank, latest)
            if saved is None:
                index, where = BankIndex.build(connection, bank, complete, self.part), "built"
                index.save(self.root)
            else:
                index = self._replay(connection, saved, latest)
            self.banks[bank.id] = index
            self.loaded_from[where] = self.loaded_from.get(where, 0) + 1
        self.seq = latest

    def _newest_save(self, bank: Bank, latest: int) -> tuple[BankIndex | None, str]:
        """The newest usable save of ``bank`` (not from after ``latest``: a
        save of another database, or of one restored from a backup) in this
        process's folder or the snapshot folder, and which it came from."""
        places = [("saved", self.root)] + ([("snapshot", self.snapshot)] if self.snapshot else [])
        seqs = [(BankIndex.newest_saved_seq(folder, bank, self.part), where, folder) for where, folder in places]
        usable = sorted(
            ((seq, where, folder) for seq, where, folder in seqs if seq is not None and seq <= latest), reverse=True
        )
        for _, where, folder in usable:  # the newest first; a damaged one gives way to the next
            index = BankIndex.load_newest(folder, bank, self.part)
            if index is not None and index.seq <= latest:
                return index, where
        return None, "built"

    def ensure_saved(self) -> None:
        """Make sure a new process's first ``sync`` only loads saved indexes
        (a scan's workers each make one): build or refresh the saves that are
        missing or that ``sync`` would rebuild or save again. When every save is
        current, nothing is loaded: no index, and no compiled kernel, which
        takes a process about two seconds to start."""
        with self.engine.connect() as connection:
            latest = latest_seq(connection)
            for bank in read_banks(connection):
                saved = max(
                    (seq for folder in (self.root, self.snapshot) if folder
                     for seq in [BankIndex.newest_saved_seq(folder, bank, self.part)]
                     if seq is not None and seq <= latest),
                    default=None,
                )  # fmt: skip
                if saved is None:
                    break
                ops = [op for op, _ in bank_ops_between(connection, bank.id, saved, latest, _REPLAY_SAVED_AFTER + 1)]
                if ChangeOp.RELOAD in ops or len(ops) > _REPLAY_SAVED_AFTER:
                    break
            else:
                return
        self.sync()

    def _replay(self, connection: Any, index: BankIndex, latest: int) -> BankIndex:
        """A saved index of one bank brought from its seq to ``latest`` (less
        any gap still open: see ``_complete_to``): ``index`` itself, or a
        rebuilt one when the bank was reloaded or changed too much since."""
        changes = bank_ops_between(connection, index.bank_id, index.seq, latest)
        complete = max(index.seq, self._complete_to(latest))
        if any(op == ChangeOp.RELOAD for op, _ in changes) or len(changes) > _REPLAY_REBUILT_AFTER:
            (bank,) = read_banks(connection, index.bank_id)
            rebuilt = BankIndex.build(connection, bank, complete, self.part)
            rebuilt.save(self.root)
            return rebuilt
        for op, entry_id in changes:
            if op == ChangeOp.ADD and entry_id is not None:
                index.add_entries(connection, [entry_id])
            elif op == ChangeOp.REMOVE and entry_id is not None:
                index.remove_entries([entry_id])
        index.seq = complete
        if len(changes) > _REPLAY_SAVED_AFTER:
            index.save(self.root)
        return index


def write_snapshot(banks: dict[int, BankIndex], folder: Path) -> list[Path]:
    """Save every bank's index into ``folder`` (each bank's save atomic, older
    saves of it removed), for replicas to start from (``snapshot``). The
    indexes must be current: call after a ``sync``."""
    folder.mkdir(parents=True, exist_ok=True)
    return [index.save(folder) for _, index in sorted(banks.items())]
