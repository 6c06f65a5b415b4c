"""Fetching an exchange into its bank: ``childsafe exchange fetch NAME`` and
the service's loop (``fetch_due``) both call ``fetch_exchange``.

A fetch holds the exchange's lease (one process at a time), reads the
credentials, and writes the source's pages one transaction each: the
page's changes, the run's counts, the checkpoint after it, the lease
renewed and the audit event, together. A fetch that stops anywhere - a
killed process, a network failure, a stalled server - leaves the bank and
checkpoint as of its last page, and the next fetch resumes from there.
Every fetch ends with an ``exchange.fetch`` audit event (outcome and
counts; never a credential), and a failed one is tried again after
``RETRY_SECONDS`` (or its schedule, if sooner).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from childsafe.config import HttpSettings
from childsafe.errors import ChildsafeError, ConflictError
from childsafe.exchanges.apply import PageCounts, apply_page
from childsafe.exchanges.base import FetchContext
from childsafe.exchanges.catalogue import claim_lease, get_exchange, process_owner, release_lease
from childsafe.exchanges.registry import get_source
from childsafe.http_client import make_client
from childsafe.secrets import load_credentials
from childsafe.store import append_audit
from childsafe.store.models import Bank, BankImport, Exchange, utc_now

__all__ = ["FetchResult", "fetch_due", "fetch_exchange", "lease_seconds"]

log = logging.getLogger("childsafe.exchanges")

#: A failed fetch is tried again after this long (or at its schedule, if sooner).
RETRY_SECONDS = 900


@dataclass
class FetchResult:
    """What ``exchange fetch`` prints: ``outcome`` ``ok`` or ``unchanged``,
    this fetch's pages and counts, and whether it resumed an earlier one."""

    exchange: str
    bank: str
    outcome: str
    resumed: bool
    pages: int = 0
    counts: PageCounts = field(default_factory=PageCounts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "bank": self.bank,
            "outcome": self.outcome,
            "resumed": self.resumed,
            "pages": self.pages,
            **self.counts.to_dict(),
        }


def lease_seconds(http: HttpSettings) -> float:
    """How long a fetch's lease lasts: a page's longest time (every try of
    its request, and the waits between them) with a minute to write it.
    Renewed with each page."""
    waits = http.backoff_seconds * float(2**http.retries - 1)
    return float(http.request_seconds * (http.retries + 1) + waits + 60)


class LeaseLost(ChildsafeError):
    """Another process took the exchange's lease (this one was too slow)."""


def _renew(connection: Connection, exchange_id: int, owner: str, seconds: float, values: dict[str, Any]) -> None:
    """Write ``values`` to the exchange and renew the lease, if it is still ``owner``'s."""
    now = utc_now()
    renewed = connection.execute(
        update(Exchange)
        .where(Exchange.id == exchange_id, Exchange.lease_owner == owner)
        .values(lease_until=now + timedelta(seconds=seconds), **values)
    ).rowcount
    if not renewed:
        raise LeaseLost("another process took over this exchange's fetch; this one stopped (it resumes later)")


def _start_run(connection: Connection, exchange: Exchange, bank: Bank, source: str, kind: str) -> int:
    run_id: int = connection.execute(
        insert(BankImport).values(
            bank_id=bank.id, file_name=source[:500], file_sha256="", format=kind[:20],
            importer=f"exchange {exchange.name}"[:200], at=utc_now(), added=0, updated=0, removed=0, rejected=0,
            exchange_id=exchange.id,
        )
    ).inserted_primary_key[0]  # type: ignore[index]  # fmt: skip
    return run_id


def _add_counts(connection: Connection, run_id: int, counts: PageCounts, sha256: str | None) -> dict[str, int]:
    """Add a page's counts to its run; the run's totals."""
    row = connection.execute(
        select(BankImport.added, BankImport.updated, BankImport.removed, BankImport.rejected).where(
            BankImport.id == run_id
        )
    ).one()
    totals = {
        "added": row.added + counts.added,
        "updated": row.updated + counts.updated,
        "removed": row.removed + counts.removed,
        "rejected": row.rejected + counts.rejected,
    }
    extra = {"file_sha256": sha256} if sha256 else {}
    connection.execute(update(BankImport).where(BankImport.id == run_id).values(**totals, **extra))
    return totals


