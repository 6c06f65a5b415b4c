"""What a match does, per bank: nothing, a webhook event, preserving the
upload as evidence, or preserving it and making a draft referral of it.

- ``webhook``: the event is written to the outbox (``webhook_events``) in
  the request that found the match, and delivered by ``deliver_due``
  (``childsafe.actions.webhooks``: signing, the destination guard, retries).
  Nothing is lost when the receiver is down: the outbox is in the database.
- ``preserve``: the uploaded bytes are written once to the evidence store
  (``childsafe.actions.preservation``), with a record of why, for which key
  and until when, and an audit event.
- ``refer-ncmec``/``refer-nca``: preserved as above, then a draft referral
  to NCMEC or the NCA is made of it (``childsafe.referrals``), for a
  curator to send (``childsafe report referral-send ID``). The match request
  does not say who uploaded, so the draft names no uploader.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, insert, select

from childsafe.actions.preservation import preserve_content
from childsafe.banks.catalogue import PRESERVING_ACTIONS
from childsafe.config import Settings
from childsafe.errors import ChildsafeError
from childsafe.index import Match
from childsafe.signals import FileHashes
from childsafe.store import record_audit
from childsafe.store.models import Bank, PreservedItem, WebhookEvent, utc_now

__all__ = ["act_on_matches"]

log = logging.getLogger(__name__)


def act_on_matches(
    engine: Engine,
    home: Path,
    matches: list[Match],
    hashes: FileHashes,
    data: bytes | None,
    key_name: str,
    settings: Settings | None = None,
) -> None:
    """Carry out the actions of the banks that ``matches`` came from
    (``settings``: the service's, needed by the ``refer-*`` actions)."""
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
        elif bank.action in PRESERVING_ACTIONS and data is not None and hashes.sha256:
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
            if bank.action.startswith("refer-") and settings is not None:
                _draft_referral(engine, settings, bank.action.removeprefix("refer-"), hashes.sha256, key_name)


def _draft_referral(engine: Engine, settings: Settings, destination: str, sha256: str, key_name: str) -> None:
    """A draft referral of a preserved upload; a failure is logged and never
    fails the match (the upload is preserved: a curator can still refer it)."""
    from childsafe.referrals import Uploader, create_referral  # imported here: only refer-* banks need it

    try:
        create_referral(engine, settings, destination, sha256, Uploader(), actor=f"api:{key_name}")
    except ChildsafeError as error:
        log.warning("no draft referral of %s to %s: %s", sha256, destination, error)
