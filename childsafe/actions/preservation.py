"""The evidence store: uploads preserved because they matched a bank whose
action is ``preserve`` (see ``childsafe.actions.on_match``).

Content is written once to ``CHILDSAFE_HOME/preserved/``, named by its
SHA-256 and read-only; a record says why, for which key and until when.
``purge_expired`` removes it after the retention period (``childsafe
purge-preserved``), each removal audited.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, select, update

from childsafe.fileio import atomic_binary_file
from childsafe.store import record_audit
from childsafe.store.models import PreservedItem, utc_now

__all__ = ["preserve_content", "purge_expired", "preserved_path"]


def preserved_path(home: Path, sha256: str) -> Path:
    """Where the evidence store keeps content with this SHA-256."""
    return home / "preserved" / sha256[:2] / sha256


def preserve_content(home: Path, data: bytes, sha256: str) -> None:
    """Write ``data`` to the evidence store under its SHA-256, once, owner-read-only."""
    path = preserved_path(home, sha256)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_binary_file(path, permissions=0o400) as handle:
        handle.write(data)


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
