"""A sharded index: which part of the banks one process holds
(``IndexPart``), and a front's searches sent to every shard (``RemoteShards``).

Shards split the entries by id (``entry_id % N == K``), not by hash prefix:
a PDQ search finds every hash within a radius of the query, and hashes that
close share no prefix, so every query has to go to every shard whichever way
the hashes are split. Split by id, the shards stay the same size whatever the
hashes are, and an added entry's shard is known from its id alone.

A shard (``CHILDSAFE_INDEX_SHARD=K/N``) holds its entries' PDQ hashes and
digests. The front (``CHILDSAFE_INDEX_SHARDS``) holds the keypoints and video
frame hashes of every entry itself: bank-side keypoints and known videos are
few (each keypoint entry is ~16 KB, so none reaches millions), and their
searches compare hundreds of vectors a query, which would cost more to send
than to search. The front sends the PDQ and digest searches to every shard
at once, batched, and ranks and describes the merged hits itself.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import orjson

from childsafe.errors import UnavailableError

__all__ = ["IndexPart", "RemoteHit", "RemoteShards", "WHOLE", "FRONT", "SEARCH_PATH", "SHARD_BATCH"]

log = logging.getLogger("childsafe.index")

#: The shard's internal endpoint (docs/spec.md, deviations and additions).
SEARCH_PATH = "/v1/shard/search"
#: Queries in one request to a shard (what the shard's endpoint takes at most).
SHARD_BATCH = 10_000
#: Seconds to connect to a shard, and to wait for its answer (a 10,000-query
#: batch on a 50M-hash shard takes a few seconds), before the query fails.
CONNECT_SECONDS = 2.0
ANSWER_SECONDS = 30.0
#: Seconds a front's readiness waits for each shard's.
READY_SECONDS = 2.0

T = TypeVar("T")


@dataclass(frozen=True)
class IndexPart:
    """Which entries and signals of every bank a process's index holds:
    all of them (``WHOLE``), the PDQ hashes and digests of the entries whose
    id is ``number`` modulo ``count`` (a shard), or the keypoints and videos
    of every entry (``FRONT``)."""

    number: int = 0
    count: int = 1
    front: bool = False

    def holds(self, entry_id: int) -> bool:
        """Whether the entry is this part's."""
        return self.front or entry_id % self.count == self.number

    @property
    def hashes(self) -> bool:
        """Whether it holds PDQ hashes and digests."""
        return not self.front

    @property
    def media(self) -> bool:
        """Whether it holds keypoints and videos (a shard of several does not)."""
        return self.front or self.count == 1

    @property
    def label(self) -> str:
        """``whole``, ``front``, or ``K/N`` for a shard."""
        if self.front:
            return "front"
        return "whole" if self.count == 1 else f"{self.number}/{self.count}"

    @property
    def tag(self) -> str:
        """What a saved index's folder name carries, so that no other part finds it."""
        if self.front:
            return "-front"
        return "" if self.count == 1 else f"-shard-{self.number}-of-{self.count}"


WHOLE = IndexPart()
FRONT = IndexPart(front=True)


@dataclass(frozen=True)
class RemoteHit:
    """A hit a shard found: the bank (id, name, kind, as the shard knows it), the entry, the hash, how far."""

    bank_id: int
    bank_name: str
    bank_kind: str
    entry_id: int
    signal: str
    value: str
    distance: int


