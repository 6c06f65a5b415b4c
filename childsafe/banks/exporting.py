"""Export a bank to a file in any registered format."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from sqlalchemy import Engine

from childsafe.banks.catalogue import get_bank, iter_bank_entries
from childsafe.banks.formats import ExportEntry, get_format
from childsafe.fileio import atomic_file

__all__ = ["export_bank", "export_bank_file"]


def export_bank(engine: Engine, name: str, file_format: str, out: TextIO) -> int:
    """Write bank ``name`` to ``out`` in ``file_format``; returns the number of entries.
    Entries are streamed: memory stays small however large the bank."""
    bank_format = get_format(file_format)
    count = 0
    with engine.connect() as connection:
        bank = get_bank(connection, name)

        def counted() -> Iterator[ExportEntry]:
            nonlocal count
            for entry in iter_bank_entries(connection, bank.id):
                count += 1
                yield entry

        bank_format.write(counted(), out, bank.name, bank.scheme)
    return count


def export_bank_file(engine: Engine, name: str, file_format: str, path: Path) -> int:
    """:func:`export_bank` to the file ``path``, which is complete or absent,
    never half-written; returns the number of entries."""
    with atomic_file(path) as handle:
        return export_bank(engine, name, file_format, handle)
