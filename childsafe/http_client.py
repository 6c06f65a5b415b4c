"""The one place childsafe makes HTTP requests to outside services (hash
hash exchanges, referrals): every client is made by ``make_client``
from ``HttpSettings``, so timeouts, proxies, TLS and the User-Agent are the
same everywhere, and ``get`` is the one way to GET with bounded retries.

Why a total time per request on top of httpx's timeouts: a read timeout
only says "no byte for N seconds", so a server that trickles a byte every
few seconds would hold a fetch for ever (the stalls HMA users report,
ThreatExchange #1679 and #1731). ``get`` also stops a request that has run
longer than ``HttpSettings.request_seconds`` in all, with a clear error; the
exchange fetch that made it resumes from its last checkpoint next time.

Messages name the service by scheme, host and path only: a query string may
carry a token, and a URL's user-info a password.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

import httpx

from childsafe.config import HttpSettings
from childsafe.errors import RemoteError, RemoteOutcomeUnknown

__all__ = ["Fetched", "get", "post", "request", "make_client", "shown_url", "user_agent"]

#: Statuses worth another try of an idempotent request: the server is busy or failed for now.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def user_agent() -> str:
    """``childsafe/VERSION (+https://...)``: who is asking, for the service's logs."""
    from childsafe import __version__

    return f"childsafe/{__version__}"


def make_client(
    settings: HttpSettings,
    *,
    auth: httpx.Auth | tuple[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Client:
    """An ``httpx.Client`` with our timeouts, TLS settings, User-Agent and
    ``auth``; proxies from ``HTTPS_PROXY`` and friends (``trust_env``).
    Redirects are followed (at most 5): a list moved to a CDN still comes."""
    timeout = httpx.Timeout(
        connect=settings.connect_timeout,
        read=settings.read_timeout,
        write=settings.read_timeout,
        pool=settings.connect_timeout,
    )
    verify: str | bool = str(settings.ca_bundle) if settings.ca_bundle else True
    return httpx.Client(
        timeout=timeout,
        verify=verify,
        trust_env=True,
        follow_redirects=True,
        max_redirects=5,
        auth=auth,
        headers={"User-Agent": user_agent(), **(headers or {})},
    )


def shown_url(url: str | httpx.URL) -> str:
    """``url`` as messages and logs may show it: scheme, host, port and path
    (no user-info, no query string: either may hold a secret)."""
    parsed = httpx.URL(str(url))
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"


@dataclass
class Fetched:
    """What a GET brought: the status (200, or 304 for "not changed"), the
    headers, and the body (``b""`` when it was written to ``into``)."""

    status: int
    headers: httpx.Headers
    body: bytes


def get(
    client: httpx.Client,
    url: str,
    settings: HttpSettings,
    *,
    headers: Mapping[str, str] | None = None,
    into: IO[bytes] | None = None,
    max_bytes: int | None = None,
) -> Fetched:
    """GET ``url``, retried on a timeout, a dropped connection or a status in
    ``RETRY_STATUSES`` (at most ``settings.retries`` more times, waiting
    ``backoff_seconds`` then twice as long each time); each try stops after
    ``request_seconds`` in all. The body goes to ``into`` (from its start)
    when given, else it is returned; more than ``max_bytes`` is an error.

    A 2xx or 304 is returned; anything else raises ``RemoteError`` with one
    line: 401/403 say the credentials were refused, others the status."""
    return request(client, "GET", url, settings, headers=headers, into=into, max_bytes=max_bytes)


def post(
    client: httpx.Client,
    url: str,
    settings: HttpSettings,
    *,
    content: bytes | None = None,
    data: Mapping[str, str] | None = None,
    files: Mapping[str, tuple[str, bytes, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    idempotent: bool = False,
    max_bytes: int | None = 1024 * 1024,
) -> Fetched:
    """POST to ``url`` (a body of ``content``, or a form of ``data`` and
    ``files``) with ``get``'s timeouts and answers.

    A POST that creates something (``idempotent=False``) is tried again only
    when the server cannot have acted on it: the connection could not be
    opened, or it answered 429 or 503 (busy). When it may have acted (a
    timeout or a dropped connection after the request went out, a 500, 502
    or 504) it raises ``RemoteOutcomeUnknown`` instead of sending it twice;
    the caller decides. An idempotent POST is retried like a GET."""
    return request(
        client, "POST", url, settings, headers=headers, content=content, data=data, files=files,
        max_bytes=max_bytes, idempotent=idempotent,
    )  # fmt: skip


def request(
    client: httpx.Client,
    method: str,
    url: str,
    settings: HttpSettings,
    *,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    data: Mapping[str, str] | None = None,
    files: Mapping[str, tuple[str, bytes, str]] | None = None,
    into: IO[bytes] | None = None,
    max_bytes: int | None = None,
    idempotent: bool = True,
) -> Fetched:
    """The one request loop under ``get`` and ``post`` (their docstrings say
    what is retried and what is raised)."""
    where = f"{method} {shown_url(url)}"
    wait = settings.backoff_seconds
    body = _Body(content, dict(data) if data else None, dict(files) if files else None)
    for attempt in range(settings.retries + 1):
        last = attempt == settings.retries
        try:
            return _request_once(client, method, url, settings, headers or {}, body, into, max_bytes)
        except _Retryable as problem:
            tries = f" after {attempt + 1} tries" if attempt else ""
            if not idempotent and problem.maybe_done:
                raise RemoteOutcomeUnknown(
                    f"{where}: {problem}{tries}; the service may have acted on it: check before sending it again"
                ) from None
            if last:
                raise RemoteError(f"{where}: {problem}{tries}; try again later") from None
        time.sleep(wait)
        wait *= 2
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


@dataclass(frozen=True)
class _Body:
    content: bytes | None
    data: dict[str, str] | None
    files: dict[str, tuple[str, bytes, str]] | None


class _Retryable(Exception):
    """A failure another try may not meet (its text is the reason);
    ``maybe_done``: the server may have acted on the request all the same."""

    def __init__(self, reason: str, *, maybe_done: bool) -> None:
        super().__init__(reason)
        self.maybe_done = maybe_done


def _request_once(
    client: httpx.Client,
    method: str,
    url: str,
    settings: HttpSettings,
    headers: Mapping[str, str],
    body: _Body,
    into: IO[bytes] | None,
    max_bytes: int | None,
) -> Fetched:
    where = f"{method} {shown_url(url)}"
    deadline = time.monotonic() + settings.request_seconds
    chunks: list[bytes] = []
    size = 0
    if into is not None:
        into.seek(0)
        into.truncate()
    try:
        with client.stream(
            method, url, headers=dict(headers), content=body.content, data=body.data, files=body.files
        ) as response:
            status = response.status_code
            if status in RETRY_STATUSES:
                raise _Retryable(f"HTTP {status}", maybe_done=status not in (429, 503))
            if status in (401, 403):
                raise RemoteError(f"{where}: HTTP {status}: the credentials were refused; check them")
            if status == 304:
                return Fetched(304, response.headers, b"")
            if not 200 <= status < 300:
                # A 4xx may explain itself in its body (NCMEC's reportResponse): kept, short.
                text = b""
                for chunk in response.iter_bytes() if method == "POST" else ():
                    text += chunk
                    if len(text) >= 2000:
                        break
                raise RemoteError(f"{where}: HTTP {status}; check the address", body=text[:2000])
            for chunk in response.iter_bytes():
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise RemoteError(f"{where}: more than {max_bytes:,} bytes; is this the right address?")
                if into is not None:
                    into.write(chunk)
                else:
                    chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise _Retryable(
                        f"still not complete after {settings.request_seconds:g} seconds (the server stalls)",
                        maybe_done=True,
                    )
            return Fetched(status, response.headers, b"".join(chunks))
    except httpx.ConnectTimeout:
        raise _Retryable("timed out connecting", maybe_done=False) from None
    except httpx.TimeoutException:
        raise _Retryable("timed out", maybe_done=True) from None
    except httpx.ConnectError as exc:
        raise _Retryable(f"connection failed ({type(exc).__name__})", maybe_done=False) from None
    except (httpx.TransportError, httpx.DecodingError) as exc:
        # A dropped connection, an incomplete body: worth another try.
        raise _Retryable(f"connection failed ({type(exc).__name__})", maybe_done=True) from None
    except httpx.TooManyRedirects:
        raise RemoteError(f"{where}: too many redirects; check the address") from None
