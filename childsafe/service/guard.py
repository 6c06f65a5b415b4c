"""What every request passes before a route sees it, in this order:

1. its body's declared size (``Content-Length``) against the cap: 413 at once;
2. for every route but the public ones, its API key: 401 without a valid
   key, 429 once its client address has failed too often, 429 over the key's
   rate limit; all before one byte of the body is read;
3. its body as it streams in: 413 as soon as it passes the cap, so a chunked
   body or one longer than declared is never held beyond the cap.

The cap is ``CHILDSAFE_MAX_UPLOAD_BYTES`` for the routes that take a
multipart upload and ``CHILDSAFE_MAX_JSON_BYTES`` for every other route.
Every request is then logged (key name, route, status, time; never a body
or a query string) through ``requestlog.RequestLog``, so that writing the
log is not part of answering.

A request that passed, has no body, and is for one of the routes given as
``direct`` (``GET /v1/match``) is answered by that route's direct function
when it can (``routes.matching.match_hash_directly``): FastAPI's routing and
parameter handling cost a fifth of such a request. Anything that function
declines goes on to the FastAPI route as usual.

A pure ASGI middleware rather than FastAPI's ``Depends``: FastAPI reads and
parses a route's JSON body before its dependencies run, so a key check in a
dependency comes after the memory is spent. It is also not Starlette's
``BaseHTTPMiddleware``, which would pass every request through extra
streams and tasks; nor Starlette's ``RequestBodyLimitMiddleware``, which
refuses a declared length only once the route reads the body (after the key
check would have to run), answers in plain text, and takes its limits when
the routes are declared rather than from the settings.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from childsafe.actions.keys import role_allows
from childsafe.errors import UnavailableError
from childsafe.index.shards import SEARCH_PATH
from childsafe.service.context import ServiceContext
from childsafe.service.responses import OrjsonResponse, error_response

__all__ = ["RequestGuard", "PUBLIC_PATHS"]

#: Routes anyone may call. Every other path needs a key (an unknown path too:
#: failing closed, a route added without thought is not public).
PUBLIC_PATHS = frozenset(
    {"/v1/health", "/v1/ready", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/dashboard"}
)
#: The warning page and its counting help links; the dashboard, whose routes
#: check their own session cookie (a browser sends no Bearer key).
PUBLIC_PREFIXES = ("/warning", "/dashboard/")

T = TypeVar("T")

#: A route's direct answer (see the module's docstring): the JSON body of a 200, or ``None`` to let FastAPI answer.
DirectRoute = Callable[[Scope, ServiceContext], Awaitable[bytes | None]]


class RequestGuard:
    """The middleware; ``create_app`` adds it around every route, with the
    routes it may answer directly by ``(method, path)``."""

    def __init__(self, app: ASGIApp, direct: Mapping[tuple[str, str], DirectRoute] | None = None) -> None:
        self.app = app
        self.direct = dict(direct or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the server answers if the app raises

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        state = scope["app"].state
        try:
            context: ServiceContext = state.context
            refusal, cap = await self._check(scope, context)
            if refusal is not None:
                await refusal(scope, receive, send_noting_status)
            elif cap is None:
                direct = self.direct.get((scope["method"], scope["path"]))
                body = None
                if direct is not None and "key_role" in scope.get("state", ()):
                    try:
                        body = await direct(scope, context)
                    except UnavailableError as exc:  # a front's shard did not answer: as the app answers it
                        refusal = error_response(503, str(exc), {"Retry-After": "1"})
                if refusal is not None:
                    await refusal(scope, receive, send_noting_status)
                elif body is None:
                    await self.app(scope, receive, send_noting_status)
                else:
                    await _send_json(send_noting_status, body)
            else:
                await self.app(scope, _capped(receive, *cap), send_noting_status)
        finally:
            route = scope.get("route")
            state.request_log.record(
                scope.get("state", {}).get("key_name", "-"),
                scope["method"],
                getattr(route, "path", None) or scope["path"],
                status,
                (time.perf_counter() - start) * 1000,
            )

    async def _check(self, scope: Scope, context: ServiceContext) -> tuple[OrjsonResponse | None, Any]:
        """A response refusing the request, or ``None`` and the body cap ``(bytes, what)`` (``None``: no body)."""
        length: bytes | None = None
        chunked = False
        authorization = b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"authorization":
                authorization = value
        cap = None
        if chunked or (length is not None and length != b"0"):
            upload = _takes_upload(scope)
            limit = context.options.max_upload_bytes if upload else context.options.max_json_bytes
            what = "upload" if upload else "request body"
            setting = "CHILDSAFE_MAX_UPLOAD_BYTES" if upload else "CHILDSAFE_MAX_JSON_BYTES"
            cap = (limit, f"{what} is over the {limit:,}-byte limit ({setting}); send less in one request")
            if length is not None and length.isdigit() and int(length) > limit:
                return error_response(413, cap[1]), None
        path: str = scope["path"]
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return None, cap
        return await _authenticate(scope, context, authorization.decode("latin-1")), cap


def _takes_upload(scope: Scope) -> bool:
    """Whether the route asked for documents a multipart upload (``openapi_extra``)."""
    for route in scope["app"].routes:
        if (
            isinstance(route, APIRoute)
            and scope["method"] in (route.methods or ())
            and route.path_regex.match(scope["path"])
            and "multipart/form-data" in (route.openapi_extra or {}).get("requestBody", {}).get("content", {})
        ):
            return True
    return False


async def _authenticate(scope: Scope, context: ServiceContext, authorization: str) -> OrjsonResponse | None:
    """``None`` and the key's name and role in ``scope["state"]``, or the response refusing the request."""
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return error_response(401, "send an API key: Authorization: Bearer KEY", {"WWW-Authenticate": "Bearer"})
    address = scope["client"][0] if scope.get("client") else "unknown"
    blocked_until = context.blocked_addresses.get(address)
    if blocked_until is not None:
        left = blocked_until - time.monotonic()
        if left > 0:
            return _too_many_failures(int(left) + 1)
        context.blocked_addresses.pop(address, None)
    found = context.keys.cached(key)
    if found is None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        found, _ = await _single_flight(context, f"key:{digest}", lambda: context.keys.lookup(key))
    if found is None:
        wait = await run_in_threadpool(context.failure_limits.take, f"addr:{address}")
        if not wait:
            return error_response(401, "unknown or revoked API key", {"WWW-Authenticate": "Bearer"})
        if len(context.blocked_addresses) > 10_000:
            context.blocked_addresses.clear()
        context.blocked_addresses[address] = time.monotonic() + wait
        return _too_many_failures(wait)
    name, role = found
    state = scope.setdefault("state", {})
    state["key_name"], state["key_role"] = name, role
    if scope["path"] == SEARCH_PATH and role_allows(role, "curate"):
        # A front searching its shards: it counted these queries against its
        # caller's key already, and counting them again here would hold every
        # front to the rate of this one key.
        return None
    bucket = f"key:{name}"
    while not context.key_limits.take_leased(bucket):
        wait, counted = await _single_flight(context, f"limit:{bucket}", lambda: context.key_limits.take(bucket))
        if wait:
            return error_response(
                429, f"rate limit of this key exceeded; retry in {wait} s", {"Retry-After": str(wait)}
            )
        if counted:  # this request's own call took its token (and a new lease); the others spend the lease
            break
    return None


