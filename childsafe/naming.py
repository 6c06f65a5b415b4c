"""The one rule for names people give things (banks, term and URL lists, API keys)."""

from __future__ import annotations

import re

from childsafe.errors import UsageError

__all__ = ["checked_name"]

_NAME = r"A-Za-z0-9._\-"


def checked_name(name: str, what: str, *, also: str = "") -> str:
    """``name`` if it is 1-100 letters, digits, '.', '_', '-' (and the
    characters in ``also``), starting with a letter or digit; otherwise a
    ``UsageError`` naming ``what`` it is the name of ("bank", "key"...)."""
    if re.fullmatch(f"[A-Za-z0-9][{_NAME}{re.escape(also)}]{{0,99}}", name):
        return name
    allowed = ", ".join(f"'{c}'" for c in "._" + also)
    raise UsageError(
        f"bad {what} name {name!r:.60}: use 1-100 letters, digits, {allowed} or '-', starting with a letter or digit"
    )
