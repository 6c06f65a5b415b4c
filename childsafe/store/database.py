"""Open the database, bringing its schema up to date on first use.

SQLite (a file in CHILDSAFE_HOME) by default; PostgreSQL when the URL says so.
Migrations run under a lock so that two processes starting at once (two
workers of the service, a scan and the CLI) never migrate twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from childsafe.errors import StorageError, UsageError

__all__ = ["open_database", "schema_revision", "head_revision", "upsert"]

_MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = zlib.crc32(b"childsafe-migrations")


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration this version of childsafe knows."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def schema_revision(engine: Engine) -> str | None:
    """The migration the database is at (``None`` for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (a running scan, the service) go on while one process
    # writes; the busy timeout makes writers wait for each other, not fail.
    # synchronous=NORMAL is safe with WAL (no corruption; at worst the last
    # commit is lost on power failure); a large page cache and in-memory temp
    # tables make million-entry imports several times faster.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA cache_size=-262144")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin
    # (see _sqlite_begin): the module's own lazy BEGIN breaks savepoints and
    # so the all-or-nothing imports.
    dbapi_connection.isolation_level = None


def _sqlite_begin(connection: Connection) -> None:
    # Writers that read before they write (the audit chain) ask for IMMEDIATE:
    # the write lock is taken at once, so two of them cannot interleave.
    immediate = connection.get_execution_options().get("sqlite_immediate", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _LOCK_ID})
            connection.commit()
            try:
                yield connection
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _LOCK_ID})
                connection.commit()
        elif engine.url.database and engine.url.database != ":memory:":
            with open(f"{engine.url.database}.migrate-lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                yield connection
        else:
            yield connection


def _migrate(engine: Engine) -> None:
    head = head_revision()
    if schema_revision(engine) == head:
        return
    with _migration_lock(engine) as connection:
        # Another process may have migrated while we waited for the lock.
        if MigrationContext.configure(connection).get_current_revision() != head:
            command.upgrade(_alembic_config(connection), "head")
            connection.commit()


def upsert(engine: Engine, table: Any) -> Any:
    """An INSERT for ``table`` that supports ``on_conflict_do_nothing`` /
    ``on_conflict_do_update`` on both databases childsafe runs on."""
    from sqlalchemy.dialects import postgresql, sqlite

    return (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(table)


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the database folder {folder}: {exc.strerror}") from exc


def open_database(url: str, *, migrate: bool = True) -> Engine:
    """An engine for ``url`` with the schema at the newest migration.

    Creates the SQLite file and its folder if missing. The caller owns the
    engine and should ``dispose()`` it when done. Raises ``UsageError``
    for a malformed URL and ``StorageError`` when the database cannot be
    reached or migrated.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise UsageError(f"CHILDSAFE_DATABASE_URL is not a database URL: {url!r:.100}") from exc
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise UsageError("CHILDSAFE_DATABASE_URL must be sqlite:///PATH or postgresql+psycopg://...")
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine: Engine | None = None
    try:
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                _make_folder(Path(parsed.database).parent)
            engine = create_engine(parsed)
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        else:
            engine = create_engine(parsed, pool_pre_ping=True)
        if migrate:
            _migrate(engine)
    except SQLAlchemyError as exc:
        if engine is not None:
            engine.dispose()
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise StorageError(f"cannot open database {parsed.render_as_string(hide_password=True)}: {reason}") from exc
    return engine
