"""Referrals (role curator): ``POST /v1/referrals`` reports a preserved
upload to NCMEC (sent at once) or the NCA (a draft whose package
``GET /v1/referrals/{id}/package`` returns, for the portal);
``GET /v1/referrals/{id}`` shows one. Every step is audited with the
caller's key as its actor."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from childsafe.errors import ChildsafeError, UsageError
from childsafe.referrals import Uploader, create_referral, get_referral, send_referral
from childsafe.referrals.nca import nca_package
from childsafe.service.dependencies import context_of, require

router = APIRouter(prefix="/v1/referrals", tags=["referrals"], dependencies=[Depends(require("curate"))])


class ReferralIn(BaseModel):
    destination: str = Field(description="ncmec or nca")
    preserved_sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="the preserved upload's SHA-256")
    uploader_ids: list[str] = Field(default_factory=list, max_length=20)
    uploader_ip: str | None = Field(default=None, max_length=64)
    incident_time: datetime | None = None
    send: bool = Field(default=True, description="ncmec: send it now (false: a draft, sent later)")


def _actor(request: Request) -> str:
    return f"api:{getattr(request.state, 'key_name', '?')}"


@router.post("", status_code=201)
async def referrals_create(request: Request, body: ReferralIn) -> dict[str, Any]:
    """Create a referral and, to NCMEC, send it. The referral is returned
    whether the sending went through or not: a failure is in its ``state``
    (``failed``) and ``last_error``, and ``childsafe report referral-send``
    resumes it."""
    context = context_of(request)
    actor = _actor(request)
    uploader = Uploader(tuple(body.uploader_ids), body.uploader_ip)
    info = await run_in_threadpool(
        create_referral, context.engine, context.settings, body.destination, body.preserved_sha256, uploader,
        body.incident_time, actor,
    )  # fmt: skip
    if body.destination == "ncmec" and body.send:
        try:
            info = await run_in_threadpool(send_referral, context.engine, context.settings, info.id, actor)
        except ChildsafeError:
            info = await run_in_threadpool(get_referral, context.engine, info.id)  # the failure is recorded on it
    return info.to_dict()


@router.get("/{referral_id}")
async def referrals_show(request: Request, referral_id: int) -> dict[str, Any]:
    """One referral: its state, NCMEC's ids, the last error, and the report."""
    return (await run_in_threadpool(get_referral, context_of(request).engine, referral_id)).to_dict()


@router.get("/{referral_id}/package")
async def referrals_package(request: Request, referral_id: int) -> dict[str, Any]:
    """An NCA referral's package (the JSON ``childsafe report referral --to nca`` writes)."""
    info = await run_in_threadpool(get_referral, context_of(request).engine, referral_id)
    if info.destination != "nca":
        raise UsageError(f"referral {referral_id} goes to {info.destination}: only NCA referrals have a package")
    return nca_package(info.contents, info.id)
