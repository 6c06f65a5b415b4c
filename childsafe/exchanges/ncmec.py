"""NCMEC's hash-sharing API (version 2), read as published (the
documentation NCMEC gives its members; python-threatexchange's
``ncmec/hash_api.py`` is a second reading of it):

- ``GET {base}/v2/entries?from=T&to=T`` with HTTP Basic credentials answers
  XML: ``<images maxTimestamp=...>`` and ``<videos ...>`` holding
  ``<image>``/``<video>`` entries (``<id>``, ``<member id=...>``,
  ``<classification>``, ``<fingerprints>`` of ``<md5>``, ``<sha1>``,
  ``<pdq>``, ...) and ``<deletedImage>``/``<deletedVideo>`` for entries
  withdrawn; ``<paging><next>`` is the path of the next page of the same
  time range, absent on the last.

Entries are not given in time order within a range, so a fetch fixes its
range (``to`` = when it began) and only moves the checkpoint's ``from`` on
when every page of the range is in; in between, the checkpoint is the next
page's path, so an interrupted fetch resumes at the page it had not
written. An entry is known by ``ncmec:MEMBER:ID`` (its source id): the same
id sent again replaces the exchange's entry (its fingerprints or
classification changed), a deleted one removes it. Fingerprints of kinds
we do not match (PhotoDNA and others) are left out; an entry with none we
match is counted as rejected. Classifications (A1, A2, B1, B2) are kept
when the bank's scheme is ``ncmec``.

Publishing back is left out: adding entries is for NCMEC's members through
an upload that its public description does not cover.
"""

from __future__ import annotations

import html
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx

from childsafe.banks.formats import ParsedEntry
from childsafe.banks.schemes import check_category
from childsafe.errors import InputFormatError, UsageError
from childsafe.exchanges.base import FetchContext, Page
from childsafe.exchanges.registry import register
from childsafe.http_client import get, shown_url
from childsafe.secrets import user_and_password
from childsafe.signals import get_signal

__all__ = ["NcmecHashSharing", "parse_entries"]

#: NCMEC's industry environment; its NGO and test environments are given with ``--url``.
DEFAULT_URL = "https://report.cybertip.org/hashsharing"
_TIME = "%Y-%m-%dT%H:%M:%SZ"
#: The fingerprints we match, by NCMEC's element name.
_SIGNALS = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "pdq": "pdq"}
#: The largest page read (NCMEC pages hold about a thousand entries).
MAX_PAGE_BYTES = 64 * 1024 * 1024


def _timestamp(text: str) -> int:
    return int(datetime.strptime(text, _TIME).replace(tzinfo=UTC).timestamp())