def fetch_exchange(
    engine: Engine,
    name: str,
    http: HttpSettings,
    *,
    owner: str | None = None,
    actor: str | None = None,
    on_page: Callable[[FetchResult], None] | None = None,
) -> FetchResult:
    """Fetch exchange ``name`` into its bank, from where the last fetch got
    to; ``ConflictError`` when another process is fetching it. ``on_page``
    is called after each page is committed (a progress display). A failure
    is recorded on the exchange and audited, then raised."""
    owner = owner or process_owner()
    seconds = lease_seconds(http)
    with engine.connect() as connection:
        exchange = get_exchange(connection, name)
        bank = _bank_of(connection, exchange)
    if not claim_lease(engine, exchange.id, owner, seconds):
        raise ConflictError(f"exchange {name!r} is being fetched by another process; try again later")
    source = get_source(exchange.kind)
    result = FetchResult(name, bank.name, "ok", resumed=exchange.run_import_id is not None)
    run_id = exchange.run_import_id
    actor = actor or f"exchange {name}"
    try:
        context = FetchContext(
            name=name,
            settings=dict(exchange.settings),
            credentials=load_credentials(exchange.settings),
            scheme=bank.scheme,
            http=http,
            client=partial(make_client, http),
        )
        described = source.describe(exchange.settings)
        for page in source.fetch(context, exchange.checkpoint):
            with engine.begin() as connection:
                if page.unchanged:
                    result.outcome = "unchanged"
                    _finish(connection, exchange, owner, seconds, page.checkpoint, result, None, described, actor)
                    break
                if run_id is None or page.restart:
                    run_id = _start_run(connection, exchange, bank, described, exchange.kind)
                counts = apply_page(connection, bank, exchange.id, run_id, page, source.replaces_by_source_id)
                totals = _add_counts(connection, run_id, counts, page.provenance.get("sha256"))
                result.pages += 1
                result.counts += counts
                if page.complete:
                    _finish(connection, exchange, owner, seconds, page.checkpoint, result, totals, described, actor)
                    run_id = None
                else:
                    _renew(
                        connection,
                        exchange.id,
                        owner,
                        seconds,
                        {"checkpoint": page.checkpoint, "run_import_id": run_id},
                    )
            if on_page is not None:
                on_page(result)
    except BaseException as exc:
        _failed(engine, exchange, owner, exc, result, actor)
        raise
    finally:
        release_lease(engine, exchange.id, owner)
    return result


def _bank_of(connection: Connection, exchange: Exchange) -> Bank:
    return Bank(**connection.execute(select(Bank).where(Bank.id == exchange.bank_id)).one()._mapping)


def _finish(
    connection: Connection,
    exchange: Exchange,
    owner: str,
    seconds: float,
    checkpoint: dict[str, Any],
    result: FetchResult,
    totals: dict[str, int] | None,
    described: str,
    actor: str,
) -> None:
    """A fetch done: checkpoint, outcome and schedule, and its audit event."""
    now = utc_now()
    counts = {"pages": result.pages, **(totals or result.counts.to_dict())}
    _renew(
        connection, exchange.id, owner, seconds,
        {"checkpoint": checkpoint, "run_import_id": None, "last_fetch_at": now, "last_outcome": result.outcome,
         "last_error": None, "last_counts": counts, "next_fetch_at": now + timedelta(seconds=exchange.every_seconds)},
    )  # fmt: skip
    detail = {"exchange": exchange.name, "kind": exchange.kind, "bank": result.bank, "source": described,
              "outcome": result.outcome, "resumed": result.resumed, **counts}  # fmt: skip
    append_audit(connection, "exchange.fetch", detail, actor)


def _failed(
    engine: Engine, exchange: Exchange, owner: str, error: BaseException, result: FetchResult, actor: str
) -> None:
    """Record a failed fetch (its one-line reason: our errors' own messages,
    only the type of anything else, which might quote a secret)."""
    reason = str(error) if isinstance(error, ChildsafeError) else f"{type(error).__name__} (see the log)"
    if isinstance(error, LeaseLost):
        return  # the process that took over records its own outcome
    now = utc_now()
    retry = now + timedelta(seconds=min(RETRY_SECONDS, exchange.every_seconds))
    try:
        with engine.begin() as connection:
            connection.execute(
                update(Exchange)
                .where(Exchange.id == exchange.id, Exchange.lease_owner == owner)
                .values(last_fetch_at=now, last_outcome="failed", last_error=reason[:500], next_fetch_at=retry)
            )
            detail = {"exchange": exchange.name, "kind": exchange.kind, "bank": result.bank, "outcome": "failed",
                      "error": reason[:500], "resumed": result.resumed, "pages": result.pages,
                      **result.counts.to_dict()}  # fmt: skip
            append_audit(connection, "exchange.fetch", detail, actor)
    except Exception:  # the database itself may be what failed: the error raised says why
        log.warning("could not record the failed fetch of exchange %s", exchange.name)


def fetch_due(engine: Engine, http: HttpSettings, owner: str) -> list[tuple[str, str]]:
    """Fetch every exchange whose next fetch is due and that no other process
    is fetching: ``(name, outcome or error)`` of each tried. One exchange's
    failure (recorded on it) does not stop the others."""
    now = utc_now()
    with engine.connect() as connection:
        names = list(
            connection.scalars(
                select(Exchange.name)
                .where((Exchange.next_fetch_at.is_(None)) | (Exchange.next_fetch_at <= now))
                .order_by(Exchange.next_fetch_at)
            )
        )
    done: list[tuple[str, str]] = []
    for name in names:
        try:
            done.append((name, fetch_exchange(engine, name, http, owner=owner).outcome))
        except ConflictError:
            continue  # another replica has it
        except ChildsafeError as exc:
            log.warning("exchange %s: fetch failed: %s", name, exc)
            done.append((name, f"failed: {exc}"))
    return done
