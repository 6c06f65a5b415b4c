"""The registry of case report writers (one module each)."""

from __future__ import annotations

from typing import Protocol, TextIO

from childsafe.registry import Registry
from childsafe.triage.case import CaseReport

__all__ = ["ReportWriter", "register", "writers"]


class ReportWriter(Protocol):
    """Writes one output file of a case."""

    @property
    def filename(self) -> str: ...

    def write(self, case: CaseReport, out: TextIO) -> None: ...


_WRITERS: Registry[ReportWriter] = Registry("report writer", lambda writer: writer.filename)


def register(writer: ReportWriter) -> ReportWriter:
    """Add a writer; two writing the same file name is a programming error."""
    return _WRITERS.register(writer)


def writers() -> list[ReportWriter]:
    """Every registered writer, in registration order."""
    return _WRITERS.values()
