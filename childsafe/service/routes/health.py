"""``GET /v1/health``: no key needed; says the service is up and how big its index is."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from childsafe.service.dependencies import context_of

router = APIRouter(prefix="/v1", tags=["health"])


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    """``{"status": "ok", "index": {SIGNAL: {"size": int}}}``"""
    async with context_of(request).current_index() as matcher:
        sizes = matcher.sizes()
    return {"status": "ok", "index": sizes}
