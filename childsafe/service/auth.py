"""Checking the caller's role. Its key (401), its client address's failed
attempts and the key's rate limit (429, with Retry-After) are checked
before the route runs and before its body is read, by
``childsafe.service.guard``; this dependency adds the role (403)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import HTTPException, Request

from childsafe.service.keys import role_allows

__all__ = ["require", "check_role", "role_of"]


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
