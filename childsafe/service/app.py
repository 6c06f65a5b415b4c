"""The HTTP service: ``create_app`` builds the FastAPI application.

Routes are thin, one module an area (``routes/``): they check the caller's
key and role, parse, call one function of the package, and return JSON.
Every error has one shape, ``{"error": {"status": int, "message": str}}``,
with a message written for the caller (never an internal exception text).
Every request is logged with the key's name, route, status and time; never
with image bytes or hashes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from childsafe import __version__
from childsafe.config import Settings
from childsafe.errors import ChildsafeError, ConflictError, InputFormatError, NotFoundError, UsageError
from childsafe.service.context import ServiceContext

__all__ = ["create_app", "DEFAULT_MAX_UPLOAD", "DEFAULT_RATE"]

DEFAULT_MAX_UPLOAD = 50 * 1024 * 1024
DEFAULT_RATE = 500.0

log = logging.getLogger("childsafe.service")


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one error shape of the API."""
    return JSONResponse({"error": {"status": status, "message": message}}, status_code=status, headers=headers)


def _status_of(error: ChildsafeError) -> int:
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ConflictError):
        return 409
    if isinstance(error, UsageError | InputFormatError):
        return 422
    return 500


def create_app(
    settings: Settings | None = None, max_upload_bytes: int | None = None, rate_per_second: float | None = None
) -> FastAPI:
    """The childsafe API. Settings come from the environment unless given;
    ``CHILDSAFE_MAX_UPLOAD_BYTES`` and ``CHILDSAFE_RATE_PER_SECOND`` set the
    upload limit and each key's rate limit."""
    settings = settings or Settings.from_env()
    upload_limit = max_upload_bytes or int(os.environ.get("CHILDSAFE_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD))
    rate = rate_per_second or float(os.environ.get("CHILDSAFE_RATE_PER_SECOND", DEFAULT_RATE))

    poll = float(os.environ.get("CHILDSAFE_WEBHOOK_POLL_SECONDS", 2))
    backoff = float(os.environ.get("CHILDSAFE_WEBHOOK_BACKOFF_SECONDS", 30))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Preserved uploads and saved indexes are case material: owner-only
        # files, also when the service is started by uvicorn itself.
        os.umask(0o077)
        app.state.context = ServiceContext.open(settings, upload_limit, rate)
        delivery = asyncio.create_task(_deliver_webhooks(app.state.context, poll, backoff))
        yield
        delivery.cancel()
        app.state.context.close()

    app = FastAPI(
        title="childsafe",
        version=__version__,
        description="Match images and hashes against hash lists of known abuse images; curate the lists.",
        lifespan=lifespan,
    )

    @app.exception_handler(ChildsafeError)
    async def childsafe_error(request: Request, error: ChildsafeError) -> JSONResponse:
        status = _status_of(error)
        return error_response(status, str(error) if status < 500 else "internal error; see the service log")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail), getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        return error_response(422, f"{where}: {first.get('msg', 'invalid input')}" if where else "invalid input")

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return error_response(500, "internal error; see the service log")

    @app.middleware("http")
    async def log_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        log.info(
            "key=%s route=%s %s status=%d ms=%.1f",
            getattr(request.state, "key_name", "-"),
            request.method,
            request.scope.get("route").path if request.scope.get("route") else request.url.path,  # type: ignore[union-attr]
            response.status_code,
            (time.perf_counter() - start) * 1000,
        )
        return response

    from childsafe.service.routes import banks, deter, health, matching

    for module in (health, matching, banks, deter):
        app.include_router(module.router)
    return app


async def _deliver_webhooks(context: ServiceContext, poll: float, backoff: float) -> None:
    """Deliver due webhook events every ``poll`` seconds, for as long as the service runs."""
    from childsafe.service.actions import deliver_due

    with httpx.Client(timeout=10, follow_redirects=False) as client:
        while True:
            try:
                await run_in_threadpool(deliver_due, context.engine, client, backoff)
            except Exception:  # keep delivering whatever one round met
                log.exception("webhook delivery round failed")
            await asyncio.sleep(poll)


def context_of(request: Request) -> ServiceContext:
    """The process's shared state."""
    context: ServiceContext = request.app.state.context
    return context
