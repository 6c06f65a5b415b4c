"""The registry of case report writers (one module each)."""

from __future__ import annotations

from typing import Protocol, TextIO

from childsafe.triage.case import CaseReport

__all__ = ["ReportWriter", "register", "writers"]


class ReportWriter(Protocol):
    """Writes one output file of a case."""

    @property
    def filename(self) -> str: ...

    def write(self, case: CaseReport, out: TextIO) -> None: ...


_WRITERS: dict[str, ReportWriter] = {}


def register(writer: ReportWriter) -> ReportWriter:
    """Add a writer; two writing the same file name is a programming error."""
    if writer.filename in _WRITERS:
        raise ValueError(f"a report writer for {writer.filename!r} is already registered")
    _WRITERS[writer.filename] = writer
    return writer


def writers() -> list[ReportWriter]:
    """Every registered writer, in registration order."""
    return list(_WRITERS.values())
