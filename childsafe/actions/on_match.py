"""What a match does, per bank: nothing, a webhook event, or preserving the
upload as evidence.

- ``webhook``: the event is written to the outbox (``webhook_events``) in
  the request that found the match, and delivered by ``deliver_due``
  (``childsafe.actions.webhooks``: signing, the destination guard, retries).
  Nothing is lost when the receiver is down: the outbox is in the database.
- ``preserve``: the uploaded bytes are written once to the evidence store
  (``childsafe.actions.preservation``), with a record of why, for which key
  and until when, and an audit event.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, insert, select

from childsafe.actions.preservation import preserve_content
from childsafe.index import Match
from childsafe.signals import FileHashes
from childsafe.store import record_audit
from childsafe.store.models import Bank, PreservedItem, WebhookEvent, utc_now

__all__ = ["act_on_matches"]


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
            preserve_content(home, data, hashes.sha256)
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
