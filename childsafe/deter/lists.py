"""The operator's prevention lists in the database: import, and load into matchers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from childsafe.deter.terms import TermMatcher
from childsafe.deter.urls import UrlMatcher, normalise_url
from childsafe.errors import InputFormatError, UsageError
from childsafe.naming import checked_name
from childsafe.store import upsert
from childsafe.store.models import DeterEntry

__all__ = ["ListImport", "import_list", "load_matchers", "lists_version"]



@dataclass
class ListImport:
    """What ``deter terms|urls import`` prints."""

    list: str
    kind: str
    added: int
    total: int

    def to_dict(self) -> dict[str, Any]:
        return {"list": self.list, "kind": self.kind, "added": self.added, "total": self.total}


def import_list(engine: Engine, kind: str, path: Path, list_name: str, lang: str = "en") -> ListImport:
    """Add the file's entries (one a line; ``#`` comments) to a list; entries
    already there are not added again. All or nothing: a bad line (an
    unreadable URL) names the file and line and changes nothing."""
    checked_name(list_name, "list")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    values: list[str] = []
    for number, line in enumerate(lines, start=1):
        value = line.split("#", 1)[0].strip() if kind == "term" else line.strip()
        if not value or value.startswith("#"):
            continue
        if len(value) > 2000:
            raise InputFormatError(f"{path.name}: line {number}: longer than 2,000 characters")
        if kind == "url" and normalise_url(value.rstrip("*")) is None:
            raise InputFormatError(f"{path.name}: line {number}: not a web address: {value!r:.80}")
        values.append(value)
    in_list = (
        select(func.count()).select_from(DeterEntry).where(DeterEntry.kind == kind, DeterEntry.list_name == list_name)
    )
    with engine.begin() as connection:
        before = connection.scalar(in_list) or 0
        if values:
            connection.execute(
                upsert(engine, DeterEntry).on_conflict_do_nothing(),
                [{"kind": kind, "list_name": list_name, "lang": lang, "value": v} for v in dict.fromkeys(values)],
            )
        total = connection.scalar(in_list) or 0
    return ListImport(list_name, kind, total - before, total)


def lists_version(engine: Engine) -> tuple[int, int]:
    """Changes whenever a list changes (entries are only ever added)."""
    with engine.connect() as connection:
        count, last = connection.execute(select(func.count(), func.max(DeterEntry.id))).one()
    return int(count or 0), int(last or 0)


def load_matchers(engine: Engine) -> tuple[TermMatcher, UrlMatcher]:
    """Matchers for every term list and every URL list."""
    terms: dict[str, list[str]] = {}
    urls: dict[str, list[str]] = {}
    with engine.connect() as connection:
        for kind, name, value in connection.execute(select(DeterEntry.kind, DeterEntry.list_name, DeterEntry.value)):
            (terms if kind == "term" else urls).setdefault(name, []).append(value)
    return TermMatcher.build(terms), UrlMatcher.build(urls)
