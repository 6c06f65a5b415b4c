"""Bank curation (role curator): create, list, show, delete, entries, import.
A change is matched by the next request in every worker process (the
change log, see childsafe/index/matcher.py). Every change is audited with
the caller's key as its actor (``api:KEY_NAME``)."""

from __future__ import annotations

import io
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from childsafe.banks import (
    BankAction,
    NewEntry,
    VideoRule,
    add_entries,
    bank_info,
    create_bank,
    delete_bank,
    import_bank_stream,
    list_banks,
    remove_entry,
)
from childsafe.service.dependencies import UPLOAD_BODY, context_of, require, upload_of

router = APIRouter(prefix="/v1/banks", tags=["banks"], dependencies=[Depends(require("curate"))])


def _actor(request: Request) -> str:
    """The audit actor of a request: its key's name (set by the guard)."""
    return f"api:{getattr(request.state, 'key_name', '?')}"


def _changed(request: Request) -> None:
    """This worker's next match follows the change log at once (other workers within a few milliseconds)."""
    context_of(request).index_changed()


class BankCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scheme: str = "none"
    kind: str = "match"
    pdq_threshold: int | None = Field(default=None, ge=0, le=63)
    action: str = "none"
    webhook_url: str | None = Field(default=None, max_length=2000)
    webhook_secret: str | None = Field(default=None, max_length=200)
    preserve_days: int | None = Field(default=None, ge=1, le=3650)
    vpdq_query_percent: float | None = Field(default=None, ge=0, le=100)
    vpdq_compared_percent: float | None = Field(default=None, ge=0, le=100)


class EntryIn(BaseModel):
    signal: str
    value: str
    category: str | None = None
    note: str | None = Field(default=None, max_length=2000)
    source_id: str | None = Field(default=None, max_length=200)


class EntriesIn(BaseModel):
    entries: list[EntryIn] = Field(min_length=1, max_length=10_000)


@router.get("")
async def banks_list(request: Request) -> list[dict[str, Any]]:
    """Every bank (as ``GET /v1/banks/{name}`` shows it)."""
    banks = await run_in_threadpool(list_banks, context_of(request).engine)
    return [bank.to_dict() for bank in banks]


@router.post("", status_code=201)
async def banks_create(request: Request, body: BankCreate) -> dict[str, Any]:
    """Create a bank; 409 if the name is taken, 422 for a webhook without a
    secret or to a non-public address."""
    context = context_of(request)
    action = BankAction(
        body.action, body.webhook_url, body.webhook_secret, body.preserve_days, context.settings.webhook_allow_private
    )
    rule = VideoRule(body.vpdq_query_percent, body.vpdq_compared_percent)
    info = await run_in_threadpool(
        partial(create_bank, video_rule=rule),
        context.engine, body.name, body.scheme, body.kind, body.pdq_threshold, action, _actor(request),
    )  # fmt: skip
    _changed(request)
    return info.to_dict()


@router.get("/{name}")
async def banks_show(request: Request, name: str) -> dict[str, Any]:
    """A bank's settings, counts by signal, and imports."""
    return (await run_in_threadpool(bank_info, context_of(request).engine, name)).to_dict()


@router.delete("/{name}")
async def banks_delete(request: Request, name: str) -> dict[str, Any]:
    """Delete a bank and its entries."""
    await run_in_threadpool(delete_bank, context_of(request).engine, name, _actor(request))
    _changed(request)
    return {"bank": name, "deleted": True}


@router.post("/{name}/entries")
async def entries_add(request: Request, name: str, body: EntriesIn) -> dict[str, Any]:
    """Add entries: ``{"added": int, "ids": [str...]}``, ids in the order given."""
    entries = [NewEntry([(e.signal, e.value)], e.category, e.source_id, e.note) for e in body.entries]
    result = await run_in_threadpool(add_entries, context_of(request).engine, name, entries, _actor(request))
    _changed(request)
    return {"added": result.added, "ids": [str(i) for i in result.ids]}


@router.delete("/{name}/entries/{entry_id}")
async def entries_delete(request: Request, name: str, entry_id: int) -> dict[str, Any]:
    """Remove one entry."""
    await run_in_threadpool(remove_entry, context_of(request).engine, name, entry_id, _actor(request))
    _changed(request)
    return {"bank": name, "entry_id": str(entry_id), "deleted": True}


@router.post("/{name}/import", openapi_extra=UPLOAD_BODY)
async def banks_import(request: Request, name: str) -> dict[str, Any]:
    """Import a hash list (form fields ``file``, and optionally ``format``,
    ``signal``, ``category``, ``replace``): all of it or nothing."""
    upload = await upload_of(request)
    fields = upload.fields
    result = await run_in_threadpool(
        lambda: import_bank_stream(
            context_of(request).engine,
            name,
            io.BytesIO(upload.data),
            upload.filename,
            file_format=fields.get("format", "auto"),
            signal=fields.get("signal") or None,
            category=fields.get("category") or None,
            replace=fields.get("replace", "").lower() in ("1", "true", "yes"),
            importer=_actor(request),
        )
    )
    _changed(request)
    return result.to_dict()
