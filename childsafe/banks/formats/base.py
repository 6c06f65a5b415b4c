"""What every bank file format provides, and the records they exchange."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol, TextIO

from childsafe.banks.schemes import check_category
from childsafe.errors import InputFormatError, UsageError
from childsafe.signals import get_signal
from childsafe.signals.vpdq import FrameHashes

__all__ = [
    "ImportOptions",
    "ParsedEntry",
    "BareHashes",
    "ExportEntry",
    "BankFormat",
    "WrongFormat",
    "checked_signal",
    "checked_category",
    "text_lines",
    "MAX_LINE",
]


class WrongFormat(Exception):
    """Raised by a format's ``sniff`` helpers: this is not my format (the caller tries another)."""


@dataclass(frozen=True)
class ImportOptions:
    """Choices the user made on the command line that formats need.

    ``signal`` names the signal of bare hashes whose length is ambiguous
    (64 hex: sha256 or pdq); ``category`` is given to entries without one;
    ``vics_profile`` maps VICS numeric categories; ``scheme`` is the bank's;
    ``file_name`` is the file's own name (a vPDQ file's entry takes its
    source id from it) and ``folder`` where it is (a CSV's vPDQ file names
    are relative to it; ``None`` for an upload, which cannot name files).
    """

    scheme: str = "none"
    signal: str | None = None
    category: str | None = None
    vics_profile: str = "us"
    file_name: str | None = None
    folder: Path | None = None


@dataclass
class ParsedEntry:
    """One entry read from a file: ``signals`` as (signal, lowercase hex)
    pairs, and where in the file it came from (``where``: "line 12")."""

    signals: list[tuple[str, str]]
    where: str
    category: str | None = None
    source_id: str | None = None
    note: str | None = None
    #: A video's vPDQ frame hashes; its ``vpdq`` signal is added from them on import.
    video: FrameHashes | None = None


@dataclass
class BareHashes:
    """Consecutive lines of a file that each hold one hash and nothing else,
    read together (``TextFormat.read_runs``): one entry a line, each with
    the single signal ``signal``, the value ``values[i]`` (lowercase hex) and
    ``category``, from line ``first_line + i``."""

    signal: str
    values: list[str]
    first_line: int
    category: str | None

    def entries(self) -> Iterator[ParsedEntry]:
        """The same entries one by one, as ``BankFormat.read`` gives them."""
        for number, value in enumerate(self.values, self.first_line):
            yield ParsedEntry([(self.signal, value)], f"line {number}", self.category)


@dataclass
class ExportEntry:
    """One entry of a bank, for writing to a file."""

    entry_id: int
    signals: list[tuple[str, str]] = field(default_factory=list)
    category: str | None = None
    source_id: str | None = None
    note: str | None = None
    #: A video entry's frame hashes (its ``vpdq`` signal is their digest).
    video: FrameHashes | None = None


class BankFormat(Protocol):
    """A hash-list file format: one module each, registered by name."""

    @property
    def name(self) -> str:
        """The format's name on the command line."""
        ...

    def looks_like(self, head: bytes) -> bool:
        """Whether a file starting with ``head`` is plausibly this format (for ``--format auto``)."""
        ...

    def read(self, stream: BinaryIO, options: ImportOptions) -> Iterator[ParsedEntry]:
        """Entries of the file, streamed; ``InputFormatError`` (without the file
        name, which the caller adds) on the first bad record."""
        ...

    def write(self, entries: Iterable[ExportEntry], out: TextIO, bank_name: str, scheme: str) -> None:
        """Write ``entries`` so that ``read`` gives them back."""
        ...


def checked_signal(signal: str, value: str, where: str) -> tuple[str, str]:
    """``(signal, normalised value)``, or ``InputFormatError`` saying where and why."""
    try:
        signal_type = get_signal(signal.strip())
        return signal_type.name, signal_type.parse(value)
    except UsageError as exc:
        raise InputFormatError(f"{where}: {exc}") from None


def checked_category(scheme: str, category: str | None, where: str) -> str | None:
    """``category`` valid in ``scheme``, or ``InputFormatError`` saying where and why."""
    if category is None:
        return None
    try:
        return check_category(scheme, category)
    except UsageError as exc:
        raise InputFormatError(f"{where}: {exc}") from None


#: Longest line a hash-list line can sensibly be; longer means "not a hash list"
#: (and bounds memory when someone imports a 2 GB binary by mistake).
MAX_LINE = 20_000


def text_lines(stream: BinaryIO, first_line: int = 1) -> Iterator[tuple[int, str]]:
    """``(line number, line without newline)`` of a UTF-8 stream, with a
    bound on line length; ``InputFormatError`` for binary or over-long lines.
    ``first_line`` is the number of the stream's first line: more than 1
    for the rest of a file read from a line's start, where a byte-order mark
    is no longer skipped."""

    from childsafe.errors import InputFormatError

    encoding = "utf-8-sig" if first_line == 1 else "utf-8"
    reader = io.TextIOWrapper(stream, encoding=encoding, errors="strict", newline=None)
    number = first_line - 1
    while True:
        number += 1
        try:
            line = reader.readline(MAX_LINE + 1)
        except UnicodeDecodeError:
            raise InputFormatError(f"line {number}: not UTF-8 text (is this a hash list?)") from None
        if not line:
            return
        if len(line) > MAX_LINE and not line.endswith("\n"):
            raise InputFormatError(f"line {number}: longer than {MAX_LINE:,} characters (is this a hash list?)")
        yield number, line.rstrip("\r\n")
