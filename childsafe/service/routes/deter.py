"""Prevention routes (role deter): check a search or link, and read the counters."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from childsafe.deter.check import check, deter_stats
from childsafe.deter.lists import lists_version, load_matchers
from childsafe.deter.resources import load_resources
from childsafe.service.app import context_of
from childsafe.service.auth import require

router = APIRouter(prefix="/v1/deter", tags=["prevention"], dependencies=[Depends(require("deter"))])
_lock = threading.Lock()


class CheckRequest(BaseModel):
    text: str | None = Field(default=None, max_length=1_000_000)
    url: str | None = Field(default=None, max_length=8000)
    region: str = Field(default="GB", max_length=10)
    lang: str = Field(default="en", max_length=10)


def _matchers(request: Request) -> Any:
    """The lists' matchers, rebuilt when a list has changed (checked on each request)."""
    state = request.app.state
    engine = context_of(request).engine
    version = lists_version(engine)
    with _lock:
        if getattr(state, "deter_version", None) != version:
            state.deter_matchers = (*load_matchers(engine), load_resources())
            state.deter_version = version
        return state.deter_matchers


@router.post("/check")
async def deter_check(request: Request, body: CheckRequest) -> dict[str, Any]:
    """``{"intercept", "matched": {"kind", "list"}|null, "warning": {...}|null}``; never echoes the term."""

    def work() -> dict[str, Any]:
        terms, urls, resources = _matchers(request)
        return check(context_of(request).engine, terms, urls, resources, body.text, body.url, body.region, body.lang)

    return await run_in_threadpool(work)


@router.get("/stats")
async def deter_stats_route(request: Request) -> list[dict[str, Any]]:
    """The counters (counts below 10 as ``"<10"``)."""
    return await run_in_threadpool(deter_stats, context_of(request).engine)
