"""The audit log: append-only, each event chained to the one before by hash.

An event's ``entry_hash`` is the SHA-256 of the previous event's hash and
this event's time, actor, action and detail. Changing, inserting, reordering
or deleting an event breaks the chain from there on, and
``verify_audit_chain`` says where. Every event has a hash: one without is
reported as broken, never skipped.

Deleting the newest events leaves a shorter chain that is still whole, so
the chain alone cannot show it. An anchor (``AuditAnchor``: how many events
there were and the hash of the last) kept outside the database closes that
gap: a scan writes one into its ``manifest.json``, and
``verify_audit_chain(engine, anchor)`` checks that the log still holds it.
(Someone with write access to the database could still rewrite the whole
chain; the anchors kept elsewhere are what they cannot rewrite.)
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, text

from childsafe.errors import InputFormatError
from childsafe.store.models import AuditEvent, utc_now

__all__ = [
    "record_audit",
    "append_audit",
    "audit_events",
    "audit_head",
    "verify_audit_chain",
    "os_user",
    "AuditAnchor",
    "anchor_from_manifest",
    "ChainReport",
    "GENESIS",
]

GENESIS = "0" * 64
_LOCK_ID = 0x63686169  # "chai": serialises appends on PostgreSQL
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class AuditAnchor:
    """A point in the chain: the number of events up to it (1-based, in id
    order) and the ``entry_hash`` of the last of them (``GENESIS`` when 0)."""

    events: int
    head: str

    def to_dict(self) -> dict[str, Any]:
        return {"events": self.events, "head": self.head}


def anchor_from_manifest(path: Path) -> AuditAnchor:
    """The anchor a scan's ``manifest.json`` holds under ``"audit"``;
    ``InputFormatError`` if the file is not such a manifest."""
    wrong = f"{path} is not a scan manifest with an audit anchor"
    want = '("audit": {"events": int, "head": str}); give a scan\'s manifest.json'
    try:
        manifest = json.loads(path.read_bytes())
    except OSError as exc:
        raise InputFormatError(f"cannot read {path}: {exc.strerror}; give a scan's manifest.json") from None
    except ValueError:
        raise InputFormatError(f"{wrong}: it is not JSON {want}") from None
    audit = manifest.get("audit") if isinstance(manifest, dict) else None
    events = audit.get("events") if isinstance(audit, dict) else None
    head = audit.get("head") if isinstance(audit, dict) else None
    # bool is an int in Python: true must not pass as 1 event.
    if type(events) is not int or events < 0 or not isinstance(head, str) or not _HEX64.match(head):
        raise InputFormatError(f"{wrong} {want}")
    return AuditAnchor(events, head)


def os_user() -> str:
    """The operating-system user this process runs as (its effective uid):
    unlike ``$USER`` or ``getpass``, not something the environment can fake."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid with no passwd entry (containers)
        return str(uid)


def _entry_hash(prev_hash: str, at: str, actor: str, action: str, detail: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"prev": prev_hash, "at": at, "actor": actor, "action": action, "detail": detail},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def append_audit(connection: Connection, action: str, detail: dict[str, Any], actor: str | None = None) -> AuditAnchor:
    """Append one event inside the caller's open transaction, so that a change
    and its audit event are committed together or not at all; returns the
    new anchor. Call it after the change's own writes: on SQLite the write
    lock is then already held, so no other append can come in between."""
    actor = actor or os_user()
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    previous = connection.scalar(select(AuditEvent.entry_hash).order_by(AuditEvent.id.desc()).limit(1))
    prev_hash = previous or GENESIS
    at = utc_now()
    entry_hash = _entry_hash(prev_hash, at.isoformat(), actor, action, detail)
    connection.execute(
        insert(AuditEvent).values(
            at=at, actor=actor, action=action, detail=detail, prev_hash=prev_hash, entry_hash=entry_hash
        )
    )
    events = connection.scalar(select(func.count()).select_from(AuditEvent))
    return AuditAnchor(int(events or 0), entry_hash)


