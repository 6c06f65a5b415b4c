"""A hash-list file read as batches of entries in columns (one list per
field), for ``importing.py``: a million-line list never becomes a million
objects, and runs of bare hashes are taken whole (``TextFormat.read_runs``)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from childsafe.banks.catalogue import entry_key, single_signal_keys, with_video_signal
from childsafe.banks.formats import BankFormat, ImportOptions, ParsedEntry
from childsafe.banks.formats.base import BareHashes
from childsafe.banks.formats.text import TextFormat
from childsafe.errors import InputFormatError, UsageError
from childsafe.media.streams import DigestingReader
from childsafe.signals.vpdq import FrameHashes

__all__ = ["BATCH", "Batch", "batches", "read_items"]

#: Entries a batch (about).
BATCH = 20_000


@dataclass
class Batch:
    """A batch of the file's entries as columns, one list per field
    (cheaper than an object or a tuple per entry for million-line lists)."""

    lines: list[int] = field(default_factory=list)  # the entry's number in the file: their order
    keys: list[str] = field(default_factory=list)
    wheres: list[str | int] = field(default_factory=list)  # "line 12", or 12 alone in a run of bare hashes
    categories: list[str | None] = field(default_factory=list)
    source_ids: list[str | None] = field(default_factory=list)
    notes: list[str | None] = field(default_factory=list)
    # One item per signal of an entry: the entry's position in this batch, the signal and its value.
    signal_entries: list[int] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    rejected: int = 0  # entries without a usable signal
    # Video entries' frame hashes: (the entry's position in this batch, its frames).
    videos: list[tuple[int, FrameHashes]] = field(default_factory=list)

    def add_run(self, run: BareHashes, first: int) -> None:
        """Add a run of bare hashes, numbered from ``first``."""
        count, start = len(run.values), len(self.keys)
        self.lines.extend(range(first, first + count))
        self.keys.extend(single_signal_keys(run.signal, run.values))
        self.wheres.extend(range(run.first_line, run.first_line + count))
        self.categories.extend(repeat(run.category, count))
        self.source_ids.extend(repeat(None, count))
        self.notes.extend(repeat(None, count))
        self.signal_entries.extend(range(start, start + count))
        self.signals.extend(repeat(run.signal, count))
        self.values.extend(run.values)

    def add_entry(self, entry: ParsedEntry, line: int) -> None:
        """Add one parsed entry, numbered ``line``."""
        try:
            signals = with_video_signal(entry.signals, entry.video)
        except UsageError as exc:
            raise InputFormatError(f"{entry.where}: {exc}") from None
        if not signals:
            self.rejected += 1
            return
        position = len(self.keys)
        if entry.video is not None:
            self.videos.append((position, entry.video))
        self.lines.append(line)
        self.keys.append(entry_key(signals))
        self.wheres.append(entry.where)
        self.categories.append(entry.category)
        self.source_ids.append(entry.source_id)
        self.notes.append(entry.note)
        for signal, value in sorted(set(signals)):
            self.signal_entries.append(position)
            self.signals.append(signal)
            self.values.append(value)


class _Pass(io.RawIOBase):
    """One read of the file from its start, through ``reader``: closing it
    (as a format's text wrapper does when it is dropped) leaves ``reader``
    open for another read."""

    def __init__(self, reader: DigestingReader) -> None:
        super().__init__()
        self._reader = reader
        reader.seek(0)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._reader.seekable()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._reader.seek(offset, whence)

    def tell(self) -> int:
        return self._reader.tell()

    def readinto(self, buffer: Any) -> int:
        return self._reader.readinto(buffer)


def read_items(
    bank_format: BankFormat, reader: DigestingReader, options: ImportOptions
) -> Iterator[ParsedEntry | BareHashes]:
    """The file's entries, from its start, runs of bare hashes together where the format can."""
    stream: Any = _Pass(reader)
    if isinstance(bank_format, TextFormat):
        return bank_format.read_runs(stream, options)
    return bank_format.read(stream, options)


def batches(items: Iterable[ParsedEntry | BareHashes]) -> Iterator[Batch]:
    """The entries in batches of about ``BATCH``, numbered 1, 2, ... in file
    order (entries without a signal too: they are counted as rejected)."""
    batch = Batch()
    number = 0
    for item in items:
        if isinstance(item, BareHashes):
            batch.add_run(item, number + 1)
            number += len(item.values)
        else:
            number += 1
            batch.add_entry(item, number)
        if len(batch.keys) >= BATCH:
            yield batch
            batch = Batch()
    yield batch
