"""A hash list published at a URL (a text, CSV or VICS file, read by the
bank formats): the exchange's entries in the bank become exactly the
file's. New ones are added, changed ones updated, and the exchange's
entries the file no longer has are deleted (never other imports' entries).

Each fetch is a conditional GET (``If-None-Match`` with the last ETag,
``If-Modified-Since`` with the last ``Last-Modified``): a 304 changes
nothing. A changed file is downloaded whole to a private temporary file and
checked whole before anything is written (a malformed file changes
nothing), then written 20,000 entries a page. The checkpoint is the file's
SHA-256 and the entries done: a fetch interrupted between pages downloads
the file again and, if it is the same file, carries on after the last page;
if it changed meanwhile, starts over under a new run.

An empty file is refused: it would delete every entry the exchange brought,
and is far more often a publishing accident than an emptied list.

Credentials, when given: ``user:password`` (HTTP Basic) or a bearer token.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from childsafe.banks.formats import ImportOptions, ParsedEntry, detect_format, get_format
from childsafe.banks.schemes import VICS_PROFILES
from childsafe.errors import InputFormatError, UsageError
from childsafe.exchanges.base import FetchContext, Page
from childsafe.exchanges.registry import register
from childsafe.http_client import get, shown_url

__all__ = ["UrlList"]

#: Entries a page: a page is one transaction.
PAGE = 20_000
#: The largest list downloaded (a billion-line list is not a hash list).
MAX_LIST_BYTES = 8 * 1024**3


def credentials_auth(credentials: str | None) -> tuple[httpx.Auth | tuple[str, str] | None, dict[str, str]]:
    """``user:password`` as HTTP Basic, anything else as a bearer token."""
    if not credentials:
        return None, {}
    if ":" in credentials:
        user, password = credentials.split(":", 1)
        return (user, password), {}
    return None, {"Authorization": f"Bearer {credentials}"}


class UrlList:
    """The ``url`` kind."""

    kind = "url"
    replaces_by_source_id = False

    def check_settings(self, settings: dict[str, Any], has_credentials: bool) -> dict[str, Any]:
        url = str(settings.get("url") or "")
        if not url:
            raise UsageError("a url exchange needs the {field} of its list", field="url")
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            raise UsageError("{field} is not a URL", field="url") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise UsageError("{field} must be an http:// or https:// address", field="url")
        if parsed.userinfo:
            raise UsageError("{field} holds a password: give it in a credentials file instead", field="url")
        file_format = str(settings.get("format") or "auto")
        if file_format not in ("auto", "text", "csv", "vics"):
            raise UsageError("{field} must be auto, text, csv or vics", field="format")
        profile = settings.get("vics_profile")
        if profile is not None and profile not in VICS_PROFILES:
            raise UsageError("{field} must be us or uk", field="vics_profile")
        return {
            "url": url,
            "format": file_format,
            "signal": settings.get("signal"),
            "category": settings.get("category"),
            "vics_profile": profile,
        }

    def describe(self, settings: dict[str, Any]) -> str:
        return shown_url(str(settings["url"]))

    def fetch(self, context: FetchContext, checkpoint: dict[str, Any] | None) -> Iterator[Page]:
        settings = context.settings
        url = str(settings["url"])
        where = shown_url(url)
        previous = checkpoint or {}
        unfinished = bool(previous) and not previous.get("complete", False)
        headers: dict[str, str] = {}
        if previous.get("complete"):
            if previous.get("etag"):
                headers["If-None-Match"] = str(previous["etag"])
            if previous.get("last_modified"):
                headers["If-Modified-Since"] = str(previous["last_modified"])
        auth, auth_headers = credentials_auth(context.credentials)
        with tempfile.TemporaryDirectory(prefix="childsafe-exchange-") as folder:
            path = Path(folder) / "list"
            with context.client(auth=auth, headers=auth_headers) as client, open(path, "w+b") as spool:
                fetched = get(client, url, context.http, headers=headers, into=spool, max_bytes=MAX_LIST_BYTES)
            if fetched.status == 304:
                yield Page(checkpoint=previous, unchanged=True)
                return
            sha256 = _sha256(path)
            start = int(previous.get("done", 0)) if unfinished and previous.get("sha256") == sha256 else 0
            mark = {
                "etag": fetched.headers.get("etag"),
                "last_modified": fetched.headers.get("last-modified"),
                "sha256": sha256,
            }
            with open(path, "rb") as raw:
                head = raw.read(4096)
            file_format = str(settings.get("format") or "auto")
            try:
                bank_format = detect_format(head) if file_format == "auto" else get_format(file_format)
            except UsageError:
                raise InputFormatError(f"{where}: cannot tell the format of the list (text, csv or vics)") from None
            options = ImportOptions(
                scheme=context.scheme,
                signal=settings.get("signal"),
                category=settings.get("category"),
                vics_profile=settings.get("vics_profile") or ("uk" if context.scheme == "uk" else "us"),
                file_name=PurePosixPath(httpx.URL(url).path).name or "list",
                folder=None,  # a downloaded CSV cannot name vPDQ files beside it
            )

            def entries() -> Iterator[ParsedEntry]:
                with open(path, "rb") as stream:
                    try:
                        yield from bank_format.read(stream, options)
                    except InputFormatError as exc:
                        raise InputFormatError(f"{where}: {exc}; nothing was changed") from None

            total = sum(1 for _ in entries())  # the whole file checked before a page is written
            if total == 0:
                raise InputFormatError(
                    f"{where}: the list holds no entries; nothing was changed (it would delete every entry"
                    " this exchange brought; remove the exchange to stop using the list)"
                )
            done = 0
            adds: list[ParsedEntry] = []
            first = True
            for entry in entries():
                done += 1
                if done <= start:
                    continue
                adds.append(entry)
                if len(adds) == PAGE and done < total:
                    yield Page(adds=adds, checkpoint={**mark, "done": done, "complete": False},
                               restart=first and start == 0, provenance={"sha256": sha256})  # fmt: skip
                    adds, first = [], False
            yield Page(adds=adds, checkpoint={**mark, "done": total, "complete": True}, complete=True, prune=True,
                       restart=first and start == 0, provenance={"sha256": sha256})  # fmt: skip


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


register(UrlList())
