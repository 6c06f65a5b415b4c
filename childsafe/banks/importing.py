"""Import a hash-list file into a bank: atomic, idempotent, streamed.

The file is parsed record by record into a staging table (so a 10-million
line list never needs 10 million objects in memory), then merged into the
bank with a few set-based statements, all in one transaction: either the
whole file is imported or nothing changes. Entries are identified by their
signals (``entry_key``), so importing the same file again adds nothing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Engine, insert, select, text, update

from childsafe.banks.catalogue import audit_bank_created, create_in, entry_key, get_bank, log_change
from childsafe.banks.formats import (
    ImportOptions,
    ParsedEntry,
    detect_format,
    get_format,
)
from childsafe.errors import InputFormatError, UsageError
from childsafe.media.streams import DigestingReader
from childsafe.store import append_audit, os_user
from childsafe.store.models import Bank, BankImport, utc_now

__all__ = ["ImportResult", "import_bank_file", "import_bank_stream", "BULK_CHANGE_LIMIT"]

_BATCH = 20_000
#: Up to this many added or removed entries are logged one by one (indexes
#: apply them in place); more, and the log says "reload this bank".
BULK_CHANGE_LIMIT = 5_000


@dataclass
class ImportResult:
    """What ``bank import`` prints."""

    bank: str
    added: int
    updated: int
    removed: int
    rejected: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "bank": self.bank,
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "rejected": self.rejected,
        }


def _stage(connection: Connection, entries: Iterator[ParsedEntry], names: dict[str, str]) -> int:
    """Write parsed entries to the staging tables; returns how many had no usable signal."""
    rejected = 0
    rows: list[tuple[Any, ...]] = []
    signal_rows: list[tuple[str, str, str]] = []
    line = 0
    # Straight to the driver's executemany with tuples: SQLAlchemy's per-row
    # parameter processing would cost more than the inserts themselves.
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    insert_entry = f"INSERT INTO {names['entries']} VALUES ({', '.join([mark] * 6)})"
    insert_signal = f"INSERT INTO {names['signals']} VALUES ({mark}, {mark}, {mark})"

    def flush() -> None:
        if rows:
            connection.exec_driver_sql(insert_entry, rows)
            connection.exec_driver_sql(insert_signal, signal_rows)
            rows.clear()
            signal_rows.clear()

    for entry in entries:
        line += 1
        if not entry.signals:
            rejected += 1
            continue
        key = entry_key(entry.signals)
        rows.append((line, key, entry.where, entry.category, entry.source_id, entry.note))
        signal_rows.extend((key, s, v) for s, v in sorted(set(entry.signals)))
        if len(rows) >= _BATCH:
            flush()
    flush()
    return rejected


def _create_staging(connection: Connection) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    names = {"entries": f"stage_entries_{suffix}", "signals": f"stage_signals_{suffix}"}
    on_commit = " ON COMMIT DROP" if connection.dialect.name == "postgresql" else ""
    connection.execute(
        text(
            f"CREATE TEMPORARY TABLE {names['entries']} (line INTEGER PRIMARY KEY, entry_key VARCHAR(40), place VARCHAR(200),"
            f" category VARCHAR(20), source_id VARCHAR(200), note TEXT){on_commit}"
        )
    )
    connection.execute(
        text(
            f"CREATE TEMPORARY TABLE {names['signals']} (entry_key VARCHAR(40), signal VARCHAR(20), value VARCHAR(64)){on_commit}"
        )
    )
    return names


def _drop_staging(connection: Connection, names: dict[str, str]) -> None:
    if connection.dialect.name != "postgresql":
        for name in names.values():
            connection.execute(text(f"DROP TABLE IF EXISTS {name}"))


def _check_duplicates(connection: Connection, names: dict[str, str], where: str) -> None:
    connection.execute(text(f"CREATE INDEX ix_{names['entries']} ON {names['entries']} (entry_key)"))
    duplicate = connection.execute(
        text(
            f"SELECT entry_key, MIN(line) AS first, MAX(line) AS last FROM {names['entries']}"
            " GROUP BY entry_key HAVING COUNT(*) > 1 ORDER BY MAX(line) LIMIT 1"
        )
    ).first()
    if duplicate is not None:
        places: dict[int, str] = dict(
            connection.execute(
                text(f"SELECT line, place FROM {names['entries']} WHERE line IN (:a, :b)"),
                {"a": duplicate.first, "b": duplicate.last},
            ).all()
        )
        raise InputFormatError(
            f"{where}: {places[duplicate.last]}: duplicate of {places[duplicate.first]} (the same hashes); remove one"
        )


def _merge(
    connection: Connection, bank: Bank, names: dict[str, str], import_id: int, replace: bool
) -> tuple[int, int, int]:
    """Merge the staged entries into the bank; returns (added, updated, removed)."""
    params = {"bank": bank.id, "import": import_id, "now": utc_now()}
    stage, stage_signals = names["entries"], names["signals"]
    distinct = "IS DISTINCT FROM" if connection.dialect.name == "postgresql" else "IS NOT"
    updated = connection.execute(
        text(
            f"UPDATE bank_entries SET category = s.category, source_id = s.source_id, note = s.note"
            f" FROM {stage} s WHERE bank_entries.bank_id = :bank AND bank_entries.entry_key = s.entry_key"
            f" AND (bank_entries.category {distinct} s.category OR bank_entries.source_id {distinct} s.source_id"
            f" OR bank_entries.note {distinct} s.note)"
        ),
        params,
    ).rowcount
    removed_ids: list[int] = []
    if replace:
        removed_ids = list(
            connection.scalars(
                text(
                    f"SELECT id FROM bank_entries e WHERE e.bank_id = :bank"
                    f" AND NOT EXISTS (SELECT 1 FROM {stage} s WHERE s.entry_key = e.entry_key)"
                ),
                params,
            )
        )
        if removed_ids:
            doomed = (
                f"SELECT id FROM bank_entries e WHERE e.bank_id = :bank"
                f" AND NOT EXISTS (SELECT 1 FROM {stage} s WHERE s.entry_key = e.entry_key)"
            )
            connection.execute(
                text(f"DELETE FROM entry_signals WHERE bank_id = :bank AND entry_id IN ({doomed})"), params
            )
            connection.execute(text(f"DELETE FROM bank_entries WHERE id IN ({doomed})"), params)
    added = connection.execute(
        text(
            f"INSERT INTO bank_entries (bank_id, entry_key, category, source_id, note, added_at, import_id)"
            f" SELECT :bank, s.entry_key, s.category, s.source_id, s.note, :now, :import FROM {stage} s"
            f" WHERE NOT EXISTS (SELECT 1 FROM bank_entries e WHERE e.bank_id = :bank AND e.entry_key = s.entry_key)"
            f" ORDER BY s.line"
        ),
        params,
    ).rowcount
    if added:
        connection.execute(
            text(
                f"INSERT INTO entry_signals (bank_id, entry_id, signal, value)"
                f" SELECT :bank, e.id, ss.signal, ss.value FROM {stage_signals} ss"
                f" JOIN bank_entries e ON e.bank_id = :bank AND e.entry_key = ss.entry_key AND e.import_id = :import"
            ),
            params,
        )
    if updated:
        log_change(connection, bank.id, "update")  # categories changed: matchers refresh what they cached
    if added + len(removed_ids) > BULK_CHANGE_LIMIT:
        log_change(connection, bank.id, "reload")
    else:
        if removed_ids:
            log_change(connection, bank.id, "remove", removed_ids)
        if added:
            new_ids = list(
                connection.scalars(
                    text("SELECT id FROM bank_entries WHERE bank_id = :bank AND import_id = :import ORDER BY id"),
                    params,
                )
            )
            log_change(connection, bank.id, "add", new_ids)
    return added, updated, len(removed_ids)


def import_bank_file(
    engine: Engine,
    bank_name: str,
    path: str | os.PathLike[str],
    **options: Any,
) -> ImportResult:
    """Import the file at ``path`` into ``bank_name``; see ``import_bank_stream``."""
    file_path = Path(path)
    try:
        raw = open(file_path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise UsageError(f"cannot read {file_path}: {exc.strerror}") from exc
    with raw:
        return import_bank_stream(engine, bank_name, raw, file_path.name, **options)


def import_bank_stream(
    engine: Engine,
    bank_name: str,
    raw: IO[bytes],
    display: str,
    *,
    file_format: str = "auto",
    signal: str | None = None,
    category: str | None = None,
    vics_profile: str | None = None,
    replace: bool = False,
    create: dict[str, Any] | None = None,
    importer: str | None = None,
) -> ImportResult:
    """Import a hash list read from ``raw`` (seekable; ``display`` is its
    name for messages and provenance) into ``bank_name``, created if missing
    with the settings in ``create``. All of it or nothing: on a bad record
    ``InputFormatError`` names the file, the line or record and the reason,
    and the database is unchanged. ``importer`` (default: the OS user) is
    recorded with the import and is the actor of its audit events
    (``bank.create`` if the bank was made, then ``bank.import``)."""
    if vics_profile not in (None, "us", "uk"):
        raise UsageError(f"--vics-profile must be us or uk, got {vics_profile!r}")
    importer = importer or os_user()
    with engine.begin() as connection:
        existing = connection.execute(select(Bank.id).where(Bank.name == bank_name)).first()
        if existing is None:
            settings = create or {}
            bank = create_in(
                connection,
                bank_name,
                settings.get("scheme", "none"),
                settings.get("kind", "match"),
                settings.get("pdq_threshold"),
                audit=False,  # audited when the import is done: see audit_bank_created below
            )
        else:
            bank = get_bank(connection, bank_name)
        bank_format = detect_format(raw.read(4096)) if file_format == "auto" else get_format(file_format)
        raw.seek(0)
        options = ImportOptions(
            scheme=bank.scheme,
            signal=signal,
            category=category,
            vics_profile=vics_profile or ("uk" if bank.scheme == "uk" else "us"),
        )
        reader = DigestingReader(raw)
        import_id = connection.execute(
            insert(BankImport).values(
                bank_id=bank.id,
                file_name=display,
                file_sha256="",
                format=bank_format.name,
                importer=importer,
                at=utc_now(),
                added=0,
                updated=0,
                removed=0,
                rejected=0,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        names = _create_staging(connection)
        try:
            try:
                rejected = _stage(connection, bank_format.read(reader, options), names)  # type: ignore[arg-type]
            except InputFormatError as exc:
                raise InputFormatError(f"{display}: {exc}") from None
            _check_duplicates(connection, names, display)
            added, updated, removed = _merge(connection, bank, names, import_id, replace)
        finally:
            _drop_staging(connection, names)
        sha256 = reader.finish()["sha256"]
        connection.execute(
            update(BankImport)
            .where(BankImport.id == import_id)
            .values(file_sha256=sha256, added=added, updated=updated, removed=removed, rejected=rejected)
        )
        if existing is None:
            audit_bank_created(connection, bank, importer)
        detail = {
            "bank": bank_name, "file": display, "sha256": sha256, "format": bank_format.name, "replace": replace,
            "added": added, "updated": updated, "removed": removed, "rejected": rejected,
        }  # fmt: skip
        append_audit(connection, "bank.import", detail, importer)
    return ImportResult(bank_name, added, updated, removed, rejected)
