"""The webhook outbox as an operator reads it: each event, its attempts and
whether it was delivered (``childsafe webhooks``). Writing and delivering
events is the service's job; this only reads the ``webhook_events`` table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from childsafe.store.models import WebhookEvent

__all__ = ["OutboxEvent", "outbox_events"]


@dataclass(frozen=True)
class OutboxEvent:
    """One event of the outbox; ``state`` is ``delivered``, ``dead`` (given
    up on) or ``pending``; ``created_at`` is ISO 8601."""

    id: int
    bank: str
    url: str
    state: str
    attempts: int
    created_at: str
    last_error: str | None

    def to_dict(self) -> dict[str, Any]:
        """The event as one record of ``childsafe webhooks --json``."""
        return {
            "id": self.id, "bank": self.bank, "url": self.url, "state": self.state, "attempts": self.attempts,
            "created_at": self.created_at, "last_error": self.last_error,
        }  # fmt: skip


def outbox_events(engine: Engine, dead_only: bool = False) -> list[OutboxEvent]:
    """Every webhook event, oldest first; only those that could not be
    delivered (dead-lettered) with ``dead_only``."""
    query = select(WebhookEvent).order_by(WebhookEvent.id)
    if dead_only:
        query = query.where(WebhookEvent.dead_at.is_not(None))
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        OutboxEvent(
            id=row.id,
            bank=row.bank,
            url=row.url,
            state="delivered" if row.delivered_at else ("dead" if row.dead_at else "pending"),
            attempts=row.attempts,
            created_at=row.created_at.isoformat(),
            last_error=row.last_error,
        )
        for row in rows
    ]
