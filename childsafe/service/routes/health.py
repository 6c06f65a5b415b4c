"""``GET /v1/health``: no key needed; says the service is up and how big its index is."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from childsafe.service.app import context_of

router = APIRouter(prefix="/v1", tags=["health"])


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    """``{"status": "ok", "index": {SIGNAL: {"size": int}}}``"""
    context = context_of(request)

    def sizes() -> dict[str, dict[str, int]]:
        with context.index_lock:
            context.sync_index()
            return context.matcher.sizes()

    return {"status": "ok", "index": await run_in_threadpool(sizes)}
