"""The HTTP service: ``create_app`` builds the FastAPI application.

Routes are thin, one module an area (``routes/``): they check the caller's
role, parse, call one function of the package, and return JSON. They take
what they need from ``dependencies`` (the shared state, the role check,
upload bodies) and never import this module, which only builds the app. Body caps,
the API key and the rate limits are checked before a route runs, by
``guard.RequestGuard``, which also logs every request with the key's name,
route, status and time; never with image bytes or hashes.
Every error has one shape, ``{"error": {"status": int, "message": str}}``,
with a message written for the caller (never an internal exception text).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from childsafe import __version__
from childsafe.config import ServiceOptions, Settings
from childsafe.errors import (
    ChildsafeError,
    ConflictError,
    InputFormatError,
    NotFoundError,
    UnavailableError,
    UsageError,
)
from childsafe.service.background import deliver_webhooks, fetch_exchanges, save_match_counts
from childsafe.service.context import ServiceContext
from childsafe.service.guard import RequestGuard
from childsafe.service.requestlog import RequestLog
from childsafe.service.responses import OrjsonResponse, error_response
from childsafe.service.routes import banks, dashboard, deter, health, matching, referrals, shard

__all__ = ["create_app"]

log = logging.getLogger("childsafe.service")


def _status_of(error: ChildsafeError) -> int:
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ConflictError):
        return 409
    if isinstance(error, UsageError | InputFormatError):
        return 422
    if isinstance(error, UnavailableError):
        return 503
    return 500


def create_app(settings: Settings | None = None, options: ServiceOptions | None = None) -> FastAPI:
    """The childsafe API. Settings and options (body caps, rate limits, who
    sees match details) come from the environment unless given."""
    settings = settings or Settings.from_env()
    options = options or ServiceOptions.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Preserved uploads and saved indexes are case material: owner-only
        # files, also when the service is started by uvicorn itself.
        os.umask(0o077)
        # In every worker process: uvicorn's workers do not inherit the command's logging set-up.
        app.state.request_log = RequestLog()
        app.state.context = ServiceContext.open(settings, options)
        context = app.state.context
        loops = [
            asyncio.create_task(
                deliver_webhooks(context, options.webhook_poll_seconds, options.webhook_backoff_seconds)
            ),
            asyncio.create_task(save_match_counts(context, options.match_count_seconds)),
        ]
        if options.exchange_poll_seconds:  # CHILDSAFE_EXCHANGE_POLL_SECONDS=0 turns it off
            loops.append(asyncio.create_task(fetch_exchanges(context, options.exchange_poll_seconds)))
        yield
        for loop in loops:
            loop.cancel()
        try:
            context.match_tally.save(context.engine)
        except Exception:
            log.exception("saving the last match counts failed")
        context.close()
        app.state.request_log.close()

    app = FastAPI(
        title="childsafe",
        version=__version__,
        description="Match images and hashes against hash lists of known abuse images; curate the lists.",
        lifespan=lifespan,
    )

    @app.exception_handler(ChildsafeError)
    async def childsafe_error(request: Request, error: ChildsafeError) -> OrjsonResponse:
        status = _status_of(error)
        if isinstance(error, UnavailableError):  # its message is written for the caller: say why, and when to retry
            return error_response(status, str(error), {"Retry-After": "1"})
        return error_response(status, str(error) if status < 500 else "internal error; see the service log")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> OrjsonResponse:
        return error_response(error.status_code, str(error.detail), getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> OrjsonResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        return error_response(422, f"{where}: {first.get('msg', 'invalid input')}" if where else "invalid input")

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> OrjsonResponse:
        log.exception("unexpected error on %s", request.url.path)
        return error_response(500, "internal error; see the service log")

    app.add_middleware(RequestGuard, direct={("GET", "/v1/match"): matching.match_hash_directly})

    # The routes themselves, not the routers: FastAPI's ``include_router`` keeps
    # each router as a branch that every request descends into, which cost
    # about 15 us of a GET /v1/match (a twentieth of it). Routes are tried in
    # order: the hottest one, GET /v1/match, first.
    for module in (matching, health, banks, deter, dashboard, referrals, shard):
        app.router.routes.extend(module.router.routes)
    return app
