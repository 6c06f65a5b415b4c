"""What every request handler of one service process shares: settings, the
database, the match index (kept in step through the change log) and the
per-key rate limiter. Made once by ``create_app``, held in ``app.state``."""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine

from childsafe.config import Settings
from childsafe.deter.prevention import Prevention
from childsafe.index import Matcher, index_root
from childsafe.service.decoding import UploadWorkers
from childsafe.service.keys import find_api_key
from childsafe.store import open_database

KEY_CACHE_SECONDS = 1.0

__all__ = ["ServiceContext", "RateLimiter", "KEY_CACHE_SECONDS"]


@dataclass
class RateLimiter:
    """A token bucket per API key, in this process: ``rate`` requests a second
    on average, bursts up to ``burst``. With several worker processes each
    has its own buckets (the limit applies per process)."""

    rate: float
    burst: float
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self, key: str) -> int:
        """0 if the request may go ahead (and counts it); else seconds to wait."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / self.rate))


@dataclass
class ServiceContext:
    """One service process's shared state."""

    settings: Settings
    engine: Engine
    matcher: Matcher
    limiter: RateLimiter
    max_upload_bytes: int
    #: Worker processes that prepare uploads for matching (decode, cuts, keypoints).
    uploads: UploadWorkers
    prevention: Prevention
    #: Following the change log and searching are not thread-safe together.
    index_lock: threading.Lock = field(default_factory=threading.Lock)
    #: Recently checked keys: digest -> (name, role, checked at). A revoked key
    #: stops working within KEY_CACHE_SECONDS.
    key_cache: dict[str, tuple[str, str, float]] = field(default_factory=dict)

    def find_key(self, key: str) -> tuple[str, str] | None:
        """``(name, role)`` of an active key, asking the database at most once a second per key."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        cached = self.key_cache.get(digest)
        now = time.monotonic()
        if cached and now - cached[2] < KEY_CACHE_SECONDS:
            return cached[0], cached[1]
        found = find_api_key(self.engine, key)
        if found is None:
            self.key_cache.pop(digest, None)
            return None
        if len(self.key_cache) > 10_000:
            self.key_cache.clear()
        self.key_cache[digest] = (found[0], found[1], now)
        return found

    @classmethod
    def open(cls, settings: Settings, max_upload_bytes: int, rate: float) -> ServiceContext:
        engine = open_database(settings.database_url)
        matcher = Matcher(engine, index_root(settings.home, settings.database_url))
        matcher.sync()
        # One decoding process per service worker by default: run `serve --workers N`
        # with N the number of cores, and decoding uses them all without queueing
        # more decodes than there are cores.
        processes = int(os.environ.get("CHILDSAFE_DECODE_PROCESSES", 1))
        uploads = UploadWorkers(settings.limits, processes, settings.budgets.worker_memory_bytes)
        limiter = RateLimiter(rate, 2 * rate)
        return cls(settings, engine, matcher, limiter, max_upload_bytes, uploads, Prevention(engine))

    def close(self) -> None:
        self.uploads.close()
        self.engine.dispose()
