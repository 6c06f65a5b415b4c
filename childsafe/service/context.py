"""What every request handler of one service process shares: settings, the
database, the match index (kept in step through the change log), the cache
of checked API keys and the rate limiters. Made once by ``create_app``, held
in ``app.state``."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from childsafe.actions.keys import ROLES, find_api_key
from childsafe.actions.match_counts import MatchTally
from childsafe.config import ServiceOptions, Settings
from childsafe.deter.prevention import Prevention
from childsafe.index import Match, Matcher, open_matcher
from childsafe.index.matcher import ShardHits
from childsafe.service.decoding import UploadWorkers
from childsafe.service.limits import SharedRateLimiter, limiter_engine
from childsafe.store import open_database

__all__ = [
    "ServiceContext",
    "KeyCache",
    "shown_matches",
    "KEY_CACHE_SECONDS",
    "SYNC_SECONDS",
    "MATCH_DETAILS",
]

#: How long a checked key is trusted: a revoked key stops working within this.
KEY_CACHE_SECONDS = 1.0
#: How often a worker follows the change log at most: a bank change made
#: elsewhere is matched within this (one query each time, not one a request).
SYNC_SECONDS = 0.01
#: Who sees a match's bank hash ``value`` and ``source_id`` (``CHILDSAFE_MATCH_DETAILS``):
#: one entry for each of ``config.MATCH_DETAILS_LEVELS``.
MATCH_DETAILS: dict[str, tuple[str, ...]] = {"curator": ("curator", "admin"), "all": ROLES, "none": ()}


def shown_matches(matches: list[Match], role: str, details: str = "curator") -> list[dict[str, Any]]:
    """The MATCH objects a key of ``role`` is shown: the bank's hash ``value``
    and ``source_id`` are null unless ``details`` (``CHILDSAFE_MATCH_DETAILS``)
    lets the role see them: an exact bank hash helps whoever wants to tune an
    image until it no longer matches."""
    shown = [match.to_dict() for match in matches]
    if role not in MATCH_DETAILS[details]:
        for match in shown:
            match["value"] = match["source_id"] = None
    return shown


@dataclass
class KeyCache:
    """Checked API keys, so that a request costs no database query for its
    key: each key is looked up again at most once every KEY_CACHE_SECONDS."""

    engine: Engine
    #: SHA-256 of the key (raw bytes: no hex on every request) -> (name, role, checked at).
    _checked: dict[bytes, tuple[str, str, float]] = field(default_factory=dict)

    def cached(self, key: str) -> tuple[str, str] | None:
        """``(name, role)`` of a key checked within the last second, else ``None`` (then call ``lookup``)."""
        found = self._checked.get(hashlib.sha256(key.encode()).digest())
        if found and time.monotonic() - found[2] < KEY_CACHE_SECONDS:
            return found[0], found[1]
        return None

    def lookup(self, key: str) -> tuple[str, str] | None:
        """``(name, role)`` of an active key, asking the database."""
        digest = hashlib.sha256(key.encode()).digest()
        found = find_api_key(self.engine, key)
        if found is None:
            self._checked.pop(digest, None)
            return None
        if len(self._checked) > 10_000:
            self._checked.clear()
        self._checked[digest] = (found[0], found[1], time.monotonic())
        return found


@dataclass
class ServiceContext:
    """One service process's shared state."""

    settings: Settings
    options: ServiceOptions
    engine: Engine
    matcher: Matcher
    #: Worker processes that prepare uploads for matching (decode, cuts, keypoints).
    uploads: UploadWorkers
    prevention: Prevention
    keys: KeyCache
    #: Requests of each key (a batch costs one token a query).
    key_limits: SharedRateLimiter
    #: Failed key attempts of each client address.
    failure_limits: SharedRateLimiter
    #: Following the change log and searching are not thread-safe together.
    index_lock: threading.Lock = field(default_factory=threading.Lock)
    #: Client address -> when its refusal for too many failed keys ends (monotonic).
    blocked_addresses: dict[str, float] = field(default_factory=dict)
    #: Database work that requests share while it runs (see guard._single_flight).
    in_flight: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    #: Matches answered since the counts were last saved (for the dashboard).
    match_tally: MatchTally = field(default_factory=MatchTally)
    _synced_at: float = -1.0
    #: The change-log sync under way in a thread, if any (requests that find the index due wait for it).
    _sync: asyncio.Future[None] | None = None

    @property
    def max_upload_bytes(self) -> int:
        """Uploads larger than this get 413."""
        return self.options.max_upload_bytes

    def sync_index(self) -> None:
        """Follow the change log if it was last followed SYNC_SECONDS ago or
        more (or after a change made through this worker). Call it holding
        ``index_lock``."""
        now = time.monotonic()
        if now - self._synced_at >= SYNC_SECONDS:
            if self.matcher.behind():
                self.matcher.sync()
            self._synced_at = now

    def lookup(self, queries: list[tuple[str, str]]) -> list[list[Match]]:
        """Matches of each ``(signal, value)`` query, the index brought up to date first."""
        with self.index_lock:
            self.sync_index()
            if self.matcher.shards is None:
                return self.matcher.lookup(queries)
        # A front's lookup waits for its shards: not holding the index, so
        # that lookups overlap (it reads only which banks there are).
        return self.matcher.lookup(queries)

    @asynccontextmanager
    async def current_index(self) -> AsyncIterator[Matcher]:
        """The matcher, held for the caller on the event loop and followed up
        to date first when due (``follow_if_due``).

        For short work on the loop (one hash's lookup takes a fraction of a
        millisecond on a 1M-hash bank, less than handing it to a thread and
        back). While another thread holds the index (a batch, an upload's
        lookup), the loop waits for it in short sleeps, so that other
        requests go on meanwhile and lookups never pile up in threads."""
        await self.follow_if_due()
        await self._hold_index()
        try:
            yield self.matcher
        finally:
            self.index_lock.release()

    async def lookup_on_loop(self, queries: list[tuple[str, str]]) -> list[list[Match]]:
        """``lookup`` on the event loop, as ``current_index`` would do it; for
        the hottest route, without a context manager's few microseconds."""
        if time.monotonic() - self._synced_at >= SYNC_SECONDS:
            await self.follow_if_due()
        if self.matcher.shards is not None:  # a front: it waits for its shards, in a thread (see ``lookup``)
            return await run_in_threadpool(self.matcher.lookup, queries)
        await self._hold_index()
        try:
            return self.matcher.lookup(queries)
        finally:
            self.index_lock.release()

    async def shard_search(self, queries: list[tuple[str, str]]) -> ShardHits:
        """A shard's raw hits for a front's queries (``Matcher.shard_search``),
        the index followed up to date first; a large batch in a thread."""
        await self.follow_if_due()
        if len(queries) > 64:
            return await run_in_threadpool(self._shard_search_locked, queries)
        await self._hold_index()
        try:
            return self.matcher.shard_search(queries)
        finally:
            self.index_lock.release()

    def _shard_search_locked(self, queries: list[tuple[str, str]]) -> ShardHits:
        with self.index_lock:
            return self.matcher.shard_search(queries)

    async def follow_if_due(self) -> None:
        """Follow the change log if SYNC_SECONDS have passed since it was last
        followed. Whether it moved is checked on the loop (``Matcher.behind``,
        a few microseconds on SQLite); only when it may have, the sync runs in
        a thread (it is a database query, and applying a change can rebuild a
        bank's index; requests that arrive meanwhile wait for that same sync)."""
        now = time.monotonic()
        if now - self._synced_at >= SYNC_SECONDS and self._sync is None and not self.matcher.behind():
            self._synced_at = now  # nothing new: no thread, no lock
        if now - self._synced_at >= SYNC_SECONDS:
            if self._sync is None:
                self._sync = asyncio.ensure_future(run_in_threadpool(self._sync_locked))
                self._sync.add_done_callback(self._sync_finished)
            await asyncio.shield(self._sync)

    async def _hold_index(self) -> None:
        # Never blocks the loop: another thread may hold the index for a while.
        while not self.index_lock.acquire(blocking=False):
            await asyncio.sleep(0.001)

    def _sync_finished(self, sync: asyncio.Future[None]) -> None:
        self._sync = None

    def _sync_locked(self) -> None:
        with self.index_lock:
            self.sync_index()

    def index_changed(self) -> None:
        """A bank was changed through this worker: its next match follows the change log at once."""
        self._synced_at = -1.0

    def match_json(self, matches: list[Match], role: str) -> list[dict[str, Any]]:
        """The MATCH objects a key of ``role`` is shown (see ``shown_matches``).
        Every answer's matches pass here, so they are counted here (``match_tally``)."""
        if matches:
            self.match_tally.add(matches)
        return shown_matches(matches, role, self.options.match_details)

    @classmethod
    def open(cls, settings: Settings, options: ServiceOptions) -> ServiceContext:
        engine = open_database(settings.database_url)
        matcher = open_matcher(engine, settings, part_only=True)  # a shard serves its front
        matcher.sync()
        # One decoding process per service worker by default: run `serve --workers N`
        # with N the number of cores, and decoding uses them all without queueing
        # more decodes than there are cores.
        uploads = UploadWorkers(settings.limits, options.decode_processes, settings.budgets.worker_memory_bytes)
        limits_engine = limiter_engine(settings.database_url)
        rate = options.rate_per_second
        # A lease of a twentieth of a second's requests: one UPSERT per 20th of a second at full rate.
        key_limits = SharedRateLimiter(limits_engine, rate, 2 * rate, lease=int(rate / 20))
        failures = options.auth_failures_per_minute
        failure_limits = SharedRateLimiter(limits_engine, failures / 60, failures)
        return cls(
            settings,
            options,
            engine,
            matcher,
            uploads,
            Prevention(engine, settings.help_resources, settings.warning_texts),
            KeyCache(engine),
            key_limits,
            failure_limits,
        )

    def close(self) -> None:
        self.uploads.close()
        self.matcher.close()
        self.key_limits.engine.dispose()
        self.engine.dispose()
