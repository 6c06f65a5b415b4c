"""Drop-in interception for a host's own site: ASGI and WSGI middleware.

Wrap the host application and name its search paths and query parameters;
a search that matches a list gets the warning page instead of results, and
the page's help links (under ``prefix``) count a click and redirect::

    settings = Settings.from_env()  # CHILDSAFE_DATABASE_URL, CHILDSAFE_HELP_RESOURCES...
    prevention = Prevention(open_database(settings.database_url), settings.help_resources, settings.warning_texts)
    app = DeterrenceASGIMiddleware(app, prevention, InterceptRules(paths=("/search",), text_params=("q",)))

Every other request passes through untouched. Both middlewares share
``answer_request``; they only translate to and from their protocol.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread

from childsafe.deter.prevention import Prevention

__all__ = ["DeterrenceASGIMiddleware", "DeterrenceWSGIMiddleware", "InterceptRules", "Reply", "answer_request"]


@dataclass(frozen=True)
class InterceptRules:
    """Which requests are searches, and how to answer them."""

    #: Paths of the host's search pages (exact).
    paths: tuple[str, ...] = ("/search",)
    #: Query parameters holding search text, checked against the term lists.
    text_params: tuple[str, ...] = ("q",)
    #: Query parameters holding a link, checked against the URL lists.
    url_params: tuple[str, ...] = ()
    #: A request header giving the person's ISO 3166 region (e.g. a CDN's
    #: ``CF-IPCountry``); the address itself is never looked at.
    region_header: str | None = None
    default_region: str = "GB"
    #: Where the middleware serves its counting help links.
    prefix: str = "/_childsafe"
    #: Where "Leave this page" goes after counting the search as abandoned.
    leave_url: str = "/"


@dataclass(frozen=True)
class Reply:
    """A response the middleware gives instead of the host's."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


# The page needs no script, image or outside resource: forbid them all.
_PAGE_HEADERS = [
    ("content-type", "text/html; charset=utf-8"),
    ("cache-control", "no-store"),
    ("referrer-policy", "no-referrer"),
    ("x-robots-tag", "noindex"),
    ("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'"),
]


def _redirect(target: str) -> Reply:
    return Reply(303, [("location", target), ("cache-control", "no-store"), ("referrer-policy", "no-referrer")], b"")


def answer_request(
    prevention: Prevention, rules: InterceptRules, path: str, query_string: str, headers: Mapping[str, str]
) -> Reply | None:
    """The warning page for an intercepted search, a counting redirect for a
    help or leave link, or ``None`` to let the host answer. ``headers`` have
    lower-case names."""
    params = parse_qs(query_string, max_num_fields=100)
    if path.startswith(rules.prefix + "/"):
        region = params.get("region", [rules.default_region])[0]
        list_name = params.get("list", [None])[0]
        parts = path[len(rules.prefix) + 1 :].split("/")
        if parts == ["leave"]:
            prevention.record("abandoned", region, list_name)
            return _redirect(rules.leave_url)
        target = (
            prevention.follow_help(parts[1], parts[2], region, list_name)
            if parts[0] == "help" and len(parts) == 3
            else None
        )
        return _redirect(target) if target else Reply(404, [("content-type", "text/plain")], b"not found\n")
    if path not in rules.paths:
        return None
    text = " ".join(value for name in rules.text_params for value in params.get(name, []))
    url = next((value for name in rules.url_params for value in params.get(name, [])), None)
    if not text and not url:
        return None
    region = (headers.get(rules.region_header.lower()) if rules.region_header else None) or rules.default_region
    lang = headers.get("accept-language", "en")
    answer = prevention.check(text or None, url, region, lang)
    if not answer["intercept"]:
        return None
    page = prevention.warning_page(region, lang, answer["matched"]["list"], rules.prefix)
    return Reply(200, list(_PAGE_HEADERS), page.encode("utf-8"))


ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]


class DeterrenceASGIMiddleware:
    """ASGI middleware (FastAPI, Starlette, Django's ASGI...): intercepts the host's searches."""

    def __init__(self, app: ASGIApp, prevention: Prevention, rules: InterceptRules | None = None) -> None:
        self.app, self.prevention, self.rules = app, prevention, rules or InterceptRules()

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path in self.rules.paths or path.startswith(self.rules.prefix + "/")):
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        query = scope.get("query_string", b"").decode("latin-1")
        # Matching and counting touch the database: keep them off the event loop.
        reply = await anyio.to_thread.run_sync(answer_request, self.prevention, self.rules, path, query, headers)
        if reply is None:
            await self.app(scope, receive, send)
            return
        raw_headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in reply.headers]
        await send({"type": "http.response.start", "status": reply.status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": reply.body})


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class DeterrenceWSGIMiddleware:
    """WSGI middleware (Flask, Django, ...): intercepts the host's searches."""

    def __init__(self, app: WSGIApp, prevention: Prevention, rules: InterceptRules | None = None) -> None:
        self.app, self.prevention, self.rules = app, prevention, rules or InterceptRules()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = {
            key[5:].replace("_", "-").lower(): str(value) for key, value in environ.items() if key.startswith("HTTP_")
        }
        path, query = environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
        reply = answer_request(self.prevention, self.rules, path, query, headers)
        if reply is None:
            return self.app(environ, start_response)
        # A copy: WSGI servers add to the list they are given (wsgiref adds Content-Length).
        start_response(f"{reply.status} {HTTPStatus(reply.status).phrase}", list(reply.headers))
        return [reply.body]
