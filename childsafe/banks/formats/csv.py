"""CSV hash lists with a header naming any of ``md5, sha1, sha256, pdq,
category, id, note`` (any order, any letter case; other columns are ignored).

One row is one entry. A signal cell may hold several values separated by
spaces (an entry's PDQ variants), so any bank survives a round trip.
"""

from __future__ import annotations

import csv as csv_module
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from childsafe.banks.formats.base import (
    ExportEntry,
    ImportOptions,
    ParsedEntry,
    checked_category,
    checked_signal,
    text_lines,
)
from childsafe.banks.formats.registry import register
from childsafe.errors import InputFormatError
from childsafe.signals import signal_names

__all__ = ["CSV"]

_META = ("category", "id", "note")


@dataclass(frozen=True)
class CsvFormat:
    """The ``csv`` bank format."""

    name: str = "csv"

    def looks_like(self, head: bytes) -> bool:
        first = head.split(b"\n", 1)[0].decode("utf-8-sig", "replace").strip().lower()
        columns = {c.strip().strip('"') for c in first.split(",")}
        return "," in first and bool(columns & set(signal_names()))

    def read(self, stream: BinaryIO, options: ImportOptions) -> Iterator[ParsedEntry]:
        position = {"line": 0}

        def numbered() -> Iterator[str]:
            for number, line in text_lines(stream):
                position["line"] = number
                yield line

        def parsed() -> Iterator[list[str]]:
            # csv's own errors (a quoted field over its 128 KiB limit) name no line; ours do.
            rows = csv_module.reader(numbered())
            while True:
                try:
                    row = next(rows)
                except StopIteration:
                    return
                except csv_module.Error as exc:
                    raise InputFormatError(f"line {position['line']}: not valid CSV ({exc})") from None
                yield row

        rows = parsed()
        try:
            header = [h.strip().lower() for h in next(rows)]
        except StopIteration:
            raise InputFormatError("line 1: empty file; a CSV hash list starts with a header") from None
        signals = [h for h in header if h in signal_names()]
        if not signals:
            raise InputFormatError(
                f"line 1: the header names no hash column; expected some of {', '.join(signal_names())}"
            )
        for row in rows:
            where = f"line {position['line']}"
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise InputFormatError(f"{where}: {len(row)} fields, the header has {len(header)}")
            cells = dict(zip(header, row, strict=True))
            found = [checked_signal(name, value, where) for name in signals for value in cells[name].split()]
            if not found:
                raise InputFormatError(f"{where}: no hash in this row")
            category = cells.get("category", "").strip() or options.category
            yield ParsedEntry(
                found,
                where,
                checked_category(options.scheme, category, where),
                cells.get("id", "").strip() or None,
                cells.get("note", "").strip() or None,
            )

    def write(self, entries: Iterable[ExportEntry], out: TextIO, bank_name: str, scheme: str) -> None:
        columns = [*signal_names(), *_META]
        writer = csv_module.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for entry in entries:
            by_signal: dict[str, list[str]] = {}
            for signal, value in entry.signals:
                by_signal.setdefault(signal, []).append(value)
            writer.writerow(
                [" ".join(by_signal.get(s, [])) for s in signal_names()]
                + [entry.category or "", entry.source_id or "", entry.note or ""]
            )


CSV = register(CsvFormat())
