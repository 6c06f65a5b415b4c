"""API keys and roles.

Roles, and what each may call:

- ``matcher``: hash and match (what a platform's upload path needs);
- ``curator``: everything a matcher may, and bank curation;
- ``deter``: the prevention routes;
- ``admin``: everything.

A key is ``cs_`` and 43 random URL-safe characters (256 bits), shown once;
the database keeps only its SHA-256 (a slow password hash is not needed for
a random secret of this length). Making and revoking a key are audited
(``apikey.create``, ``apikey.revoke``: name and role, never the key).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from childsafe.errors import ConflictError, NotFoundError, UsageError
from childsafe.naming import checked_name
from childsafe.store import append_audit
from childsafe.store.models import ApiKey, utc_now

__all__ = [
    "ROLES",
    "ApiKeyInfo",
    "create_api_key",
    "list_api_keys",
    "revoke_api_key",
    "find_api_key",
    "role_allows",
    "key_session",
    "session_key",
]

ROLES = ("admin", "curator", "matcher", "deter")
_GRANTS = {
    "admin": {"match", "curate", "deter"},
    "curator": {"match", "curate"},
    "matcher": {"match"},
    "deter": {"deter"},
}


@dataclass(frozen=True)
class ApiKeyInfo:
    """A key as listed (never the key itself)."""

    name: str
    role: str
    created_at: str
    revoked: bool

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "created_at": self.created_at, "revoked": self.revoked}


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def role_allows(role: str, permission: str) -> bool:
    """Whether ``role`` may do ``permission`` (``match``, ``curate`` or ``deter``)."""
    return permission in _GRANTS.get(role, set())


def create_api_key(engine: Engine, name: str, role: str, actor: str | None = None) -> str:
    """Make a key called ``name`` with ``role``; returns the key (shown once)."""
    if role not in ROLES:
        raise UsageError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    checked_name(name, "key", also="@")
    key = "cs_" + secrets.token_urlsafe(32)
    try:
        with engine.begin() as connection:
            connection.execute(insert(ApiKey).values(name=name, role=role, key_hash=_digest(key), created_at=utc_now()))
            append_audit(connection, "apikey.create", {"name": name, "role": role}, actor)
    except IntegrityError:
        raise ConflictError(f"a key called {name!r} already exists; revoke it or choose another name") from None
    return key


def list_api_keys(engine: Engine) -> list[ApiKeyInfo]:
    """Every key, by name."""
    with engine.connect() as connection:
        rows = connection.execute(select(ApiKey).order_by(ApiKey.name)).all()
    return [ApiKeyInfo(r.name, r.role, r.created_at.isoformat(), r.revoked_at is not None) for r in rows]


def revoke_api_key(engine: Engine, name: str, actor: str | None = None) -> None:
    """Revoke the key called ``name``: it stops working at once."""
    with engine.begin() as connection:
        role = connection.scalar(select(ApiKey.role).where(ApiKey.name == name, ApiKey.revoked_at.is_(None)))
        done = connection.execute(
            update(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None)).values(revoked_at=utc_now())
        ).rowcount
        if not done:
            raise NotFoundError(f"no active key called {name!r}")
        append_audit(connection, "apikey.revoke", {"name": name, "role": role}, actor)


def find_api_key(engine: Engine, key: str) -> tuple[str, str] | None:
    """``(name, role)`` of an active key, or ``None``."""
    with engine.connect() as connection:
        row = connection.execute(
            select(ApiKey.name, ApiKey.role).where(ApiKey.key_hash == _digest(key), ApiKey.revoked_at.is_(None))
        ).first()
    return (row.name, row.role) if row else None


def key_session(engine: Engine, key: str, lifetime_seconds: int) -> tuple[str, str, str] | None:
    """A browser session for an active ``key``: ``(token, name, role)``, or
    ``None`` for an unknown or revoked key.

    The token is ``NAME.EXPIRES.SIGNATURE``, signed (HMAC-SHA256) with the
    key's stored digest: every service process and replica can check it
    without shared session state, the key itself never sits in the browser,
    and revoking the key ends its sessions at once."""
    found = find_api_key(engine, key)
    if found is None:
        return None
    name, role = found
    expires = int(time.time()) + lifetime_seconds
    return f"{name}.{expires}.{_session_signature(_digest(key), name, expires)}", name, role


def session_key(engine: Engine, token: str) -> tuple[str, str] | None:
    """``(name, role)`` of the active key a ``key_session`` token was made
    for, if it is unexpired and its signature holds; else ``None``."""
    name, _, rest = token.rpartition(".")
    name, _, expires_text = name.rpartition(".")
    if not name or not expires_text.isdigit() or int(expires_text) < time.time():
        return None
    with engine.connect() as connection:
        row = connection.execute(
            select(ApiKey.role, ApiKey.key_hash).where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
        ).first()
    if row is None:
        return None
    expected = _session_signature(row.key_hash, name, int(expires_text))
    return (name, row.role) if hmac.compare_digest(expected, rest) else None


def _session_signature(key_digest: str, name: str, expires: int) -> str:
    return hmac.new(key_digest.encode(), f"session.{name}.{expires}".encode(), hashlib.sha256).hexdigest()
