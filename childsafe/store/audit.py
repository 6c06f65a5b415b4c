"""The audit log: append-only, each event chained to the one before by hash.

An event's ``entry_hash`` is the SHA-256 of the previous event's hash and
this event's time, actor, action and detail. Changing, inserting or deleting
an event breaks the chain from there on, and ``verify_audit_chain`` says
where. (Someone with write access to the database could rewrite the whole
chain; export ``audit verify --json`` regularly to a place they cannot
reach if that matters.)
"""

from __future__ import annotations

import getpass
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select, text

from childsafe.store.models import AuditEvent, utc_now

__all__ = ["record_audit", "audit_events", "verify_audit_chain", "ChainReport", "GENESIS"]

GENESIS = "0" * 64
_LOCK_ID = 0x63686169  # "chai": serialises appends on PostgreSQL


def _entry_hash(prev_hash: str, at: str, actor: str, action: str, detail: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"prev": prev_hash, "at": at, "actor": actor, "action": action, "detail": detail},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def record_audit(engine: Engine, action: str, detail: dict[str, Any], actor: str | None = None) -> None:
    """Append one event (``actor`` defaults to the operating-system user)."""
    actor = actor or getpass.getuser()
    with engine.connect().execution_options(sqlite_immediate=True) as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        previous = connection.scalar(select(AuditEvent.entry_hash).order_by(AuditEvent.id.desc()).limit(1))
        prev_hash = previous or GENESIS
        at = utc_now()
        connection.execute(
            insert(AuditEvent).values(
                at=at,
                actor=actor,
                action=action,
                detail=detail,
                prev_hash=prev_hash,
                entry_hash=_entry_hash(prev_hash, at.isoformat(), actor, action, detail),
            )
        )


def audit_events(engine: Engine, action: str | None = None) -> list[AuditEvent]:
    """Audit events, oldest first, optionally only those of one action."""
    from sqlalchemy.orm import Session

    query = select(AuditEvent).order_by(AuditEvent.id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    with Session(engine) as session:
        return list(session.scalars(query))


@dataclass
class ChainReport:
    """The result of checking the chain."""

    events: int
    intact: bool
    first_broken: int | None
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"events": self.events, "intact": self.intact, "first_broken": self.first_broken, "reason": self.reason}


def verify_audit_chain(engine: Engine) -> ChainReport:
    """Recompute every event's hash and check each links to the one before."""
    prev_hash = GENESIS
    count = 0
    for event in audit_events(engine):
        count += 1
        if not event.entry_hash:
            prev_hash = ""
            continue  # written before the chain existed
        if event.prev_hash != prev_hash and prev_hash != "":
            return ChainReport(
                count, False, event.id, "does not follow the event before it (one was deleted or inserted)"
            )
        expected = _entry_hash(event.prev_hash, event.at.isoformat(), event.actor, event.action, event.detail)
        if expected != event.entry_hash:
            return ChainReport(count, False, event.id, "its content was changed after it was written")
        prev_hash = event.entry_hash
    return ChainReport(count, True, None, None)
