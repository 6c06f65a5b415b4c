"""The registry of exchange sources, by kind."""

from __future__ import annotations

from childsafe.exchanges.base import ExchangeSource
from childsafe.registry import Registry

__all__ = ["get_source", "register", "source_kinds"]

_SOURCES: Registry[ExchangeSource] = Registry("exchange kind", lambda source: source.kind)


def register(source: ExchangeSource) -> ExchangeSource:
    """Add a source; a second one of the same kind is a programming error."""
    return _SOURCES.register(source)


def get_source(kind: str) -> ExchangeSource:
    """The source of ``kind``; ``UsageError`` naming the known kinds otherwise."""
    return _SOURCES.get(kind)


def source_kinds() -> list[str]:
    """The registered kinds, in registration order."""
    return _SOURCES.names()
