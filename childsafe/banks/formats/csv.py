"""CSV hash lists with a header naming any of ``md5, sha1, sha256, pdq,
vpdq, category, id, note`` (any order, any letter case; other columns are ignored).

One row is one entry. A signal cell may hold several values separated by
spaces (an entry's PDQ variants), so any bank survives a round trip.

A ``vpdq`` cell holds a video's frame hashes: either the name of its vPDQ
file (Meta's ``frame,quality,pdqhex,timestamp`` lines), relative to the CSV's
folder, or python-threatexchange's serialisation inline (a JSON list of
``"pdqhex,quality,timestamp"`` strings), which is what exports write.
"""

from __future__ import annotations

import csv as csv_module
import io
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
from childsafe.banks.formats.vpdq import MAX_VIDEO_FILE_BYTES, read_vpdq_frames
from childsafe.errors import InputFormatError, UsageError
from childsafe.signals import signal_names
from childsafe.signals.vpdq import FrameHashes, format_threatexchange, parse_threatexchange

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
        signals = [h for h in header if h in signal_names() and h != "vpdq"]
        if not signals and "vpdq" not in header:
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
            video = _video(cells.get("vpdq", "").strip(), options, where)
            if not found and video is None:
                raise InputFormatError(f"{where}: no hash in this row")
            category = cells.get("category", "").strip() or options.category
            yield ParsedEntry(
                found,
                where,
                checked_category(options.scheme, category, where),
                cells.get("id", "").strip() or None,
                cells.get("note", "").strip() or None,
                video,
            )

    def write(self, entries: Iterable[ExportEntry], out: TextIO, bank_name: str, scheme: str) -> None:
        columns = [*signal_names(), *_META]
        writer = csv_module.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for entry in entries:
            by_signal: dict[str, list[str]] = {}
            for signal, value in entry.signals:
                by_signal.setdefault(signal, []).append(value)
            if entry.video is not None:  # the frames inline: the digest alone could not be imported again
                by_signal["vpdq"] = [format_threatexchange(entry.video.features())]
            writer.writerow(
                [" ".join(by_signal.get(s, [])) for s in signal_names()]
                + [entry.category or "", entry.source_id or "", entry.note or ""]
            )


def _video(cell: str, options: ImportOptions, where: str) -> FrameHashes | None:
    """The frame hashes a ``vpdq`` cell gives: inline, or from the file it names."""
    if not cell:
        return None
    if cell.startswith("["):
        try:
            return FrameHashes.of(parse_threatexchange(cell, f"{where}, vpdq"))
        except UsageError as exc:
            raise InputFormatError(str(exc)) from None
    if options.folder is None:
        raise InputFormatError(
            f"{where}: vpdq names a file ({cell!r:.80}), which an upload cannot carry; put the frames inline"
        )
    path = options.folder / cell
    try:
        with open(path, "rb") as stream:
            # Read whole (bounded) and parsed from memory: the parser's text
            # wrapper would otherwise hold the file open after it is closed.
            data = stream.read(MAX_VIDEO_FILE_BYTES + 1)
        if len(data) > MAX_VIDEO_FILE_BYTES:
            raise InputFormatError(f"over {MAX_VIDEO_FILE_BYTES:,} bytes (is this a vPDQ file?)")
        return FrameHashes.of(read_vpdq_frames(io.BytesIO(data)))
    except OSError as exc:
        raise InputFormatError(f"{where}: cannot read the vPDQ file {cell!r:.80}: {exc.strerror}") from None
    except InputFormatError as exc:
        raise InputFormatError(f"{where}: the vPDQ file {cell!r:.80}, {exc}") from None


CSV = register(CsvFormat())
