"""``GET /v1/health`` and ``GET /v1/ready``: no key needed. Health says the
service is up and how big its index is; readiness, for a load balancer in
front of several replicas, whether this one's index is loaded and current."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from childsafe.service.dependencies import context_of
from childsafe.service.responses import OrjsonResponse

router = APIRouter(prefix="/v1", tags=["health"])

log = logging.getLogger("childsafe.service")

#: How long readiness waits for the change log to be followed: longer (a bank
#: being rebuilt after a reload, a database that does not answer) is "not ready".
READY_WAIT_SECONDS = 2.0


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    """``{"status": "ok", "index": {SIGNAL: {"size": int}}}``"""
    async with context_of(request).current_index() as matcher:
        sizes = matcher.sizes()
    return {"status": "ok", "index": sizes}


@router.get("/ready", response_class=OrjsonResponse)
async def ready(request: Request) -> OrjsonResponse:
    """200 ``{"status": "ready", "index": {"seq", "banks", "loaded_from",
    "part"}}`` (``part``: ``whole``, ``K/N`` for a shard, ``front``) when the index is loaded (a worker
    takes no request before) and has followed the bank change log just now;
    503 ``{"status": "not ready", "reason"}`` when it cannot within two
    seconds. A front is ready only when each of its shards is too (and is the
    shard it is listed as); else its reason names the shards that are not."""
    context = context_of(request)
    try:
        await asyncio.wait_for(context.follow_if_due(), READY_WAIT_SECONDS)
    except TimeoutError:
        return _not_ready(f"still following the bank change log after {READY_WAIT_SECONDS:g} s (a bank being rebuilt?)")
    except Exception as exc:  # the database: matching would fail too, so say so here first
        log.warning("not ready: cannot follow the bank change log: %s", type(exc).__name__)
        return _not_ready(f"cannot read the bank change log ({type(exc).__name__}); matching would fail")
    matcher = context.matcher
    if matcher.shards is not None:
        not_ready = await run_in_threadpool(matcher.shards.not_ready)
        if not_ready:
            return _not_ready("; ".join(not_ready))
    follower = matcher.follower
    index: dict[str, Any] = {
        "seq": follower.seq,
        "banks": len(matcher.banks),
        "loaded_from": follower.loaded_from,
        "part": matcher.part.label,
    }
    if matcher.shards is not None:
        index["shards"] = len(matcher.shards.urls)
    return OrjsonResponse({"status": "ready", "index": index})


def _not_ready(reason: str) -> OrjsonResponse:
    return OrjsonResponse({"status": "not ready", "reason": reason}, 503, headers={"Retry-After": "1"})
