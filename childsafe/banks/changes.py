"""The bank change log: what changed in which bank, in ``seq`` order. Every
process that matches keeps its index in step by following it
(``childsafe/index/matcher.py``). This module owns it: the operations, the
one writer, and the plain readers. (On PostgreSQL, where seqs can commit out
of order, the follower's gap-filling queries stay with the follower.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection, func, insert, select

from childsafe.store.models import BankChange, utc_now

__all__ = ["Change", "ChangeOp", "bank_ops_between", "changes_after", "latest_seq", "log_change"]


class ChangeOp(StrEnum):
    """What a logged change did (stored as its value)."""

    ADD = "add"  # one entry added (``entry_id`` set)
    REMOVE = "remove"  # one entry removed (``entry_id`` set)
    RELOAD = "reload"  # many entries changed at once: rebuild the bank's index
    UPDATE = "update"  # categories or source ids changed, not hashes
    CREATE = "create"  # a bank made
    DROP = "drop"  # a bank deleted


@dataclass(frozen=True)
class Change:
    """One logged change."""

    seq: int
    bank_id: int
    op: ChangeOp
    entry_id: int | None


def log_change(connection: Connection, bank_id: int, op: ChangeOp, entry_ids: Sequence[int | None] = (None,)) -> None:
    """Log ``op`` on ``bank_id`` (once per entry id), in the caller's transaction,
    so the change is seen exactly when what it describes is committed."""
    now = utc_now()
    connection.execute(
        insert(BankChange), [{"bank_id": bank_id, "op": op.value, "entry_id": e, "at": now} for e in entry_ids]
    )


def latest_seq(connection: Connection) -> int:
    """The highest seq logged (0 for none)."""
    return connection.scalar(select(func.max(BankChange.seq))) or 0


def changes_after(connection: Connection, seq: int) -> list[Change]:
    """Every change above ``seq``, in order (SQLite, where seqs commit in order)."""
    rows = connection.execute(
        select(BankChange.seq, BankChange.bank_id, BankChange.op, BankChange.entry_id)
        .where(BankChange.seq > seq)
        .order_by(BankChange.seq)
    )
    return [Change(row.seq, row.bank_id, ChangeOp(row.op), row.entry_id) for row in rows]


def bank_ops_between(
    connection: Connection, bank_id: int, after: int, upto: int, limit: int | None = None
) -> list[tuple[ChangeOp, int | None]]:
    """(op, entry id) of one bank's changes with ``after < seq <= upto``, in
    order; at most ``limit`` of them."""
    query = (
        select(BankChange.op, BankChange.entry_id)
        .where(BankChange.bank_id == bank_id, BankChange.seq > after, BankChange.seq <= upto)
        .order_by(BankChange.seq)
    )
    rows = connection.execute(query if limit is None else query.limit(limit))
    return [(ChangeOp(op), entry_id) for op, entry_id in rows]
