"""Plain hash lists: one hash a line, or ``SIGNAL HASH [CATEGORY]``; ``#`` comments.

Bare 32-hex values are md5, 40-hex sha1; bare 64-hex values need
``--signal sha256`` or ``--signal pdq`` (they could be either). Each line is
one entry; entries with several signals are written one line per signal, so
their grouping does not survive a round trip through this format (use csv or
vics for that). A video's frame hashes do not fit on a line: its ``vpdq``
signal is left out of exports (its digests stay), and importing one is refused.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from childsafe.banks.formats.base import (
    BareHashes,
    ExportEntry,
    ImportOptions,
    ParsedEntry,
    checked_category,
    checked_signal,
    text_lines,
)
from childsafe.banks.formats.registry import register
from childsafe.errors import InputFormatError, UsageError
from childsafe.signals import SignalType, get_signal

__all__ = ["TEXT"]

_BARE_SIGNALS = {32: "md5", 40: "sha1"}
_HEX = frozenset("0123456789abcdefABCDEF")
_HEX_BYTES = b"0123456789abcdefABCDEF"
#: Bytes read at a time by ``read_runs`` (cut back to the last whole line).
_BLOCK = 1 << 22


def _read_up_to(stream: BinaryIO, size: int) -> bytes:
    """``size`` bytes of ``stream``, fewer only at its end (a raw stream's
    ``read`` may return less than asked)."""
    parts: list[bytes] = []
    wanted = size
    while wanted > 0:
        data = stream.read(wanted)
        if not data:
            break
        parts.append(data)
        wanted -= len(data)
    return b"".join(parts)


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
                    f"{where}: a bare 64-hex hash may be sha256 or pdq; give {{field}} sha256 or {{field}} pdq",
                    field="signal",
                )
            raise InputFormatError(f"{where}: not a hash: {value!r:.70}")
        return checked_signal(signal, value, where)

    def read(self, stream: BinaryIO, options: ImportOptions) -> Iterator[ParsedEntry]:
        for item in self.read_runs(stream, options):
            if isinstance(item, BareHashes):
                yield from item.entries()
            else:
                yield item

    def read_runs(
        self, stream: BinaryIO, options: ImportOptions, block_size: int = _BLOCK
    ) -> Iterator[ParsedEntry | BareHashes]:
        """What ``read`` gives, except that a block of lines that each hold a
        bare hash and nothing else comes as one ``BareHashes``. Such a block
        is checked and lowercased by a few operations on its bytes instead of
        Python work per line: this is what makes a million-line list import
        in seconds. Any other block is read line by line as ever. A block
        with an error (a bad line, bytes that are not UTF-8, no line end)
        sends the rest of the file through the line reader from the file's
        start: which error that reader gives first depends on how far ahead
        it decodes, so it is left to find it. ``block_size``: bytes
        read at a time (small in tests, to cross many block boundaries)."""
        number = 1  # the line number of the next block's first line
        pending = b""  # the start of a line cut off by the last block
        while True:
            data = pending + _read_up_to(stream, block_size)
            at_end = len(data) < block_size + len(pending)
            if not data:
                return
            cut = len(data) if at_end else data.rfind(b"\n") + 1
            if cut == 0:  # no line end in a whole block: a line too long, let the line reader say so
                yield from self._rest_from_start(stream, options, number)
                return
            block, pending = data[:cut], data[cut:]
            try:
                items = self._block_items(block, options, number)
            except InputFormatError:
                items = None
            if items is None:
                yield from self._rest_from_start(stream, options, number)
                return
            yield from items
            if len(items) == 1 and isinstance(items[0], BareHashes):
                number += len(items[0].values)  # a line each
            else:
                number += block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n")
                if not block.endswith((b"\n", b"\r")):
                    number += 1  # the file's last line, without a line end
            if at_end:
                return

    def read_lines(self, stream: BinaryIO, options: ImportOptions) -> Iterator[ParsedEntry]:
        """The entries read one line at a time (what ``read_runs`` leaves
        the lines it cannot take in bulk to)."""
        return self._entries(text_lines(stream), options)

    def _block_items(self, block: bytes, options: ImportOptions, number: int) -> list[ParsedEntry | BareHashes] | None:
        """The entries of ``block`` (whole lines, the first numbered
        ``number``), or ``None`` when it is not UTF-8. ``InputFormatError``
        for a bad line: the caller lets the line reader find the error."""
        run = self._bare_run(block, options, number)
        if run is not None:
            return [run]
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            return None
        # Whole lines of valid UTF-8: read alone they split into the same
        # lines as within the file.
        return list(self._entries(text_lines(io.BytesIO(block), number), options))

    def _rest_from_start(self, stream: BinaryIO, options: ImportOptions, number: int) -> Iterator[ParsedEntry]:
        """The entries from line ``number`` on, read by the line reader from
        the start of the file (the lines before are decoded again, unused:
        a decoding error it meets there is the one to report)."""
        stream.seek(0)
        yield from self._entries((line for line in text_lines(stream) if line[0] >= number), options)

    def _bare_run(self, block: bytes, options: ImportOptions, number: int) -> BareHashes | None:
        """``block`` (whole lines, the first numbered ``number``) as one run
        of bare hashes when every line is one hash of the same length and
        nothing else, else ``None``."""
        first_end = block.find(b"\n")
        if first_end < 0:  # the file's only line left, without a line end
            first_end = len(block)
        crlf = block[first_end - 1 : first_end] == b"\r"
        length = first_end - crlf
        signal_type = self._bare_signal(options, length)
        if signal_type is None:
            return None
        newline = b"\r\n" if crlf else b"\n"
        if not block.endswith(newline):
            block += newline  # the file's last line, without its line end
        width = length + len(newline)
        count = len(block) // width
        # Only hex digits and line ends; a line end exactly after every
        # `length` digits, and no other: so every line is one hash.
        if count * width != len(block) or block.translate(None, _HEX_BYTES + newline):
            return None
        for offset, byte in enumerate(newline):
            mark = bytes([byte])
            if block[length + offset :: width] != mark * count or block.count(mark) != count:
                return None
        category = checked_category(options.scheme, options.category, f"line {number}")
        values = block.decode("ascii").lower().split(newline.decode())
        values.pop()  # the empty string after the last line end
        return BareHashes(signal_type.name, values, number, category)

    def _bare_signal(self, options: ImportOptions, length: int) -> SignalType | None:
        """The signal of a bare hash ``length`` hex digits long, or ``None``
        when such a line is not a hash by itself (the line reader says why)."""
        if options.signal is None:
            name = _BARE_SIGNALS.get(length)
            return get_signal(name) if name else None
        try:
            signal_type = get_signal(options.signal.strip())
        except UsageError:
            return None
        return signal_type if signal_type.hex_length == length else None

    def _entries(self, lines: Iterable[tuple[int, str]], options: ImportOptions) -> Iterator[ParsedEntry]:
        """The entries of numbered lines, one line at a time."""
        for number, line in lines:
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
                if signal != "vpdq":  # a line holds no frame hashes: videos travel as csv, vics or vpdq
                    out.write(f"{signal} {value}{suffix}\n")


TEXT = register(TextFormat())