def _time_text(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime(_TIME)


def _local(tag: str) -> str:
    """A tag without its namespace: ``{ns}image`` -> ``image``."""
    return tag.rpartition("}")[2]


def parse_entries(body: bytes, scheme: str, where: str) -> tuple[Page, str | None]:
    """One page of ``GET /v2/entries``: its additions and deletions (no
    checkpoint yet) and the next page's path (``None`` on the last).
    ``InputFormatError`` for anything that is not that XML: nothing of the
    page is used then."""
    if b"<!DOCTYPE" in body[:4096].upper() or b"<!ENTITY" in body.upper():
        # The API sends no document type; one here could expand entities without bound.
        raise InputFormatError(f"{where}: the answer declares a document type or entities; refused")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise InputFormatError(f"{where}: the answer is not well-formed XML ({exc}); nothing was changed") from None
    page = Page()
    next_path: str | None = None
    for section in root:
        name = _local(section.tag)
        if name == "paging":
            for child in section:
                if _local(child.tag) == "next" and (child.text or "").strip():
                    next_path = html.unescape((child.text or "").strip())
            continue
        if name not in ("images", "videos"):
            continue
        for item in section:
            _read_entry(item, scheme, where, page)
    return page, next_path


def _child(item: ET.Element, name: str) -> ET.Element | None:
    for child in item:
        if _local(child.tag) == name:
            return child
    return None


def _read_entry(item: ET.Element, scheme: str, where: str, page: Page) -> None:
    tag = _local(item.tag)
    if tag not in ("image", "video", "deletedImage", "deletedVideo"):
        return
    entry_id = _child(item, "id")
    member = _child(item, "member")
    if entry_id is None or not (entry_id.text or "").strip() or member is None or not member.get("id"):
        raise InputFormatError(f"{where}: an <{tag}> without its <id> or <member id=...>; nothing was changed")
    source_id = f"ncmec:{member.get('id', '').strip()}:{(entry_id.text or '').strip()}"
    if tag.startswith("deleted"):
        page.deleted_source_ids.append(source_id)
        return
    signals: list[tuple[str, str]] = []
    fingerprints = _child(item, "fingerprints")
    for fingerprint in [] if fingerprints is None else list(fingerprints):
        signal = _SIGNALS.get(_local(fingerprint.tag).lower())
        if signal is None or not (fingerprint.text or "").strip():
            continue
        try:
            signals.append((signal, get_signal(signal).parse((fingerprint.text or "").strip())))
        except UsageError as exc:
            raise InputFormatError(f"{where}: entry {source_id}: {exc}; nothing was changed") from None
    if not signals:
        page.rejected += 1
        return
    classification = _child(item, "classification")
    try:
        category = check_category(scheme, (classification.text or "").strip() if classification is not None else None)
    except UsageError:
        category = None  # a classification the bank's scheme has no label for
    page.adds.append(ParsedEntry(signals, f"entry {source_id}", category, source_id))


class NcmecHashSharing:
    """The ``ncmec`` kind."""

    kind = "ncmec"
    replaces_by_source_id = True

    def check_settings(self, settings: dict[str, Any], has_credentials: bool) -> dict[str, Any]:
        url = str(settings.get("url") or DEFAULT_URL).rstrip("/")
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host or parsed.userinfo:
            raise UsageError("{field} must be the API's https:// address, without credentials", field="url")
        if not has_credentials:
            raise UsageError("the NCMEC API needs credentials (user:password) in a file or environment variable")
        start = settings.get("start")
        if start:
            try:
                datetime.fromisoformat(str(start))
            except ValueError:
                raise UsageError("{field} must be a date (2024-01-31)", field="start") from None
        return {"url": url, "start": str(start) if start else None}

    def describe(self, settings: dict[str, Any]) -> str:
        return shown_url(str(settings["url"])) + "/v2/entries"

    def fetch(self, context: FetchContext, checkpoint: dict[str, Any] | None) -> Iterator[Page]:
        base = str(context.settings["url"]).rstrip("/")
        user, password = user_and_password(context.credentials or "", "the NCMEC credentials")
        if checkpoint and checkpoint.get("next"):
            start, end, path = int(checkpoint["from"]), int(checkpoint["to"]), str(checkpoint["next"])
        else:
            start = int(checkpoint["from"]) if checkpoint else _first(context.settings.get("start"))
            end = int(time.time())
            path = f"/v2/entries?from={_time_text(start)}&to={_time_text(end)}"
        with context.client(auth=(user, password)) as client:
            while True:
                if not path.startswith("/"):
                    raise InputFormatError(f"{shown_url(base)}: a next page that is not a path on the API; refused")
                url = base + path
                fetched = get(client, url, context.http, max_bytes=MAX_PAGE_BYTES)
                page, next_path = parse_entries(fetched.body, context.scheme, shown_url(url))
                if next_path:
                    page.checkpoint = {"from": start, "to": end, "next": next_path}
                    yield page
                    path = next_path
                    continue
                page.checkpoint = {"from": end}
                page.complete = True
                yield page
                return


def _first(start: Any) -> int:
    """The first fetch's ``from``: the ``start`` date given, or the epoch (everything)."""
    if not start:
        return 0
    moment = datetime.fromisoformat(str(start))
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


register(NcmecHashSharing())
