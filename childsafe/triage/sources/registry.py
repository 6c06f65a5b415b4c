"""The registries of evidence sources and containers."""

from __future__ import annotations

from pathlib import Path

from childsafe.errors import UsageError
from childsafe.registry import Registry
from childsafe.triage.sources.base import Container, EvidenceSource

__all__ = ["register_source", "register_container", "source_for", "container_for", "source_names", "container_names"]

_SOURCES: Registry[EvidenceSource] = Registry("evidence source", lambda source: source.name)
_CONTAINERS: Registry[Container] = Registry("container", lambda container: container.name)


def register_source(source: EvidenceSource) -> EvidenceSource:
    """Add an evidence source; sources are asked in registration order."""
    return _SOURCES.register(source)


def register_container(container: Container) -> Container:
    """Add a container format."""
    return _CONTAINERS.register(container)


def source_for(path: Path) -> EvidenceSource:
    """The source that reads ``path``; ``UsageError`` if none does."""
    for source in _SOURCES.values():
        if source.claims(path):
            return source
    if not path.exists():
        raise UsageError(f"evidence {path} does not exist")
    raise UsageError(f"cannot read evidence {path}: not a folder or a regular file")


def container_for(mime: str, head: bytes) -> Container | None:
    """The container format of content of type ``mime``, if it is an archive."""
    for container in _CONTAINERS.values():
        if container.opens(mime, head):
            return container
    return None


def source_names() -> list[str]:
    return _SOURCES.names()


def container_names() -> list[str]:
    return _CONTAINERS.names()
