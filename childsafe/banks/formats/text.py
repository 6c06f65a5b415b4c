"""Plain hash lists: one hash a line, or ``SIGNAL HASH [CATEGORY]``; ``#`` comments.

Bare 32-hex values are md5, 40-hex sha1; bare 64-hex values need
``--signal sha256`` or ``--signal pdq`` (they could be either). Each line is
one entry; entries with several signals are written one line per signal, so
their grouping does not survive a round trip through this format (use csv or
vics for that).
"""

from __future__ import annotations

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

__all__ = ["TEXT"]

_BARE_SIGNALS = {32: "md5", 40: "sha1"}
_HEX = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True)
class TextFormat:
    """The ``text`` bank format."""

    name: str = "text"

    def looks_like(self, head: bytes) -> bool:
        return True  # the fallback: anything else is judged line by line

    def _bare(self, value: str, options: ImportOptions, where: str) -> tuple[str, str]:
        signal = options.signal or _BARE_SIGNALS.get(len(value))
        if signal is None:
            if len(value) == 64 and set(value) <= _HEX:
                raise InputFormatError(
                    f"{where}: a bare 64-hex hash may be sha256 or pdq; give --signal sha256 or --signal pdq"
                )
            raise InputFormatError(f"{where}: not a hash: {value!r:.70}")
        return checked_signal(signal, value, where)

    def read(self, stream: BinaryIO, options: ImportOptions) -> Iterator[ParsedEntry]:
        for number, line in text_lines(stream):
            if "#" in line:
                line = line.split("#", 1)[0]
            if "," in line:
                line = line.replace(",", " ")
            fields = line.split()
            if not fields:
                continue
            where = f"line {number}"
            if len(fields) == 1:
                signal = self._bare(fields[0], options, where)
                category = options.category
            elif len(fields) in (2, 3):
                signal = checked_signal(fields[0], fields[1], where)
                category = fields[2] if len(fields) == 3 else options.category
            else:
                raise InputFormatError(f"{where}: expected HASH or SIGNAL HASH [CATEGORY], got {len(fields)} fields")
            yield ParsedEntry([signal], where, checked_category(options.scheme, category, where))

    def write(self, entries: Iterable[ExportEntry], out: TextIO, bank_name: str, scheme: str) -> None:
        out.write(f"# childsafe bank {bank_name} (scheme {scheme}): SIGNAL HASH [CATEGORY]\n")
        for entry in entries:
            suffix = f" {entry.category}" if entry.category else ""
            for signal, value in entry.signals:
                out.write(f"{signal} {value}{suffix}\n")


TEXT = register(TextFormat())
