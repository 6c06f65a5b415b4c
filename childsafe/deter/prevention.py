"""One object that every front door of prevention shares: the HTTP routes,
the ASGI and WSGI middleware and the CLI. It holds the operator's lists (as
matchers, reloaded within a second of a change), answers checks, renders the
warning page and follows its counting help links."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Engine

from childsafe.deter.counters import count
from childsafe.deter.lists import lists_version, load_matchers
from childsafe.deter.resources import HelpResource, load_resources, resources_for
from childsafe.deter.terms import TermMatcher
from childsafe.deter.urls import UrlMatcher
from childsafe.deter.warning import help_target, load_warning_text, render_warning_page

__all__ = ["Prevention", "RELOAD_SECONDS", "UNKNOWN_LIST"]

#: A change to a list takes effect in a running service within this time.
RELOAD_SECONDS = 1.0
#: Counted in place of a list name that a link carries but no list has.
UNKNOWN_LIST = "-"


@dataclass(frozen=True)
class _Loaded:
    terms: TermMatcher
    urls: UrlMatcher
    resources: list[HelpResource]
    version: tuple[int, int]


@dataclass
class Prevention:
    """Checks, warning pages and help links over one database's lists."""

    engine: Engine
    #: ``Settings.help_resources`` and ``Settings.warning_texts``: the operator's own help services and texts.
    help_resources: Path | None = None
    warning_texts: Path | None = None
    reload_seconds: float = RELOAD_SECONDS
    _loaded: _Loaded | None = None
    _checked_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _lists(self) -> _Loaded:
        """The matchers, rebuilt when a list has changed (asked at most once per ``reload_seconds``)."""
        with self._lock:
            now = time.monotonic()
            if self._loaded is None or now - self._checked_at >= self.reload_seconds:
                version = lists_version(self.engine)
                if self._loaded is None or self._loaded.version != version:
                    terms, urls = load_matchers(self.engine)
                    self._loaded = _Loaded(terms, urls, load_resources(self.help_resources), version)
                self._checked_at = now
            return self._loaded

    def check(self, text: str | None, url: str | None, region: str = "GB", lang: str = "en") -> dict[str, Any]:
        """docs/spec.md's check answer (``intercept``, ``matched``, ``warning``); an
        interception is counted as ``shown``. The answer names the list, never the
        term (the lists are confidential)."""
        lists = self._lists()
        matched: dict[str, str] | None = None
        if text and (name := lists.terms.match(text)):
            matched = {"kind": "term", "list": name}
        elif url and (name := lists.urls.match(url)):
            matched = {"kind": "url", "list": name}
        if matched is None:
            return {"intercept": False, "matched": None, "warning": None}
        count(self.engine, region, matched["list"], "shown")
        wording = load_warning_text(lang, self.warning_texts)
        resources = [r.to_dict() for r in resources_for(region, lists.resources)]
        warning = {"title": wording.title, "body": wording.body, "resources": resources}
        return {"intercept": True, "matched": matched, "warning": warning}

    def counted_list(self, list_name: str | None) -> str:
        """The list name to count under: a list that exists, else ``UNKNOWN_LIST``
        (links are public, so their parameters are never trusted)."""
        lists = self._lists()
        known = list_name and (list_name in lists.terms.list_names or list_name in lists.urls.list_names)
        return list_name if known and list_name else UNKNOWN_LIST

    def warning_page(self, region: str, lang: str, list_name: str | None, base: str, leave: bool = True) -> str:
        """The warning page for ``region``; help links go to ``{base}/help/...``
        and the leave link (if ``leave``) to ``{base}/leave``, both counting."""
        query = urlencode({"region": region, "list": self.counted_list(list_name)})
        page_resources = resources_for(region, self._lists().resources)
        return render_warning_page(
            load_warning_text(lang, self.warning_texts),
            page_resources,
            lambda resource, kind: f"{base}/help/{resource.id}/{kind}?{query}",
            f"{base}/leave?{query}" if leave else None,
        )

    def follow_help(self, resource_id: str, kind: str, region: str, list_name: str | None) -> str | None:
        """Count a help click and return where it leads (``None`` for a link the page never had)."""
        for resource in resources_for(region, self._lists().resources):
            target = help_target(resource, kind) if resource.id == resource_id else None
            if target:
                count(self.engine, region, self.counted_list(list_name), "help_clicked")
                return target
        return None

    def record(self, outcome: str, region: str, list_name: str | None) -> None:
        """Count an outcome the host reports (``abandoned``: the person left the search)."""
        count(self.engine, region, self.counted_list(list_name), outcome)