class RemoteShards:
    """The shards at ``urls`` (shard ``i`` of ``len(urls)`` at ``urls[i]``),
    each searched over a pooled HTTP client of its own with ``key``."""

    def __init__(self, urls: Sequence[str], key: str) -> None:
        self.urls = list(urls)
        self.parts = [IndexPart(number, len(self.urls)) for number in range(len(self.urls))]
        timeout = httpx.Timeout(ANSWER_SECONDS, connect=CONNECT_SECONDS)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self._clients = [httpx.Client(base_url=url, headers=headers, timeout=timeout, limits=limits) for url in urls]
        # The calling thread asks the first shard; these threads the others, at the same time.
        self._pool = ThreadPoolExecutor(max_workers=max(1, 16 * (len(self.urls) - 1)), thread_name_prefix="shards")

    def close(self) -> None:
        """Close the clients and the threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        for client in self._clients:
            client.close()

    def search(self, queries: Sequence[tuple[str, str]]) -> list[list[RemoteHit]]:
        """Every shard's hits for each ``(signal, value)`` query, merged, in
        query order; ``UnavailableError`` when a shard does not answer."""
        results: list[list[RemoteHit]] = [[] for _ in queries]
        for start in range(0, len(queries), SHARD_BATCH):
            chunk = queries[start : start + SHARD_BATCH]
            body = orjson.dumps({"queries": [{"signal": signal, "value": value} for signal, value in chunk]})
            for answer in self._each(functools.partial(self._search_one, body=body, count=len(chunk))):
                for number, hits in enumerate(answer, start):
                    results[number].extend(hits)
        return results

    def not_ready(self) -> list[str]:
        """Why each shard that is not ready is not (none: all are), asked at the same time."""
        return [reason for reason in self._each(self._readiness) if reason]

    def _each(self, work: Callable[[int], T]) -> list[T]:
        """``work(shard)`` for every shard at once, in shard order."""
        others = [self._pool.submit(work, shard) for shard in range(1, len(self.urls))]
        first = work(0)
        return [first, *(future.result() for future in others)]

    def _search_one(self, shard: int, body: bytes, count: int) -> list[list[RemoteHit]]:
        part = self.parts[shard]
        try:
            response = self._clients[shard].post(SEARCH_PATH, content=body)
        except httpx.HTTPError as exc:
            raise self._unavailable(shard, f"did not answer ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise self._unavailable(shard, f"answered {response.status_code} ({_message(response)})")
        answer: dict[str, Any] = orjson.loads(response.content)
        if answer.get("part") != part.label:
            raise self._unavailable(shard, f"is {answer.get('part')!r:.20}: {_ORDER}")
        if len(answer["results"]) != count:
            raise self._unavailable(shard, f"answered {len(answer['results'])} results for {count} queries")
        banks = {int(bank_id): (name, kind) for bank_id, (name, kind) in answer["banks"].items()}
        return [
            [
                RemoteHit(bank_id, *banks[bank_id], entry_id, signal, value, distance)
                for bank_id, entry_id, signal, value, distance in hits
            ]
            for hits in answer["results"]
        ]

    def _readiness(self, shard: int) -> str | None:
        try:
            response = self._clients[shard].get("/v1/ready", timeout=READY_SECONDS)
        except httpx.HTTPError as exc:
            return f"index shard {self.parts[shard].label} did not answer ({type(exc).__name__})"
        if response.status_code != 200:
            return f"index shard {self.parts[shard].label} is not ready ({_message(response)})"
        given = response.json().get("index", {}).get("part")
        if given != self.parts[shard].label:
            return f"index shard {self.parts[shard].label} is {given!r:.20}: {_ORDER}"
        return None

    def _unavailable(self, shard: int, what: str) -> UnavailableError:
        message = f"index shard {self.parts[shard].label} {what}"
        log.warning("%s at %s", message, self.urls[shard])
        return UnavailableError(f"{message}: a match needs every shard's answer; try again later")


_ORDER = "CHILDSAFE_INDEX_SHARDS lists shard 0/N first, then 1/N, and so on"


def _message(response: httpx.Response) -> str:
    """The reason a childsafe answer gives (an error's message, a readiness's reason), else the status's."""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if isinstance(answer, dict):
        error = answer.get("error")
        reason = error.get("message") if isinstance(error, dict) else answer.get("reason")
        if isinstance(reason, str):
            return reason[:200]
    return response.reason_phrase or "no reason given"
