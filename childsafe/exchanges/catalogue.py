"""The exchanges a database knows: add, list, remove, and the lease that
lets one process at a time fetch an exchange (replicas share the database).

An exchange's settings hold where its credentials are, never the
credentials; ``ExchangeInfo`` is what ``exchange list`` shows of it.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, or_, select, update

from childsafe.banks.catalogue import get_bank
from childsafe.errors import ConflictError, NotFoundError, UsageError
from childsafe.exchanges.registry import get_source
from childsafe.naming import checked_name
from childsafe.secrets import check_credentials_file
from childsafe.store import append_audit
from childsafe.store.models import Bank, BankImport, Exchange, utc_now

__all__ = [
    "ExchangeInfo",
    "add_exchange",
    "claim_lease",
    "get_exchange",
    "list_exchanges",
    "process_owner",
    "release_lease",
    "remove_exchange",
]

#: The shortest schedule: a service's poll is no denial of service on the source.
MIN_EVERY_SECONDS = 60


@dataclass
class ExchangeInfo:
    """What ``exchange list`` shows of an exchange: no credential, only where they are."""

    name: str
    kind: str
    bank: str
    source: str
    every_seconds: int
    credentials: str  # "none", "env VAR" or "file PATH"
    checkpoint: dict[str, Any] | None
    fetching: bool  # a fetch began and has not finished (it resumes)
    last_fetch_at: datetime | None
    last_outcome: str | None
    last_error: str | None
    last_counts: dict[str, Any] | None
    next_fetch_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "bank": self.bank,
            "source": self.source,
            "every_seconds": self.every_seconds,
            "credentials": self.credentials,
            "checkpoint": self.checkpoint,
            "fetching": self.fetching,
            "last_fetch_at": self.last_fetch_at.isoformat() if self.last_fetch_at else None,
            "last_outcome": self.last_outcome,
            "last_error": self.last_error,
            "last_counts": self.last_counts,
            "next_fetch_at": self.next_fetch_at.isoformat() if self.next_fetch_at else None,
        }


def _info(exchange: Exchange, bank_name: str) -> ExchangeInfo:
    settings = exchange.settings
    if settings.get("credentials_env"):
        credentials = f"env {settings['credentials_env']}"
    elif settings.get("credentials_file"):
        credentials = f"file {settings['credentials_file']}"
    else:
        credentials = "none"
    return ExchangeInfo(
        name=exchange.name,
        kind=exchange.kind,
        bank=bank_name,
        source=get_source(exchange.kind).describe(settings),
        every_seconds=exchange.every_seconds,
        credentials=credentials,
        checkpoint=exchange.checkpoint,
        fetching=exchange.run_import_id is not None,
        last_fetch_at=exchange.last_fetch_at,
        last_outcome=exchange.last_outcome,
        last_error=exchange.last_error,
        last_counts=exchange.last_counts,
        next_fetch_at=exchange.next_fetch_at,
    )


def get_exchange(connection: Connection, name: str) -> Exchange:
    """The exchange called ``name``; ``NotFoundError`` if there is none."""
    row = connection.execute(select(Exchange).where(Exchange.name == name)).first()
    if row is None:
        raise NotFoundError(f"no exchange called {name!r}; `childsafe exchange list` shows the exchanges")
    return Exchange(**row._mapping)


def add_exchange(
    engine: Engine,
    name: str,
    kind: str,
    bank: str,
    settings: dict[str, Any],
    *,
    every_seconds: int = 3600,
    credentials_file: Path | None = None,
    credentials_env: str | None = None,
    actor: str | None = None,
) -> ExchangeInfo:
    """Add an exchange fetching into ``bank`` (which must exist) every
    ``every_seconds``; its first fetch is due at once. ``settings`` are the
    source's (a URL list's ``url``), checked by the source. Credentials are
    taken from ``credentials_env`` (a variable's name) or ``credentials_file``
    (owner-only: ``chmod 600``) at each fetch; only where they are is stored."""
    checked_name(name, "exchange")
    source = get_source(kind)
    if every_seconds < MIN_EVERY_SECONDS:
        raise UsageError(f"{{field}} must be at least {MIN_EVERY_SECONDS} seconds", field="every")
    if credentials_file is not None and credentials_env:
        raise UsageError("give the credentials in a file or an environment variable, not both")
    stored = source.check_settings(dict(settings), credentials_file is not None or bool(credentials_env))
    if credentials_file is not None:
        stored["credentials_file"] = str(check_credentials_file(credentials_file))
    if credentials_env:
        stored["credentials_env"] = credentials_env
    with engine.begin() as connection:
        bank_row = get_bank(connection, bank)
        if connection.scalar(select(Exchange.id).where(Exchange.name == name)) is not None:
            raise ConflictError(f"an exchange called {name!r} exists already")
        connection.execute(
            insert(Exchange).values(
                name=name,
                kind=kind,
                bank_id=bank_row.id,
                settings=stored,
                every_seconds=every_seconds,
                created_at=utc_now(),
                next_fetch_at=utc_now(),
            )
        )
        exchange = get_exchange(connection, name)
        info = _info(exchange, bank_row.name)
        detail = {"exchange": name, "kind": kind, "bank": bank, "source": info.source, "every_seconds": every_seconds}
        append_audit(connection, "exchange.add", detail, actor)
    return info


def list_exchanges(engine: Engine) -> list[ExchangeInfo]:
    """Every exchange, by name."""
    with engine.connect() as connection:
        rows = connection.execute(select(Exchange, Bank.name.label("bank_name")).join(Bank).order_by(Exchange.name))
        exchanges = [
            (Exchange(**{k: v for k, v in row._mapping.items() if k != "bank_name"}), row.bank_name) for row in rows
        ]
    return [_info(exchange, bank_name) for exchange, bank_name in exchanges]


def remove_exchange(engine: Engine, name: str, actor: str | None = None) -> None:
    """Remove an exchange. The entries it brought stay in the bank, disowned:
    no later exchange deletes them (their imports keep the exchange's name)."""
    with engine.begin() as connection:
        exchange = get_exchange(connection, name)
        connection.execute(update(BankImport).where(BankImport.exchange_id == exchange.id).values(exchange_id=None))
        connection.execute(delete(Exchange).where(Exchange.id == exchange.id))
        append_audit(connection, "exchange.remove", {"exchange": name}, actor)


def process_owner() -> str:
    """A name for this process in leases: host, pid, a random part and the
    pid namespace (two containers may share a host name and a pid)."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{uuid.uuid4().hex[:8]}:{_pid_namespace()}"


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:  # not Linux: a lease is then never taken over early
        return ""


def _gone(owner: str) -> bool:
    """Whether the lease holder ``owner`` is a process of this machine and pid
    namespace that no longer runs (killed mid-fetch): its lease can be taken
    at once instead of running out (about an hour with the default settings).
    A pid used again by a new process only makes it wait for the lease's end."""
    host, _, rest = owner.partition(":")
    pid, _, rest = rest.partition(":")
    namespace = rest.partition(":")[2]
    here = _pid_namespace()
    if host != socket.gethostname()[:100] or not pid.isdigit() or not here or namespace != here:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return False


def claim_lease(engine: Engine, exchange_id: int, owner: str, seconds: float) -> bool:
    """Take the exchange's lease for ``seconds`` unless another process holds
    one that has not run out and still runs (``_gone``): one atomic UPDATE, so
    on SQLite and PostgreSQL alike exactly one of two replicas gets it."""
    now = utc_now()
    with engine.begin() as connection:
        free = or_(Exchange.lease_until.is_(None), Exchange.lease_until < now, Exchange.lease_owner == owner)
        holder = connection.scalar(select(Exchange.lease_owner).where(Exchange.id == exchange_id))
        if holder is not None and holder != owner and _gone(holder):
            free = or_(free, Exchange.lease_owner == holder)
        claimed = connection.execute(
            update(Exchange)
            .where(Exchange.id == exchange_id, free)
            .values(lease_owner=owner, lease_until=now + timedelta(seconds=seconds))
        ).rowcount
    return bool(claimed)


def release_lease(engine: Engine, exchange_id: int, owner: str) -> None:
    """Give the lease back (only if it is still ``owner``'s)."""
    with engine.begin() as connection:
        connection.execute(
            update(Exchange)
            .where(Exchange.id == exchange_id, Exchange.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )
