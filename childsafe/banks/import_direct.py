"""SQLite imports that add only new entries, written straight into the bank
with no staging and no merge (``importing.py`` falls back to staging at the
first entry already there). Hand-written SQL on the driver's cursor: this is
what makes a million-line import take seconds (docs/benchmarks.md)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from datetime import datetime
from itertools import repeat
from typing import Any

from sqlalchemy import Connection, text

from childsafe.banks.import_batches import Batch
from childsafe.store.models import Bank, BankEntry

__all__ = ["insert_direct"]


def _bound(connection: Connection, column: Any, value: Any) -> Any:
    """``value`` as the driver is given it for ``column`` (rows given straight
    to the driver miss SQLAlchemy's conversion of, say, a datetime)."""
    processor = column.type.dialect_impl(connection.dialect).bind_processor(connection.dialect)
    return processor(value) if processor else value


def insert_direct(
    connection: Connection, bank: Bank, batches: Iterable[Batch], import_id: int, now: datetime
) -> tuple[int, int, range] | None:
    """SQLite: write the entries straight into the bank, with ids in file
    order after the highest id (this transaction holds SQLite's only write
    lock, so no other writer takes ids meanwhile). Returns ``(added,
    rejected, new ids)``, or ``None`` as soon as an entry is already in the
    bank or earlier in the file: the caller rolls back and stages instead."""
    first_id = (connection.scalar(text("SELECT max(id) FROM bank_entries")) or 0) + 1
    added_at = _bound(connection, BankEntry.__table__.c.added_at, now)
    # The driver's own cursor, given the rows as an iterator: it makes each
    # row's tuple as it binds it, where a list would hold a million of them.
    driver = connection.connection.driver_connection
    assert driver is not None
    with contextlib.closing(driver.cursor()) as cursor:
        return _writebatches(cursor, bank, batches, import_id, added_at, first_id)


#: Values that may be written into a statement as they are: words of letters,
#: digits, spaces and ``._:+-`` (a category, a signal name, a timestamp).
_PLAIN = re.compile(r"[A-Za-z0-9 ._:+-]*")


def _literal(column: Any) -> str | None:
    """The SQL literal of ``column`` when it is one value for every row: a
    scalar, or a list of equal values, of a kind that can be written as it is
    (``None``, an int, a plain word); else ``None``: bind it row by row."""
    if isinstance(column, list):
        if not column or column.count(column[0]) != len(column):
            return None
        column = column[0]
    if column is None:
        return "NULL"
    if isinstance(column, int) and not isinstance(column, bool):
        return str(column)
    if isinstance(column, str) and _PLAIN.fullmatch(column):
        return f"'{column}'"
    return None


def _insert_rows(cursor: Any, count: int, head: str, columns: list[Any], tail: str = "") -> int:
    """``executemany`` of ``head VALUES (...) tail`` over ``count`` rows,
    ``columns`` a list or range of ``count`` values or one value for all;
    returns the rows written. A
    column of one value is written into the statement instead of bound on
    every row: binding five such values a row cost a sixth of the writing."""
    marks: list[str] = []
    bound: list[Any] = []
    for column in columns:
        literal = None if isinstance(column, range) else _literal(column)
        if literal is None:
            marks.append("?")
            bound.append(column if isinstance(column, (list, range)) else repeat(column))
        else:
            marks.append(literal)
    # Not strict: a repeated value is endless, the lists and ranges give the
    # length; with nothing left to bind (one row), ``count`` empty rows.
    rows = zip(*bound, strict=False) if bound else repeat((), count)
    cursor.executemany(f"{head} VALUES ({', '.join(marks)}){tail}", rows)
    return int(cursor.rowcount)


def _writebatches(
    cursor: Any, bank: Bank, batches: Iterable[Batch], import_id: int, added_at: Any, first_id: int
) -> tuple[int, int, range] | None:
    """``insert_direct``'s writing, on the driver's ``cursor``."""
    next_id = first_id
    rejected = 0
    for batch in batches:
        rejected += batch.rejected
        count = len(batch.keys)
        if not count:
            continue
        # ON CONFLICT DO NOTHING: an entry already there (by its key) is skipped
        # and not counted, so a count short of the batch means "not only new entries".
        written = _insert_rows(
            cursor,
            count,
            "INSERT INTO bank_entries (id, bank_id, entry_key, category, source_id, note, added_at, import_id)",
            [
                range(next_id, next_id + count),
                bank.id,
                batch.keys,
                batch.categories,
                batch.source_ids,
                batch.notes,
                added_at,
                import_id,
            ],
            " ON CONFLICT DO NOTHING",
        )
        if written != count:
            return None
        _insert_rows(
            cursor,
            len(batch.values),
            "INSERT INTO entry_signals (bank_id, entry_id, signal, value)",
            [bank.id, list(map(next_id.__add__, batch.signal_entries)), batch.signals, batch.values],
        )
        if batch.videos:
            cursor.executemany(
                "INSERT INTO entry_videos (bank_id, entry_id, frame_count, hashes, qualities, frame_numbers,"
                " timestamps) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (bank.id, next_id + position, len(video), *video.to_columns().values())
                    for position, video in batch.videos
                ],
            )
        next_id += count
    return next_id - first_id, rejected, range(first_id, next_id)
