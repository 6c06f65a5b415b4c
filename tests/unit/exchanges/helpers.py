"""What exchange tests compare: a bank's entries as plain values."""

from __future__ import annotations

import random

import sqlalchemy as sa

from childsafe.store import audit_events


def bank_entries(engine: sa.Engine, bank: str = "shared") -> set[tuple[str, str | None, str | None]]:
    """``(signals, category, source id)`` of each entry of ``bank``; signals as ``md5:...,sha1:...``."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT e.id, e.category, e.source_id, s.signal, s.value FROM bank_entries e"
                " JOIN banks b ON b.id = e.bank_id JOIN entry_signals s ON s.entry_id = e.id WHERE b.name = :bank"
            ),
            {"bank": bank},
        ).all()
    entries: dict[int, tuple[list[str], str | None, str | None]] = {}
    for entry_id, category, source_id, signal, value in rows:
        entries.setdefault(entry_id, ([], category, source_id))[0].append(f"{signal}:{value}")
    return {(",".join(sorted(signals)), category, source_id) for signals, category, source_id in entries.values()}


def md5s(count: int, seed: int) -> list[str]:
    """``count`` distinct random MD5 values."""
    rng = random.Random(seed)
    return [f"{rng.getrandbits(128):032x}" for _ in range(count)]


def audit_text(engine: sa.Engine) -> str:
    """Every audit event's action and detail, as one text to search."""
    return "\n".join(f"{event.action} {event.detail}" for event in audit_events(engine))
