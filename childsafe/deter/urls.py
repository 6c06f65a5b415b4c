"""Matching URLs against operator-supplied URL lists (IWF-style): exact
entries, and entries ending in ``*`` that match every URL they prefix.

Both sides are normalised first, so trivial rewrites do not slip past:
the scheme and host are lower-cased, ``http``/``https`` are one, a
``www.`` prefix, default ports (80, 443), a trailing dot on the host,
user names and passwords, and the fragment are dropped; percent-encoding
is decoded where it encodes an unreserved character and upper-cased
elsewhere; an empty path is ``/``; IDN hosts are compared in punycode.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["normalise_url", "UrlMatcher"]

_UNRESERVED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = "0123456789abcdefABCDEF"


def _percent(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "%" and i + 2 < len(text) and text[i + 1] in _HEX and text[i + 2] in _HEX:
            char = chr(int(text[i + 1 : i + 3], 16))
            out.append(char if char in _UNRESERVED else "%" + text[i + 1 : i + 3].upper())
            i += 3
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def normalise_url(url: str) -> str | None:
    """``host/path?query`` in canonical form, or ``None`` if ``url`` is not a web address."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").rstrip(".")
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        host = host.lower()
    if host.startswith("www."):
        host = host[4:]
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    path = _percent(parts.path) or "/"
    query = f"?{_percent(parts.query)}" if parts.query else ""
    return f"{netloc}{path}{query}"


@dataclass
class UrlMatcher:
    """Every URL of every list, ready for ``match``."""

    _exact: dict[str, str] = field(default_factory=dict)
    _prefixes: dict[str, dict[str, str]] = field(default_factory=dict)  # host -> {prefix: list}
    entries: int = 0
    list_names: set[str] = field(default_factory=set)

    @classmethod
    def build(cls, lists: Mapping[str, Iterable[str]]) -> UrlMatcher:
        """A matcher for ``{list name: URLs}`` (an entry ending in ``*`` is a prefix)."""
        matcher = cls()
        for name, urls in lists.items():
            matcher.list_names.add(name)
            for url in urls:
                prefix = url.strip().endswith("*")
                canonical = normalise_url(url.strip().rstrip("*")) if url.strip() else None
                if canonical is None:
                    continue
                matcher.entries += 1
                if prefix:
                    host = canonical.split("/", 1)[0]
                    matcher._prefixes.setdefault(host, {})[canonical] = name
                else:
                    matcher._exact.setdefault(canonical, name)
        return matcher

    def match(self, url: str) -> str | None:
        """The name of the list that holds ``url`` (exactly or by a prefix), or ``None``."""
        canonical = normalise_url(url)
        if canonical is None:
            return None
        if canonical in self._exact:
            return self._exact[canonical]
        host = canonical.split("/", 1)[0]
        for prefix, name in self._prefixes.get(host, {}).items():
            # "example.org/folder/*" covers everything under the folder, and the folder itself.
            if canonical.startswith(prefix) or canonical + "/" == prefix:
                return name
        return None
