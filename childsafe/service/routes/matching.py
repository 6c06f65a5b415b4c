"""Hashing and matching: upload a file, or give hashes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from childsafe.errors import UsageError
from childsafe.service.actions import act_on_matches
from childsafe.service.app import context_of
from childsafe.service.auth import check_role, require, role_of
from childsafe.service.responses import OrjsonResponse
from childsafe.service.uploads import BadUpload, Upload, UploadTooLarge, read_multipart
from childsafe.signals import FileHashes, parse_signal_value

router = APIRouter(prefix="/v1", tags=["matching"])

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}
MAX_BATCH = 10_000


class Query_(BaseModel):
    signal: str = Field(examples=["pdq"])
    value: str


class BatchRequest(BaseModel):
    queries: list[Query_] = Field(max_length=MAX_BATCH)


async def upload_of(request: Request) -> Upload:
    """The uploaded file, read into memory within the size limit."""
    from fastapi import HTTPException

    context = context_of(request)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > context.max_upload_bytes:
        raise HTTPException(413, f"upload is over the {context.max_upload_bytes:,}-byte limit")
    try:
        return await read_multipart(request.headers.get("content-type", ""), request.stream(), context.max_upload_bytes)
    except UploadTooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    except BadUpload as exc:
        raise HTTPException(422, str(exc)) from None


def _hash(request: Request, upload: Upload, dihedral: bool) -> FileHashes:
    return context_of(request).hasher.hash(upload.data, upload.filename, dihedral)


@router.post("/hash", openapi_extra=_UPLOAD_BODY, dependencies=[Depends(require("match"))])
async def hash_upload(request: Request) -> dict[str, Any]:
    """The ``hash`` object of the uploaded file (type from its bytes)."""
    upload = await upload_of(request)
    result = await run_in_threadpool(_hash, request, upload, False)
    return result.to_dict()


@router.post("/match", openapi_extra=_UPLOAD_BODY, dependencies=[Depends(require("match"))])
async def match_upload(request: Request) -> dict[str, Any]:
    """``{"hash": {...}, "matches": [MATCH...]}`` for the uploaded file (all 8 rotations and flips tried)."""
    upload = await upload_of(request)
    context = context_of(request)

    def work() -> dict[str, Any]:
        hashes = _hash(request, upload, True)
        with context.index_lock:
            context.matcher.sync()
            matches = context.matcher.match_hashes(hashes)
        if matches:
            act_on_matches(context.engine, context.settings.home, matches, hashes, upload.data, request.state.key_name)
        return {"hash": hashes.to_dict(), "matches": context.match_json(matches, role_of(request))}

    return await run_in_threadpool(work)


def _lookup(request: Request, queries: list[tuple[str, str]]) -> list[list[dict[str, Any]]]:
    context = context_of(request)
    role = role_of(request)
    return [context.match_json(matches, role) for matches in context.lookup(queries)]


@router.get("/match", response_class=OrjsonResponse)
async def match_hash(
    request: Request,
    signal: Annotated[str, Query(examples=["md5"])],
    value: Annotated[str, Query()],
) -> OrjsonResponse:
    """``{"matches": [MATCH...]}`` for one hash."""
    check_role(request, "match")  # not a dependency: the hottest route, and FastAPI's dependencies cost
    query = parse_signal_value(f"{signal}:{value}")
    context = context_of(request)
    async with context.current_index() as matcher:
        (matches,) = matcher.lookup([query])
    return OrjsonResponse({"matches": context.match_json(matches, role_of(request))})


@router.post("/match/batch", dependencies=[Depends(require("match"))], response_class=OrjsonResponse)
async def match_batch(request: Request, body: BatchRequest) -> OrjsonResponse:
    """``{"results": [{"matches": [...]}...]}`` in query order (at most 10,000
    queries; each costs one request of the key's rate limit)."""
    parsed = []
    for number, query in enumerate(body.queries):
        try:
            parsed.append(parse_signal_value(f"{query.signal}:{query.value}"))
        except UsageError as exc:
            raise UsageError(f"queries[{number}]: {exc}") from None
    context = context_of(request)
    if len(parsed) > 1:  # the request itself paid for one
        wait = await run_in_threadpool(context.key_limits.take, f"key:{request.state.key_name}", len(parsed) - 1)
        if wait:
            raise HTTPException(
                429, f"rate limit of this key exceeded; retry in {wait} s", headers={"Retry-After": str(wait)}
            )
    results = await run_in_threadpool(_lookup, request, parsed)
    return OrjsonResponse({"results": [{"matches": matches} for matches in results]})
