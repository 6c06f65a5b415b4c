"""Everything a route needs from outside itself: the process's shared state
(``context_of``), the caller's role (``require``, ``check_role``,
``role_of``) and an upload's body read within its size limit
(``upload_of``).

Routes import this module (and the package's library modules), never
``childsafe.service.app`` and never each other, so that the app is built
from the routes without an import circle (tests/test_package.py checks it).

The caller's key (401), its client address's failed attempts and the key's
rate limit (429, with Retry-After) are checked before the route runs and
before its body is read, by ``childsafe.service.guard``; ``require`` adds
the role (403)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from fastapi import HTTPException, Request

from childsafe.actions.keys import role_allows
from childsafe.errors import UsageError
from childsafe.service.context import ServiceContext
from childsafe.service.uploads import BadUpload, Upload, UploadTooLarge, read_multipart
from childsafe.signals import parse_signal_value

__all__ = ["context_of", "require", "check_role", "role_of", "upload_of", "parse_queries", "UPLOAD_BODY"]

#: The OpenAPI request body of a route that takes an upload (``openapi_extra``):
#: such routes read the body themselves (``upload_of``), so FastAPI cannot describe it.
UPLOAD_BODY: dict[str, Any] = {
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


def context_of(request: Request) -> ServiceContext:
    """The process's shared state."""
    context: ServiceContext = request.app.state.context
    return context


def role_of(request: Request) -> str:
    """The role of the request's key (set by the guard)."""
    role: str = request.state.key_role
    return role


def check_role(request: Request, permission: str) -> str:
    """The key's name if its role is allowed ``permission``; else 401 or 403."""
    role = getattr(request.state, "key_role", None)
    if role is None:  # the guard let it through as public: a mistake, so fail closed
        raise HTTPException(401, "send an API key: Authorization: Bearer KEY", headers={"WWW-Authenticate": "Bearer"})
    if not role_allows(role, permission):
        raise HTTPException(403, f"a {role} key may not do this; it needs a key allowed to {permission}")
    name: str = request.state.key_name
    return name


def require(permission: str) -> Callable[[Request], object]:
    """A dependency that lets a request through only with a key allowed ``permission``."""

    async def check(request: Request) -> str:
        return check_role(request, permission)

    return check


async def upload_of(request: Request) -> Upload:
    """The uploaded file, read into memory within the size limit."""
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


class SignalQuery(Protocol):
    """A query of a request body: ``{"signal": ..., "value": ...}``."""

    signal: str
    value: str


def parse_queries(queries: Iterable[SignalQuery]) -> list[tuple[str, str]]:
    """A body's queries as checked ``(signal, value)`` pairs; a bad one is a
    400 naming its place (``queries[N]: ...``)."""
    parsed = []
    for number, query in enumerate(queries):
        try:
            parsed.append(parse_signal_value(f"{query.signal}:{query.value}"))
        except UsageError as exc:
            raise UsageError(f"queries[{number}]: {exc}") from None
    return parsed
