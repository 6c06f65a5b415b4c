"""Checking the caller: ``Authorization: Bearer KEY``, the key's role, and
its rate limit. 401 without a valid key, 403 for the wrong role, 429 (with
Retry-After) over the rate."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from childsafe.service.app import context_of
from childsafe.service.keys import role_allows

__all__ = ["require"]


def require(permission: str) -> Callable[[Request], object]:
    """A dependency that lets a request through only with a key allowed ``permission``."""

    async def check(request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise HTTPException(
                401, "send an API key: Authorization: Bearer KEY", headers={"WWW-Authenticate": "Bearer"}
            )
        context = context_of(request)
        found = await run_in_threadpool(context.find_key, key.strip())
        if found is None:
            raise HTTPException(401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        name, role = found
        request.state.key_name = name
        if not role_allows(role, permission):
            raise HTTPException(403, f"a {role} key may not do this; it needs a key allowed to {permission}")
        wait = context.limiter.retry_after(name)
        if wait:
            raise HTTPException(
                429, f"rate limit of this key exceeded; retry in {wait} s", headers={"Retry-After": str(wait)}
            )
        return name

    return check
