"""What a match does, per bank: nothing, a webhook event, or preserving the
upload as evidence.

- ``webhook``: the event is written to the outbox (``webhook_events``) in
  the request that found the match, and delivered by ``deliver_due``
  (``childsafe.service.webhooks``: signing, the destination guard, retries).
  Nothing is lost when the receiver is down: the outbox is in the database.
- ``preserve``: the uploaded bytes are written once to the evidence store
  (``CHILDSAFE_HOME/preserved/``, named by their SHA-256, read-only), with a
  record of why, for which key and until when, and an audit event;
  ``purge_expired`` removes them after the retention period.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, insert, select, update

from childsafe.fileio import atomic_binary_file
from childsafe.index import Match
from childsafe.service.webhooks import MAX_ATTEMPTS, deliver_due
from childsafe.signals import FileHashes
from childsafe.store import record_audit
from childsafe.store.models import Bank, PreservedItem, WebhookEvent, utc_now

# deliver_due is re-exported here, where the service has always found it.
__all__ = ["act_on_matches", "deliver_due", "purge_expired", "preserved_path", "MAX_ATTEMPTS"]


def preserved_path(home: Path, sha256: str) -> Path:
    """Where the evidence store keeps content with this SHA-256."""
    return home / "preserved" / sha256[:2] / sha256


def _preserve(home: Path, data: bytes, sha256: str) -> None:
    path = preserved_path(home, sha256)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_binary_file(path, permissions=0o400) as handle:
        handle.write(data)


def act_on_matches(
    engine: Engine, home: Path, matches: list[Match], hashes: FileHashes, data: bytes | None, key_name: str
) -> None:
    """Carry out the actions of the banks that ``matches`` came from."""
    names = sorted({m.bank for m in matches})
    if not names:
        return
    with engine.connect() as connection:
        banks = {b.name: b for b in connection.execute(select(Bank).where(Bank.name.in_(names), Bank.action != "none"))}
    now = utc_now()
    for name, bank in banks.items():
        found = [m.to_dict() for m in matches if m.bank == name]
        if bank.action == "webhook" and bank.webhook_url:
            payload = {
                "event_id": uuid.uuid4().hex,
                "type": "match",
                "at": now.isoformat(),
                "bank": name,
                "key": key_name,
                "content": {"sha256": hashes.sha256, "md5": hashes.md5, "pdq": hashes.pdq, "mime": hashes.mime},
                "matches": found,
            }
            with engine.begin() as connection:
                connection.execute(
                    insert(WebhookEvent).values(
                        bank=name, url=bank.webhook_url, secret=bank.webhook_secret, payload=payload,
                        created_at=now, attempts=0, next_attempt_at=now,
                    )
                )  # fmt: skip
        elif bank.action == "preserve" and data is not None and hashes.sha256:
            _preserve(home, data, hashes.sha256)
            expires = now + timedelta(days=bank.preserve_days or 90)
            with engine.begin() as connection:
                connection.execute(
                    insert(PreservedItem).values(
                        sha256=hashes.sha256, bank=name, entry_id=found[0]["entry_id"], size=len(data), mime=hashes.mime,
                        key_name=key_name, preserved_at=now, expires_at=expires,
                    )
                )  # fmt: skip
            record_audit(
                engine, "preserve",
                {"sha256": hashes.sha256, "bank": name, "key": key_name, "size": len(data), "expires_at": expires.isoformat()},
                actor=f"api:{key_name}",
            )  # fmt: skip


def purge_expired(engine: Engine, home: Path) -> int:
    """Remove preserved uploads whose retention has passed (an audit event
    each); content still held for another, unexpired record stays."""
    now = utc_now()
    with engine.begin() as connection:
        expired = connection.execute(
            select(PreservedItem).where(PreservedItem.expires_at <= now, PreservedItem.purged_at.is_(None))
        ).all()
        for item in expired:
            connection.execute(update(PreservedItem).where(PreservedItem.id == item.id).values(purged_at=now))
        still_held = set(connection.scalars(select(PreservedItem.sha256).where(PreservedItem.purged_at.is_(None))))
    for item in expired:
        if item.sha256 not in still_held:
            preserved_path(home, item.sha256).unlink(missing_ok=True)
        record_audit(
            engine,
            "preserve.purge",
            {"sha256": item.sha256, "bank": item.bank, "preserved_at": item.preserved_at.isoformat()},
        )
    return len(expired)
