"""Import a hash-list file into a bank: atomic, idempotent, streamed.

The file is parsed a batch at a time into a staging table (so a 10-million
line list never needs 10 million objects in memory), then merged into the
bank with a few set-based statements, all in one transaction: either the
whole file is imported or nothing changes. Entries are identified by their
signals (``entry_key``), so importing the same file again adds nothing.

On SQLite without ``--replace`` the entries are first written straight into
the bank, with no staging and no merge: most imports add new entries only,
and this halves their time. The first entry that is already in the bank (or
earlier in the file) rolls that attempt back to a savepoint, and the file is
read again through the staging path, which knows what to do with it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Engine, insert, select, text, update

from childsafe.banks.catalogue import (
    audit_bank_created,
    create_in,
    get_bank,
)
from childsafe.banks.changes import ChangeOp, log_change
from childsafe.banks.formats import (
    ImportOptions,
    detect_format,
    get_format,
)
from childsafe.banks.import_batches import Batch, batches, read_items
from childsafe.banks.import_direct import insert_direct
from childsafe.errors import InputFormatError, UsageError
from childsafe.media.streams import DigestingReader
from childsafe.store import append_audit, os_user
from childsafe.store.models import Bank, BankImport, utc_now

__all__ = ["ImportResult", "import_bank_file", "import_bank_stream", "BULK_CHANGE_LIMIT"]

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


def _stage(connection: Connection, file_batches: Iterable[Batch], names: dict[str, str]) -> int:
    """Write the entries to the staging tables; returns how many had no usable signal."""
    rejected = 0
    # Straight to the driver's executemany with tuples: SQLAlchemy's per-row
    # parameter processing would cost more than the inserts themselves.
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    insert_entry = f"INSERT INTO {names['entries']} VALUES ({', '.join([mark] * 6)})"
    insert_signal = f"INSERT INTO {names['signals']} VALUES ({mark}, {mark}, {mark})"
    for batch in file_batches:
        rejected += batch.rejected
        if not batch.keys:
            continue
        places = [where if isinstance(where, str) else f"line {where}" for where in batch.wheres]
        connection.exec_driver_sql(
            insert_entry,
            list(zip(batch.lines, batch.keys, places, batch.categories, batch.source_ids, batch.notes, strict=True)),
        )
        connection.exec_driver_sql(
            insert_signal,
            list(zip([batch.keys[e] for e in batch.signal_entries], batch.signals, batch.values, strict=True)),
        )
        if batch.videos:
            connection.exec_driver_sql(
                f"INSERT INTO {names['videos']} VALUES ({', '.join([mark] * 6)})",
                [(batch.keys[position], len(video), *video.to_columns().values()) for position, video in batch.videos],
            )
    return rejected


def _create_staging(connection: Connection) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    names = {
        "entries": f"stage_entries_{suffix}",
        "signals": f"stage_signals_{suffix}",
        "videos": f"stage_videos_{suffix}",
    }
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
    blob = "BYTEA" if connection.dialect.name == "postgresql" else "BLOB"
    connection.execute(
        text(
            f"CREATE TEMPORARY TABLE {names['videos']} (entry_key VARCHAR(40), frame_count INTEGER, hashes {blob},"
            f" qualities {blob}, frame_numbers {blob}, timestamps {blob}){on_commit}"
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
        connection.execute(
            text(
                f"INSERT INTO entry_videos (bank_id, entry_id, frame_count, hashes, qualities, frame_numbers, timestamps)"
                f" SELECT :bank, e.id, v.frame_count, v.hashes, v.qualities, v.frame_numbers, v.timestamps"
                f" FROM {names['videos']} v"
                f" JOIN bank_entries e ON e.bank_id = :bank AND e.entry_key = v.entry_key AND e.import_id = :import"
            ),
            params,
        )

    def new_ids() -> list[int]:
        return list(
            connection.scalars(
                text("SELECT id FROM bank_entries WHERE bank_id = :bank AND import_id = :import ORDER BY id"), params
            )
        )

    _log_changes(connection, bank, added, updated, removed_ids, new_ids)
    return added, updated, len(removed_ids)


def _log_changes(
    connection: Connection,
    bank: Bank,
    added: int,
    updated: int,
    removed_ids: list[int],
    new_ids: Callable[[], Sequence[int]],
) -> None:
    """Tell every matcher what the import changed (``new_ids`` is only
    called when the added entries are logged one by one)."""
    if updated:
        log_change(connection, bank.id, ChangeOp.UPDATE)  # categories changed: matchers refresh what they cached
    if added + len(removed_ids) > BULK_CHANGE_LIMIT:
        log_change(connection, bank.id, ChangeOp.RELOAD)
    else:
        if removed_ids:
            log_change(connection, bank.id, ChangeOp.REMOVE, removed_ids)
        if added:
            log_change(connection, bank.id, ChangeOp.ADD, new_ids())


@contextlib.contextmanager
def _import_connection(engine: Engine, replace: bool) -> Iterator[Connection]:
    """A connection for one import: on SQLite without ``--replace``, with
    foreign-key checks off until it is returned to the pool.

    Why that is safe: such an import deletes nothing and changes no key (so
    no cascade is skipped), and every row it writes refers only to rows that
    exist in its own transaction: the bank (read or made in it), its import
    row (made in it), and entries it wrote itself just before (the straight
    path counts them; the staged path joins to them). That transaction holds
    SQLite's only write lock from its first write, and SQLite refuses the
    write (a busy snapshot) if another writer changed anything after the
    transaction's first read, so no bank can be deleted under it. The checks
    it saves are an index lookup per reference: a fifth of the time spent
    writing a million entries' signals.

    SQLite ignores the setting inside a transaction, so it is set on the
    driver's connection before the transaction begins."""
    with engine.connect() as connection:
        if connection.dialect.name != "sqlite" or replace:
            yield connection
            return
        driver = connection.connection.driver_connection
        assert driver is not None
        driver.execute("PRAGMA foreign_keys=OFF")
        try:
            yield connection
        finally:
            try:
                driver.execute("PRAGMA foreign_keys=ON")
            except Exception:
                connection.invalidate()  # never back to the pool without its checks
                raise


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
        return import_bank_stream(engine, bank_name, raw, file_path.name, folder=file_path.parent, **options)


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
    folder: Path | None = None,
) -> ImportResult:
    """Import a hash list read from ``raw`` (seekable; ``display`` is its
    name for messages and provenance, ``folder`` where it is, for the files
    a CSV's ``vpdq`` column names) into ``bank_name``, created if missing
    with the settings in ``create``. All of it or nothing: on a bad record
    ``InputFormatError`` names the file, the line or record and the reason,
    and the database is unchanged. ``importer`` (default: the OS user) is
    recorded with the import and is the actor of its audit events
    (``bank.create`` if the bank was made, then ``bank.import``)."""
    if vics_profile not in (None, "us", "uk"):
        raise UsageError(f"{{field}} must be us or uk, got {vics_profile!r}", field="vics_profile")
    importer = importer or os_user()
    with _import_connection(engine, replace) as connection, connection.begin():
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
            file_name=display,
            folder=folder,
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
        direct = None
        if connection.dialect.name == "sqlite" and not replace:
            savepoint = connection.begin_nested()
            try:
                direct = insert_direct(
                    connection, bank, batches(read_items(bank_format, reader, options)), import_id, utc_now()
                )
            except InputFormatError as exc:
                raise InputFormatError(f"{display}: {exc}") from None
            if direct is None:
                savepoint.rollback()
            else:
                savepoint.commit()
        if direct is not None:
            added, rejected, ids = direct
            updated = removed = 0
            _log_changes(connection, bank, added, 0, [], lambda: ids)
        else:
            names = _create_staging(connection)
            try:
                try:
                    rejected = _stage(connection, batches(read_items(bank_format, reader, options)), names)
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