async def _single_flight(context: ServiceContext, name: str, work: Callable[[], T]) -> tuple[T, bool]:
    """``work()`` in a thread, once for all the requests that need it at the
    same time (when a key's cached check or its lease of tokens runs out,
    every request of that key in flight would otherwise query the database):
    its result, and whether this request's call ran it."""
    running = context.in_flight.get(name)
    if running is not None:
        return await asyncio.shield(running), False
    running = asyncio.ensure_future(run_in_threadpool(work))
    context.in_flight[name] = running
    running.add_done_callback(lambda _: context.in_flight.pop(name, None))
    return await asyncio.shield(running), True


def _too_many_failures(wait: int) -> OrjsonResponse:
    return error_response(
        429, f"too many failed API key attempts from this address; retry in {wait} s", {"Retry-After": str(wait)}
    )


async def _send_json(send: Send, body: bytes) -> None:
    """A 200 with a JSON body, headed as Starlette's ``JSONResponse`` heads it."""
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _capped(receive: Receive, limit: int, message: str) -> Receive:
    """``receive`` that raises 413 once the body has passed ``limit`` bytes
    (raised inside the route that reads the body; FastAPI answers it)."""
    received = 0

    async def capped_receive() -> Message:
        nonlocal received
        event = await receive()
        if event["type"] == "http.request":
            received += len(event.get("body", b""))
            if received > limit:
                raise HTTPException(413, message)
        return event

    return capped_receive
