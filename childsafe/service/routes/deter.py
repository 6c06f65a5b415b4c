"""Prevention routes: check a search or link, report what the person did, and
read the counters (role deter); the public warning page with its counting
help links."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field

from childsafe.deter.counters import deter_stats
from childsafe.deter.prevention import Prevention
from childsafe.service.dependencies import context_of, require

router = APIRouter(tags=["prevention"])
api = APIRouter(prefix="/v1/deter", dependencies=[Depends(require("deter"))])


class CheckRequest(BaseModel):
    text: str | None = Field(default=None, max_length=1_000_000)
    url: str | None = Field(default=None, max_length=8000)
    region: str = Field(default="GB", max_length=10)
    lang: str = Field(default="en", max_length=10)


class OutcomeReport(BaseModel):
    outcome: Literal["abandoned", "help_clicked"]
    list: str | None = Field(default=None, max_length=100)
    region: str = Field(default="GB", max_length=10)


def prevention_of(request: Request) -> Prevention:
    """The service's prevention state (lists as matchers, help resources)."""
    return context_of(request).prevention


@api.post("/check")
async def deter_check(request: Request, body: CheckRequest) -> dict[str, Any]:
    """``{"intercept", "matched": {"kind", "list"}|null, "warning": {...}|null}``; never echoes the term."""
    return await run_in_threadpool(prevention_of(request).check, body.text, body.url, body.region, body.lang)


@api.post("/outcome", status_code=204)
async def deter_outcome(request: Request, body: OutcomeReport) -> None:
    """A host reports what followed a warning it showed (e.g. the person abandoned the search)."""
    await run_in_threadpool(prevention_of(request).record, body.outcome, body.region, body.list)


@api.get("/stats")
async def deter_stats_route(request: Request) -> list[dict[str, Any]]:
    """The counters (counts below 10 as ``"<10"``)."""
    return await run_in_threadpool(deter_stats, context_of(request).engine)


router.include_router(api)

_Region = Query(default="GB", max_length=10, description="ISO 3166 region: GB, GB-WLS, US...")
_Lang = Query(default="en", max_length=10, description="Language of the page (English where no reviewed text).")
_List = Query(default=None, alias="list", max_length=100, description="The list that matched, for counting.")


@router.get("/warning", response_class=HTMLResponse)
async def warning_page(
    request: Request, region: str = _Region, lang: str = _Lang, list_name: str | None = _List
) -> str:
    """The warning page with the region's confidential help; its links count a click, then redirect."""
    prevention = prevention_of(request)
    return await run_in_threadpool(prevention.warning_page, region, lang, list_name, "/warning", False)


@router.get("/warning/help/{resource_id}/{kind}")
async def follow_help(
    request: Request, resource_id: str, kind: str, region: str = _Region, list_name: str | None = _List
) -> RedirectResponse:
    """Count a help click and send the person on (``tel:`` or the service's site)."""
    target = await run_in_threadpool(prevention_of(request).follow_help, resource_id, kind, region, list_name)
    if target is None:
        raise HTTPException(404, f"no help link {resource_id}/{kind} for region {region}")
    return RedirectResponse(
        target, status_code=303, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )
