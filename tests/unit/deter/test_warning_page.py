"""The warning page, its counting help links, and the drop-in ASGI and WSGI
middleware, on real servers on loopback; the page in a real headless
Chromium (Debian's package) driven by Playwright."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest
import uvicorn
from support import deter_counters, free_port, redirect_of

from childsafe.deter.lists import import_list
from childsafe.deter.middleware import DeterrenceASGIMiddleware, DeterrenceWSGIMiddleware, InterceptRules
from childsafe.deter.prevention import Prevention
from childsafe.deter.warning import load_warning_text
from childsafe.store import open_database

CHROMIUM = shutil.which("chromium")


class PageOutline(HTMLParser):
    """What a reader, a screen reader and a keyboard meet on the page."""

    def __init__(self) -> None:
        super().__init__()
        self.lang: str | None = None
        self.headings: list[str] = []
        self.links: list[tuple[str, str]] = []
        self.tags: set[str] = set()
        self._open: list[str] = []
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "html":
            self.lang = dict(attrs).get("lang")
        if tag in ("h1", "h2", "h3"):
            self.headings.append(tag)
        if tag == "a":
            self._href = dict(attrs).get("href")
            self.links.append((self._href or "", ""))

    def handle_data(self, data: str) -> None:
        if self._href is not None and data.strip():
            href, text = self.links[-1]
            self.links[-1] = (href, (text + " " + data.strip()).strip())

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._href = None


@pytest.fixture
def prevention(database_url: str, tmp_path: Path) -> Iterator[Prevention]:
    engine = open_database(database_url)
    terms = tmp_path / "terms.txt"
    terms.write_text("purple umbrella\nvelvet lantern\n")
    import_list(engine, "term", terms, "kw")
    yield Prevention(engine, reload_seconds=0)
    engine.dispose()


def test_only_reviewed_translations_are_served(tmp_path: Path) -> None:
    english = load_warning_text("en")
    assert english.lang == "en" and "illegal" in english.body and "harms" in english.body
    assert load_warning_text("xx").lang == "en"  # no such text: English
    assert load_warning_text("<script>").lang == "en"
    texts = tmp_path / "texts"
    texts.mkdir()
    fields = {k: f"[{k} in test language]" for k in json.loads(json.dumps(english.__dict__))}
    (texts / "warning-cy.json").write_text(
        json.dumps({**fields, "lang": "cy", "reviewed_by": "Test reviewer", "reviewed_on": "2026-11-29"})
    )
    (texts / "warning-fr.json").write_text(json.dumps({**fields, "lang": "fr", "reviewed_by": None}))
    assert load_warning_text("cy", texts).lang == "cy"
    assert load_warning_text("cy-GB", texts).lang == "cy"
    assert load_warning_text("fr", texts).lang == "en"  # not reviewed: not served
    assert load_warning_text("fr-FR, cy;q=0.8, en;q=0.5", texts).lang == "cy"  # Accept-Language, in order


def test_warning_page_is_plain_accessible_html(prevention: Prevention) -> None:
    page = prevention.warning_page("GB", "en", "kw", "/warning")
    outline = PageOutline()
    outline.feed(page)
    assert outline.lang == "en"
    assert outline.headings[:2] == ["h1", "h2"] and outline.headings.count("h1") == 1
    assert {"main", "section", "ul", "li"} <= outline.tags
    assert not outline.tags & {"script", "img", "iframe", "form", "link"}  # readable without script, nothing outside
    assert "Call 0808 1000 900" in dict((text, href) for href, text in outline.links)
    hrefs = [href for href, _ in outline.links]
    assert "/warning/help/stopitnow-uk/phone?region=GB&list=kw" in hrefs
    assert all(href.startswith("/warning/") for href in hrefs)  # every help link counts before it leaves
    us = prevention.warning_page("US", "en", None, "/warning", leave=False)
    assert "1-888-773-8368" in us and "list=-" in us and "/leave" not in us


def test_help_links_count_a_click_with_nothing_else(prevention: Prevention) -> None:
    assert prevention.follow_help("stopitnow-uk", "phone", "GB", "kw") == "tel:08081000900"
    assert prevention.follow_help("stopitnow-us", "web", "US", "no-such-list") == "https://www.stopitnow.org/"
    assert prevention.follow_help("stopitnow-us", "phone", "GB", "kw") is None  # not a GB link
    assert prevention.follow_help("stopitnow-uk", "fax", "GB", "kw") is None
    prevention.record("abandoned", "<b>", "kw")
    assert deter_counters(prevention.engine) == {
        ("GB", "kw", "help_clicked"): 1,
        ("US", "-", "help_clicked"): 1,
        ("ZZ", "kw", "abandoned"): 1,
    }


def _host_search_page(query: str) -> str:
    return f"results for {query}"


async def _asgi_host(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A host application: its search page echoes the query."""
    from urllib.parse import parse_qs

    query = parse_qs(scope["query_string"].decode()).get("q", [""])[0]
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": _host_search_page(query).encode()})


def _wsgi_host(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    from urllib.parse import parse_qs

    query = parse_qs(environ.get("QUERY_STRING", "")).get("q", [""])[0]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [_host_search_page(query).encode()]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve_asgi(app: Any) -> tuple[str, Any]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)

    return f"http://127.0.0.1:{port}", stop


def _serve_wsgi(app: Any) -> tuple[str, Any]:
    server = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return f"http://127.0.0.1:{server.server_port}", stop


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_middleware_intercepts_the_hosts_searches(prevention: Prevention, kind: str) -> None:
    rules = InterceptRules(paths=("/search",), text_params=("q",), region_header="CF-IPCountry", leave_url="/home")
    if kind == "asgi":
        url, stop = _serve_asgi(DeterrenceASGIMiddleware(_asgi_host, prevention, rules))
    else:
        url, stop = _serve_wsgi(DeterrenceWSGIMiddleware(_wsgi_host, prevention, rules))
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/search", params={"q": "tulips"}).text == "results for tulips"
            assert client.get("/other", params={"q": "purple umbrella"}).text == "results for purple umbrella"
            warned = client.get("/search", params={"q": "P.U.R.P.L.E umbrela"}, headers={"CF-IPCountry": "US"})
            assert warned.status_code == 200 and warned.headers["content-type"].startswith("text/html")
            assert "default-src 'none'" in warned.headers["content-security-policy"]
            assert "results for" not in warned.text and "1-888-773-8368" in warned.text
            outline = PageOutline()
            outline.feed(warned.text)
            phone = next(href for href, text in outline.links if "1-888-773-8368" in text)
            assert phone == "/_childsafe/help/stopitnow-us/phone?region=US&list=kw"
            assert redirect_of(url, phone) == (303, "tel:18887738368")
            leave = next(href for href, _ in outline.links if href.startswith("/_childsafe/leave"))
            assert redirect_of(url, leave) == (303, "/home")
            assert client.get("/_childsafe/help/nothing/phone").status_code == 404
            welsh = client.get("/search", params={"q": "velvet lantern"}, headers={"Accept-Language": "cy"})
            assert (
                '<html lang="en">' in welsh.text and "0808 1000 900" in welsh.text
            )  # no reviewed Welsh yet; GB default
    finally:
        stop()
    assert deter_counters(prevention.engine) == {
        ("US", "kw", "shown"): 1,
        ("US", "kw", "help_clicked"): 1,
        ("US", "kw", "abandoned"): 1,
        ("GB", "kw", "shown"): 1,
    }
