"""Hashing and matching: upload a file, or give hashes."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from starlette.types import Scope

from childsafe.actions.keys import role_allows
from childsafe.actions.on_match import act_on_matches
from childsafe.detect import PreparedQuery, QuerySteps, match_prepared, unanswered_steps, useful_steps
from childsafe.errors import UsageError
from childsafe.service.context import ServiceContext
from childsafe.service.decoding import UploadsBusy
from childsafe.service.dependencies import (
    UPLOAD_BODY,
    check_role,
    context_of,
    parse_queries,
    require,
    role_of,
    upload_of,
)
from childsafe.service.responses import OrjsonResponse
from childsafe.service.uploads import Upload
from childsafe.signals import parse_signal_value

router = APIRouter(prefix="/v1", tags=["matching"])

MAX_BATCH = 10_000


class Query_(BaseModel):
    signal: str = Field(examples=["pdq"])
    value: str


class BatchRequest(BaseModel):
    queries: list[Query_] = Field(max_length=MAX_BATCH)


async def _picture_upload_of(request: Request) -> Upload:
    """``upload_of`` for a picture to prepare; 503 at once, before its body
    is read, when too many uploads wait for a worker."""
    try:
        context_of(request).uploads.check_room()
    except UploadsBusy as busy:
        raise HTTPException(503, str(busy), headers={"Retry-After": str(busy.retry_after)}) from None
    return await upload_of(request)


def _prepare(request: Request, upload: Upload, steps: QuerySteps) -> PreparedQuery:
    """The upload prepared for matching in a worker process (``service/decoding.py``);
    503 with ``Retry-After`` at once when too many uploads wait for one."""
    uploads = context_of(request).uploads
    try:
        return uploads.prepare(upload.data, upload.filename, steps)
    except UploadsBusy as busy:
        raise HTTPException(503, str(busy), headers={"Retry-After": str(busy.retry_after)}) from None


def _not_prepared(request: Request, prepared: PreparedQuery) -> HTTPException:
    """The 503 for an upload whose perceptual steps could not run (a time or
    memory limit, a crash) and whose digests matched nothing: "no match" would
    be a guess."""
    reason = prepared.hashes.error or "the picture could not be prepared"
    return HTTPException(
        503,
        f"{reason}: not matched as a picture; try again later",
        headers={"Retry-After": str(context_of(request).uploads.retry_after)},
    )


# Declared first, so that it is the first route FastAPI tries: the hottest one.
@router.get("/match", response_class=OrjsonResponse)
async def match_hash(
    request: Request,
    signal: Annotated[str, Query(examples=["md5"])],
    value: Annotated[str, Query()],
) -> OrjsonResponse:
    """``{"matches": [MATCH...]}`` for one hash."""
    check_role(request, "match")  # not a dependency: the hottest route, and FastAPI's dependencies cost
    query = parse_signal_value(f"{signal}:{value}")
    return OrjsonResponse(await _hash_matches(context_of(request), query, role_of(request)))


async def _hash_matches(context: ServiceContext, query: tuple[str, str], role: str) -> dict[str, Any]:
    """GET /v1/match's answer to a parsed query, for a key of ``role``."""
    (matches,) = await context.lookup_on_loop([query])
    return {"matches": context.match_json(matches, role)}


async def match_hash_directly(scope: Scope, context: ServiceContext) -> bytes | None:
    """GET /v1/match as the request guard answers it, outside FastAPI: the
    JSON body of its 200 answer, or ``None`` for anything but the plain case
    (a parameter missing, repeated or unknown, a value that does not parse, a
    key whose role may not match), which then goes to ``match_hash`` above
    for its exact answer or error.

    Hand-written because it is faster: FastAPI's routing, parameter parsing
    and Request object cost about 40 us of the ~250 us this route costs a
    worker here (issue 16's target: 0.6x a bare FastAPI endpoint). The query
    string is read as Starlette reads it (latin-1, blank values kept), and
    the answer is ``match_hash``'s (the same function builds it).
    """
    role: str = scope["state"]["key_role"]
    if not role_allows(role, "match"):
        return None
    params = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    if len(params) != 2:
        return None
    given = dict(params)
    if given.keys() != {"signal", "value"}:
        return None
    try:
        query = parse_signal_value(f"{given['signal']}:{given['value']}")
    except UsageError:
        return None
    return orjson.dumps(await _hash_matches(context, query, role))


@router.post("/hash", openapi_extra=UPLOAD_BODY, dependencies=[Depends(require("match"))])
async def hash_upload(request: Request) -> dict[str, Any]:
    """The ``hash`` object of the uploaded file (type from its bytes)."""
    upload = await _picture_upload_of(request)
    prepared = await run_in_threadpool(_prepare, request, upload, ())
    if prepared.incomplete:
        raise _not_prepared(request, prepared)
    return prepared.hashes.to_dict()


@router.post("/match", openapi_extra=UPLOAD_BODY, dependencies=[Depends(require("match"))])
async def match_upload(request: Request) -> dict[str, Any]:
    """``{"hash": {...}, "matches": [MATCH...]}`` for the uploaded file (all 8
    rotations and flips tried, and the query variants); with ``"incomplete":
    [STEP...]`` when a limit stopped some steps but an exact digest matched
    (otherwise such an upload gets 503 with ``Retry-After``)."""
    upload = await _picture_upload_of(request)
    context = context_of(request)
    with context.index_lock:  # a moment: only reads which banks have keypoints
        steps = useful_steps(context.matcher, context.settings.limits.query_variants)
    prepared = await run_in_threadpool(_prepare, request, upload, steps)

    def work() -> dict[str, Any]:
        with context.index_lock:  # index lookups only: the pixels were handled in a worker
            context.sync_index()
            matches = match_prepared(context.matcher, prepared)
        missing = unanswered_steps(prepared, matches)
        if missing and not matches:
            raise _not_prepared(request, prepared)
        hashes = prepared.hashes
        if matches:
            act_on_matches(
                context.engine, context.settings.home, matches, hashes, upload.data, request.state.key_name,
                context.settings,
            )  # fmt: skip
        answer: dict[str, Any] = {"hash": hashes.to_dict(), "matches": context.match_json(matches, role_of(request))}
        if missing:
            answer["incomplete"] = list(missing)
        return answer

    return await run_in_threadpool(work)


def _lookup(request: Request, queries: list[tuple[str, str]]) -> list[list[dict[str, Any]]]:
    context = context_of(request)
    role = role_of(request)
    return [context.match_json(matches, role) for matches in context.lookup(queries)]


@router.post("/match/batch", dependencies=[Depends(require("match"))], response_class=OrjsonResponse)
async def match_batch(request: Request, body: BatchRequest) -> OrjsonResponse:
    """``{"results": [{"matches": [...]}...]}`` in query order (at most 10,000
    queries; each costs one request of the key's rate limit)."""
    parsed = parse_queries(body.queries)
    context = context_of(request)
    if len(parsed) > 1:  # the request itself paid for one
        wait = await run_in_threadpool(context.key_limits.take, f"key:{request.state.key_name}", len(parsed) - 1)
        if wait:
            raise HTTPException(
                429, f"rate limit of this key exceeded; retry in {wait} s", headers={"Retry-After": str(wait)}
            )
    results = await run_in_threadpool(_lookup, request, parsed)
    return OrjsonResponse({"results": [{"matches": matches} for matches in results]})
