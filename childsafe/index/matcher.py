"""Matching: every bank's index, kept in step with the database.

A ``Matcher`` loads each bank's saved index (or builds it from the database
and saves it), then follows the change log (``bank_changes``) so that a
change made by any process — the CLI, an API worker, another machine on the
same PostgreSQL — is matched by the next query here, without a rebuild.

On PostgreSQL the log's ``seq`` values are handed out when a change is
written, not when it commits: a transaction that took seq 41 can commit after
one that took 42. The follower therefore remembers the seqs it has not seen
below the highest one it has (its *gaps*) and reads them again at each sync,
until the database shows they can no longer appear (``_Gap``).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, Row, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import BigInteger

from childsafe.banks.catalogue import read_banks
from childsafe.banks.changes import Change, ChangeOp, bank_ops_between, changes_after, latest_seq
from childsafe.index.bank_index import BankIndex
from childsafe.index.pdq_index import hex_to_words
from childsafe.signals import PDQ_MIN_QUALITY, FileHashes, get_signal
from childsafe.signals.derived import DERIVED_MAX_DISTANCE
from childsafe.signals.keypoints import Keypoints
from childsafe.signals.pdq import pdq_distance
from childsafe.store.models import BankEntry, EntrySignal, EntryVariant

__all__ = ["Match", "Matcher", "LaterSteps", "index_root", "KEYPOINTS_TRANSFORM"]

#: A saved index this many changes behind is saved again once brought up to
#: date, so the next process does not replay them too; this many more, rebuilt.
_REPLAY_SAVED_AFTER = 1000
_REPLAY_REBUILT_AFTER = 100_000

#: How a match found by the entry's bank-side keypoints is reported.
KEYPOINTS_TRANSFORM = "variant:keypoints"


@dataclass(frozen=True)
class Match:
    """The docs/spec.md ``MATCH`` object."""

    bank: str
    entry_id: str
    source_id: str | None
    signal: str
    value: str
    distance: int
    category: str | None
    transform: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)  # the fields in order; dataclasses.asdict deep-copies each, on every answer


class LaterSteps(Protocol):
    """The costlier query variants of one picture, for the cascade of
    ``Matcher.match_hashes``: made on demand from the picture
    (``signals.hashing.QueryPicture``), or made already, away from the index
    (``childsafe.detect.PreparedQuery``)."""

    def cut_hashes(self) -> dict[str, str]:
        """PDQ hashes of its cuts, by transform name."""
        ...

    def keypoints(self) -> Keypoints | None:
        """Its keypoints, or ``None`` when that mechanism is off."""
        ...

    def full_hashes(self) -> dict[str, str]:
        """Its full-resolution hash as ``{"full": hex}``, when it needs one."""
        ...


@dataclass
class _Hit:
    bank: BankIndex
    entry_id: int
    signal: str
    value: str
    distance: int
    transform: str


def _suppressed(hits: list[_Hit]) -> list[_Hit]:
    """``hits`` as a suppress bank leaves them. A hit in a suppress bank says
    the picture is a known false positive, so it removes the query's
    perceptual matches (PDQ, its turns, cuts, bank-side variants and
    keypoints); an exact digest match to an entry of another bank is a copy of
    that very file and stays. Suppress hits themselves are never reported."""
    if not any(hit.bank.kind == "suppress" for hit in hits):
        return hits
    return [hit for hit in hits if hit.bank.kind != "suppress" and get_signal(hit.signal).kind == "digest"]


def index_root(home: Path, database_url: str) -> Path:
    """Where saved indexes of this database live: beside the database, one
    folder per database (so SQLite and PostgreSQL never share)."""
    tag = hashlib.sha1(database_url.encode()).hexdigest()[:12]
    return home / "index" / tag


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


#: Entry ids per statement when fetching their details: one statement for up
#: to this many (far below the bound values SQLite and PostgreSQL allow).
_DETAILS_CHUNK = 10_000


@dataclass
class _EntryDetails:
    category: str | None
    source_id: str | None
    variants: dict[str, str]  # PDQ value -> bank-side variant name


class Matcher:
    """Match hashes against every bank. Call ``sync()`` before a query (or a
    batch of queries) to see the latest changes; it is cheap when nothing changed."""

    #: Seconds (database clock) a gap in the change log is kept at least; see ``_Gap``.
    gap_min_age = 10.0

    def __init__(self, engine: Engine, root: Path) -> None:
        self.engine = engine
        self.root = root
        self.banks: dict[int, BankIndex] = {}
        self.seq = -1  # the highest change-log seq read
        self._details: dict[int, _EntryDetails] = {}
        # SQLite has one writer at a time, so seqs commit in order there: no gaps.
        self._follows_gaps = engine.dialect.name == "postgresql"
        self._gaps: list[_Gap] = []
        # For ``behind``: a plain sqlite3 connection of its own, opened on first use.
        self._watch: sqlite3.Connection | None = None
        self._watch_lock = threading.Lock()

    # -- keeping in step ---------------------------------------------------

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

    def sync(self) -> None:
        """Apply every change logged since the last sync, and any that
        committed late into a gap below it (one query when nothing changed)."""
        with self.engine.connect() as connection:
            if self.seq < 0:
                self._load_all(connection)
                return
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
                        self.banks[bank_id] = BankIndex.build(connection, bank, self._complete_to(seq))
                        if op == ChangeOp.RELOAD:
                            self.banks[bank_id].save(self.root)
                elif op == ChangeOp.DROP:
                    self.banks.pop(bank_id, None)
            flush_adds()
            if changes:
                self.seq = max(self.seq, changes[-1].seq)
                self._details.clear()  # categories or source ids may have changed
            for _, bank_index in self.banks.items():
                bank_index.seq = max(bank_index.seq, self._complete_to(self.seq))

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
        for bank in read_banks(connection):
            saved = BankIndex.load_newest(self.root, bank)
            if saved is None or saved.seq > latest:
                index = BankIndex.build(connection, bank, complete)
                index.save(self.root)
            else:
                index = self._replay(connection, saved, latest)
            self.banks[bank.id] = index
        self.seq = latest

    def ensure_saved(self) -> None:
        """Make sure a new process's first ``sync`` only loads saved indexes
        (a scan's workers each make one): build or refresh the saves that are
        missing or that ``sync`` would rebuild or save again. When every save is
        current, nothing is loaded: no index, and no compiled kernel, which
        takes a process about two seconds to start."""
        with self.engine.connect() as connection:
            latest = latest_seq(connection)
            for bank in read_banks(connection):
                saved = BankIndex.newest_saved_seq(self.root, bank)
                if saved is None or saved > latest:
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
            rebuilt = BankIndex.build(connection, bank, complete)
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

    def sizes(self) -> dict[str, dict[str, int]]:
        """For health checks: how many values of each signal are indexed, over all banks."""
        totals: dict[str, int] = {}
        for bank_index in self.banks.values():
            for signal, size in bank_index.size().items():
                totals[signal] = totals.get(signal, 0) + size
        return {signal: {"size": size} for signal, size in sorted(totals.items())}

    # -- matching ----------------------------------------------------------

    def _search(self, queries: Sequence[tuple[str, str, str]]) -> list[list[_Hit]]:
        """Hits for ``(signal, value, transform)`` queries, in every bank."""
        results: list[list[_Hit]] = [[] for _ in queries]
        by_signal: dict[str, list[int]] = {}
        for number, (signal, _, _) in enumerate(queries):
            by_signal.setdefault(signal, []).append(number)
        for bank in self.banks.values():
            for signal, numbers in by_signal.items():
                if signal == "pdq":
                    words = hex_to_words([queries[n][1] for n in numbers])
                    for n, hits in zip(numbers, bank.pdq.search_many(words, bank.pdq_threshold), strict=True):
                        results[n].extend(
                            _Hit(bank, hit.entry_id, "pdq", hit.value, hit.distance, queries[n][2]) for hit in hits
                        )
                elif signal in bank.digests:
                    found = bank.digests[signal].lookup_many([queries[n][1] for n in numbers])
                    for ids, n in zip(found, numbers, strict=True):
                        results[n].extend(_Hit(bank, i, signal, queries[n][1], 0, queries[n][2]) for i in ids)
        return results

    def _to_matches(self, hits: list[_Hit], details: dict[int, _EntryDetails] | None = None) -> list[Match]:
        """Best hit per (bank, entry, signal), with category and source id
        from ``details`` (fetched from the database if not given); a hit in a
        suppress bank leaves only exact digest matches (``_suppressed``)."""
        hits = _suppressed(hits)
        # One match per entry and signal: a hash before keypoints, an entry's
        # own hash before its bank-side variants, then the closest, then the
        # query as it is before its turns and cuts.
        if details is None:
            details = self._entry_details({hit.entry_id for hit in hits})

        def rank(hit: _Hit) -> tuple[bool, bool, int, bool]:
            entry = details.get(hit.entry_id)
            is_variant = bool(entry and hit.signal == "pdq" and hit.value in entry.variants)
            return hit.transform == KEYPOINTS_TRANSFORM, is_variant, hit.distance, hit.transform != "none"

        best: dict[tuple[int, int, str], _Hit] = {}
        for hit in hits:
            key = (hit.bank.bank_id, hit.entry_id, hit.signal)
            if key not in best or rank(hit) < rank(best[key]):
                best[key] = hit
        matches = []
        for hit in best.values():
            entry = details.get(hit.entry_id, _EntryDetails(None, None, {}))
            transform = hit.transform
            variant = entry.variants.get(hit.value) if hit.signal == "pdq" else None
            if variant:  # the bank's own variant of the entry matched: say so, with the query's turn
                transform = variant if transform == "none" else f"{transform}+{variant}"
            matches.append(
                Match(
                    hit.bank.name,
                    str(hit.entry_id),
                    entry.source_id,
                    hit.signal,
                    hit.value,
                    hit.distance,
                    entry.category,
                    transform,
                )
            )
        matches.sort(key=lambda m: (m.distance, m.bank, int(m.entry_id), m.signal))
        return matches

    def _entry_details(self, entry_ids: set[int]) -> dict[int, _EntryDetails]:
        # Cached until the next change to any bank: a service answering the
        # same matches again should not ask the database each time.
        details = {i: self._details[i] for i in entry_ids if i in self._details}
        ids = sorted(entry_ids - details.keys())
        if not ids:  # all known: no connection (a hot match, or a query that found nothing)
            return details
        with self.engine.connect() as connection:
            for start in range(0, len(ids), _DETAILS_CHUNK):
                # One statement a chunk: each entry with its bank-side
                # variants, a row each (one row with none if it has none).
                rows = connection.execute(
                    select(
                        BankEntry.id, BankEntry.category, BankEntry.source_id, EntryVariant.value, EntryVariant.variant
                    )
                    .outerjoin(EntryVariant, EntryVariant.entry_id == BankEntry.id)
                    .where(BankEntry.id.in_(ids[start : start + _DETAILS_CHUNK]))
                )
                for entry_id, category, source_id, value, variant in rows:
                    entry = details.get(entry_id)
                    if entry is None:
                        entry = details[entry_id] = _EntryDetails(category, source_id, {})
                    if value is not None:
                        entry.variants[value] = variant
        if len(self._details) > 100_000:
            self._details.clear()
        self._details.update(details)
        return details

    def lookup(self, queries: Sequence[tuple[str, str]]) -> list[list[Match]]:
        """Matches for each ``(signal, value)`` query (values already parsed), in order."""
        hits = self._search([(signal, value, "none") for signal, value in queries])
        # The details of every entry found, in one statement (per 10,000),
        # not in one per query.
        details = self._entry_details({hit.entry_id for found in hits for hit in found})
        return [self._to_matches(found, details) for found in hits]

    def match_hashes(self, hashes: FileHashes, later: LaterSteps | None = None) -> list[Match]:
        """Matches for one hashed file: its digests, and its PDQ hash with all
        8 rotations and flips when the hash is of usable quality; if those
        find nothing, the hashes of its cuts; if those find nothing either,
        its keypoints against the bank-side ones; and last, for a picture
        whose hash depends on the decode's scale, its full-resolution hash
        (docs/detection.md). The later steps come from ``later``, or else
        are made from ``hashes.picture`` as they are needed."""
        queries: list[tuple[str, str, str]] = []
        for name in ("md5", "sha1", "sha256"):
            value = getattr(hashes, name)
            if value:
                queries.append((get_signal(name).name, value, "none"))
        if hashes.pdq_variants is not None:
            # Each variant passed its own quality check when it was made.
            queries.extend(("pdq", value, transform) for transform, value in hashes.pdq_variants.items())
        elif hashes.pdq and (hashes.pdq_quality or 0) >= PDQ_MIN_QUALITY:
            queries.append(("pdq", hashes.pdq, "none"))
        kept = [hit for found in self._search(queries) for hit in found]
        # The costlier query variants only when the cheaper ones found nothing
        # (nor hit a suppress bank): cuts of the picture, then its keypoints,
        # those only if a bank has any.
        # Last, for the few pictures whose hash depends on the decode's scale,
        # a hash from a full-resolution decode (a decode costs most).
        steps = later if later is not None else hashes.picture
        if not kept and steps is not None:
            kept = self._derived_hits(steps.cut_hashes())
        if not kept and steps is not None and hashes.pdq and self.has_keypoints():
            keypoints = steps.keypoints()
            if keypoints is not None:
                kept = self._keypoint_hits(keypoints, hashes.pdq)
        if not kept and steps is not None:
            kept = self._derived_hits(steps.full_hashes())
        return self._to_matches(kept)

    def has_keypoints(self) -> bool:
        """Whether any bank has bank-side keypoints (else a query's are not looked for)."""
        return any(len(bank.keypoints) for bank in self.banks.values())

    def _derived_hits(self, derived: dict[str, str]) -> list[_Hit]:
        """Hits for PDQ hashes derived from the query (by transform name),
        held to the stricter ``DERIVED_MAX_DISTANCE``."""
        queries = [("pdq", value, transform) for transform, value in derived.items()]
        return [hit for found in self._search(queries) for hit in found if hit.distance <= DERIVED_MAX_DISTANCE]

    def _keypoint_hits(self, keypoints: Keypoints, query_pdq: str) -> list[_Hit]:
        """Entries found by their bank-side keypoints. The hit carries the
        entry's own PDQ value, and as its distance the whole query's PDQ
        distance to it (for information: the keypoint check decided)."""
        found = [(bank, match) for bank in self.banks.values() for match in bank.keypoints.search(keypoints)]
        if not found:
            return []
        entry_ids = {match.entry_id for _, match in found}
        details = self._entry_details(entry_ids)
        own_pdq: dict[int, str] = {}
        with self.engine.connect() as connection:
            for entry_id, value in connection.execute(
                select(EntrySignal.entry_id, EntrySignal.value).where(
                    EntrySignal.entry_id.in_(sorted(entry_ids)), EntrySignal.signal == "pdq"
                )
            ):
                if entry_id in details and value not in details[entry_id].variants:
                    own_pdq[entry_id] = value
        hits = []
        for bank, match in found:
            own = own_pdq.get(match.entry_id)
            if own:
                hits.append(_Hit(bank, match.entry_id, "pdq", own, pdq_distance(query_pdq, own), KEYPOINTS_TRANSFORM))
        return hits
