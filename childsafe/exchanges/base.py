"""What every exchange source provides, and the pages a fetch is made of.

A source reads a hash-sharing service from a checkpoint and yields pages:
entries to add, entries to delete, and the checkpoint after the page. The
caller (``fetching.py``) commits each page's changes and its checkpoint in
one transaction, so a fetch that is interrupted anywhere resumes after the
last page committed, and ends with the same bank as one that was not.
A source never touches the database, and the caller never parses a
service's format: one module a source, registered by its kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from childsafe.banks.formats import ParsedEntry
from childsafe.config import HttpSettings

__all__ = ["ExchangeSource", "FetchContext", "Page"]


@dataclass
class Page:
    """One step of a fetch.

    ``adds``: entries the source has (new or again: adding is idempotent).
    ``deleted_keys``: entry keys (``banks.entry_key`` of the signals) the
    source deleted; ``deleted_source_ids``: the source's own ids of entries
    it deleted. Only entries this exchange brought in are ever deleted.
    ``checkpoint``: where the next page starts (JSON); ``complete``: this was
    the last page, the source has been read whole. ``prune``: with
    ``complete``, the source is a whole list (a URL's file), so the
    exchange's entries that no page of this fetch had are deleted.
    ``unchanged``: nothing changed since the last fetch (an HTTP 304).
    ``rejected``: records without a signal we use (counted, not fatal)."""

    adds: list[ParsedEntry] = field(default_factory=list)
    deleted_keys: list[str] = field(default_factory=list)
    deleted_source_ids: list[str] = field(default_factory=list)
    checkpoint: dict[str, Any] = field(default_factory=dict)
    complete: bool = False
    prune: bool = False
    unchanged: bool = False
    #: The source starts over (a URL's file changed while a fetch of it was
    #: unfinished): the fetch begins a new run, so that pruning forgets what
    #: the unfinished one confirmed.
    restart: bool = False
    rejected: int = 0
    #: What the page came from, for provenance: the URL shown without secrets, a SHA-256 of a file.
    provenance: dict[str, str] = field(default_factory=dict)


@dataclass
class FetchContext:
    """What a source is given to fetch: the exchange's settings (as
    ``check_settings`` returned them), its credentials (``None`` when it has
    none; never to be logged or put in a message), the bank's category
    scheme, the HTTP settings, and ``client`` to make the one kind of HTTP
    client (``childsafe.http_client.make_client``)."""

    name: str
    settings: dict[str, Any]
    credentials: str | None
    scheme: str
    http: HttpSettings
    client: Callable[..., httpx.Client]


class ExchangeSource(Protocol):
    """A kind of hash-sharing service: one module each, registered by ``kind``."""

    @property
    def kind(self) -> str:
        """The name given to ``exchange add --kind``."""
        ...

    @property
    def replaces_by_source_id(self) -> bool:
        """Whether an entry's source id names it at the source: an add with a
        source id replaces the exchange's entry of that id (its hashes or
        category changed upstream)."""
        ...

    def check_settings(self, settings: dict[str, Any], has_credentials: bool) -> dict[str, Any]:
        """``settings`` checked and normalised when the exchange is added
        (``UsageError`` naming the ``{field}``); what is stored."""
        ...

    def describe(self, settings: dict[str, Any]) -> str:
        """Where the source is, for provenance and listings (no secret in it)."""
        ...

    def fetch(self, context: FetchContext, checkpoint: dict[str, Any] | None) -> Iterator[Page]:
        """Pages from ``checkpoint`` (``None``: from the beginning) to the
        source's present; the last one ``complete``. ``RemoteError`` when the
        service fails, refuses or stalls; ``InputFormatError`` when it sends
        what cannot be read (nothing of that page is applied)."""
        ...