def record_audit(engine: Engine, action: str, detail: dict[str, Any], actor: str | None = None) -> AuditAnchor:
    """Append one event in its own transaction (``actor`` defaults to the
    operating-system user); returns the anchor of the new event, to keep
    somewhere the database's users cannot change (a scan's manifest)."""
    # IMMEDIATE on SQLite: the write lock is taken before the last hash is read.
    with engine.connect().execution_options(sqlite_immediate=True) as connection, connection.begin():
        return append_audit(connection, action, detail, actor)


def audit_events(engine: Engine, action: str | None = None) -> list[AuditEvent]:
    """Audit events, oldest first, optionally only those of one action."""
    from sqlalchemy.orm import Session

    query = select(AuditEvent).order_by(AuditEvent.id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    with Session(engine) as session:
        return list(session.scalars(query))


def _all_events(engine: Engine) -> Iterator[Any]:
    """Every event's row in id order, streamed (the log may be long)."""
    query = select(
        AuditEvent.id, AuditEvent.at, AuditEvent.actor, AuditEvent.action, AuditEvent.detail,
        AuditEvent.prev_hash, AuditEvent.entry_hash,
    ).order_by(AuditEvent.id)  # fmt: skip
    with engine.connect() as connection:
        yield from connection.execute(query.execution_options(yield_per=1000))


def audit_head(engine: Engine) -> AuditAnchor:
    """The anchor of the log as it is now: its number of events and the hash
    of the last (``GENESIS`` when empty)."""
    with engine.connect() as connection:
        events = connection.scalar(select(func.count()).select_from(AuditEvent)) or 0
        head = connection.scalar(select(AuditEvent.entry_hash).order_by(AuditEvent.id.desc()).limit(1))
    return AuditAnchor(int(events), head or GENESIS)


@dataclass
class ChainReport:
    """The result of checking the chain: ``head`` is the log's anchor as it
    is now (record it to detect later deletions), ``anchor`` the one checked."""

    events: int
    intact: bool
    first_broken: int | None
    reason: str | None
    head: AuditAnchor | None = None
    anchor: AuditAnchor | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "intact": self.intact,
            "first_broken": self.first_broken,
            "reason": self.reason,
            "head": self.head.to_dict() if self.head else None,
            "anchor": self.anchor.to_dict() if self.anchor else None,
        }


def verify_audit_chain(engine: Engine, anchor: AuditAnchor | None = None) -> ChainReport:
    """Recompute every event's hash and check each links to the one before;
    with ``anchor``, also check the log still holds that anchor (event number
    ``anchor.events`` exists and has hash ``anchor.head``), which shows the
    newest events deleted. ``first_broken`` is the id of the first bad event."""
    prev_hash = GENESIS
    count = 0
    anchored: tuple[int, str] | None = (0, GENESIS) if anchor is not None and anchor.events == 0 else None
    broken: tuple[int, str] | None = None
    for event in _all_events(engine):
        count += 1
        if broken is not None:
            continue  # only counting now
        if not event.entry_hash:
            broken = (event.id, f"event {event.id} has no hash (written outside childsafe, or its hash was erased)")
        elif event.prev_hash != prev_hash:
            broken = (
                event.id,
                "does not follow the event before it (one was deleted or inserted, or events were reordered)",
            )
        elif event.entry_hash != _entry_hash(
            event.prev_hash, event.at.isoformat(), event.actor, event.action, event.detail
        ):
            broken = (event.id, "its content was changed after it was written")
        else:
            prev_hash = event.entry_hash
            if anchor is not None and count == anchor.events:
                anchored = (event.id, event.entry_hash)
    if broken is not None:
        return ChainReport(count, False, broken[0], broken[1], None, anchor)
    head = AuditAnchor(count, prev_hash)
    if anchor is not None:
        if anchor.events > count:
            reason = f"the log holds {count} events but the manifest anchors {anchor.events} (events deleted?)"
            return ChainReport(count, False, None, reason, head, anchor)
        if anchored is None or anchored[1] != anchor.head:
            reason = f"event {anchor.events} is not the anchored one (its hash differs from the manifest's)"
            return ChainReport(count, False, anchored[0] if anchored else None, reason, head, anchor)
    return ChainReport(count, True, None, None, head, anchor)
