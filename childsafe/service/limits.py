"""Rate limits that hold across worker processes and machines: a token bucket
per API key (``key:NAME``) and per client address for failed key attempts
(``addr:ADDRESS``), kept in the database (table ``rate_limits``).

One UPSERT both refills a bucket for the time passed and takes what a request
costs, on SQLite and PostgreSQL alike, so two workers can never both spend the
same token. A batch costs one token per query; when it costs more than is
left, it is still let through and leaves a debt that later requests wait out,
so the average rate holds.

Asking the database on every request would cost more than the request: a
worker takes a *lease* of up to a twentieth of a second's tokens at once and
spends it in memory for at most a second. The limit is then exact to within
one lease per worker.

If the database is busy past a short wait (on SQLite, a long bank import
holds the write lock), the worker falls back to a bucket in its own memory
for a second, rather than stalling every request behind the import.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, Float, bindparam, case, delete, event
from sqlalchemy.exc import OperationalError

from childsafe.store import open_database, upsert
from childsafe.store.models import RateLimit

__all__ = ["LocalRateLimiter", "SharedRateLimiter", "limiter_engine"]

log = logging.getLogger("childsafe.service")

#: How long a leased token may be spent; also how long a busy database is left alone.
LEASE_SECONDS = 1.0
#: Rows untouched this long hold full buckets (or forgotten debts) and are deleted.
FORGET_SECONDS = 3600.0


@dataclass
class LocalRateLimiter:
    """A token bucket per name in this process's memory: the fallback when
    the database cannot be asked."""

    rate: float
    burst: float
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, bucket: str, cost: int = 1) -> int:
        """0 if the request may go ahead (and counts it); else seconds to wait."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(bucket, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[bucket] = (tokens - cost, now)
                return 0
            self._buckets[bucket] = (tokens, now)
            return _wait(tokens, self.rate)


def _wait(tokens: float, rate: float) -> int:
    """Whole seconds until a bucket holding ``tokens`` has one again."""
    return max(1, math.ceil((1 - tokens) / rate))


def limiter_engine(database_url: str, busy_ms: int = 200) -> Engine:
    """An engine for the limiter alone: on SQLite it waits for the write lock
    ``busy_ms`` at most (the service's engine waits 30 s, right for imports,
    wrong for a request's rate check)."""
    engine = open_database(database_url, migrate=False)
    if engine.dialect.name == "sqlite":

        def short_wait(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute(f"PRAGMA busy_timeout={int(busy_ms)}")

        event.listen(engine, "connect", short_wait)  # runs after open_database's pragmas
    return engine


class SharedRateLimiter:
    """Token buckets in the database: ``rate`` tokens a second, up to ``burst``.

    ``lease`` is how many tokens a worker takes at once (1: ask the database
    on every request, right for rare events such as failed key attempts).
    """

    def __init__(self, engine: Engine, rate: float, burst: float, lease: int = 1) -> None:
        self.engine = engine
        self.rate = rate
        self.burst = burst
        self.lease = max(1, lease)
        self.fallback = LocalRateLimiter(rate, burst)
        self._leases: dict[str, tuple[float, float]] = {}  # bucket -> (tokens, spendable until)
        #: Buckets found empty, until their next token: a key over its limit costs no database work.
        self._empty_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self._database_busy_until = 0.0
        self._forgot_at = 0.0
        self._statement = _take_statement(engine)

    def take_leased(self, bucket: str, cost: int = 1) -> bool:
        """Spend ``cost`` from this worker's lease if it holds enough (no
        database work; safe to call on the event loop). False: call ``take``."""
        now = time.monotonic()
        with self._lock:
            if self._empty_until.get(bucket, 0.0) > now:
                return False
            tokens, until = self._leases.get(bucket, (0.0, 0.0))
            if until > now and tokens >= cost:
                self._leases[bucket] = (tokens - cost, until)
                return True
        return False

    def take(self, bucket: str, cost: int = 1) -> int:
        """0 if the request may go ahead (and counts it); else seconds to wait (``Retry-After``)."""
        if self.take_leased(bucket, cost):
            return 0
        now = time.monotonic()
        empty_until = self._empty_until.get(bucket, 0.0)
        if empty_until > now:
            return max(1, math.ceil(empty_until - now))
        if now < self._database_busy_until:
            return self.fallback.take(bucket, cost)
        amount = max(cost, self.lease)
        try:
            with self.engine.begin() as connection:
                tokens, granted = connection.execute(
                    self._statement,
                    {"bucket": bucket, "cost": float(amount), "fresh": self.burst - amount,
                     "now": time.time(), "rate": self.rate, "burst": self.burst},
                ).one()  # fmt: skip
                self._forget_old(connection)
        except OperationalError as exc:
            log.warning("rate limits counted in this worker only for %.0f s: %s", LEASE_SECONDS, str(exc.orig)[:200])
            self._database_busy_until = now + LEASE_SECONDS
            return self.fallback.take(bucket, cost)
        if not granted:
            with self._lock:
                if len(self._empty_until) > 10_000:
                    self._empty_until = {b: t for b, t in self._empty_until.items() if t > now}
                self._empty_until[bucket] = now + (1 - tokens) / self.rate
            return _wait(tokens, self.rate)
        if amount > cost:
            with self._lock:
                self._leases[bucket] = (amount - cost, now + LEASE_SECONDS)
        return 0

    def _forget_old(self, connection: Any) -> None:
        # Keeps the table as small as the set of recently active keys and addresses.
        now = time.time()
        if now - self._forgot_at > 600:
            self._forgot_at = now
            connection.execute(delete(RateLimit).where(RateLimit.at < now - FORGET_SECONDS))


def _take_statement(engine: Engine) -> Any:
    """The one UPSERT: refill for the time passed (clocks of other machines
    that run behind never take tokens away), then take ``cost`` if at least
    one token is there. Returns the tokens left and whether it was granted."""
    table = RateLimit.__table__
    old = table.c
    now, rate, burst, cost = (bindparam(name, type_=Float) for name in ("now", "rate", "burst", "cost"))
    elapsed = case((now > old.at, now - old.at), else_=0.0)
    grown = old.tokens + elapsed * rate
    refilled = case((grown > burst, burst), else_=grown)
    enough = refilled >= 1
    return (
        upsert(engine, table)
        .values(bucket=bindparam("bucket"), tokens=bindparam("fresh", type_=Float), at=now, granted=1)
        .on_conflict_do_update(
            index_elements=[old.bucket],
            set_={
                "tokens": case((enough, refilled - cost), else_=refilled),
                "at": case((now > old.at, now), else_=old.at),
                "granted": case((enough, 1), else_=0),
            },
        )
        .returning(old.tokens, old.granted)
    )
