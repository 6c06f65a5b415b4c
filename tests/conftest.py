"""Fixtures shared by both layers (tests/unit, tests/e2e): real databases
(a SQLite file and the local PostgreSQL), the public PDQ reference images, a
fresh CHILDSAFE_HOME for the command line. Helpers that tests import by name
are in support.py; each test is marked ``unit`` or ``e2e`` by its folder."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import REPO

REFERENCE = REPO.parent / "shared" / "datasets" / "pdq-reference"
POSTGRES_URL = os.environ.get("CHILDSAFE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The PDQ reference images (read in place, never copied)."""
    if not (REFERENCE / "expected.csv").is_file():
        pytest.skip(f"PDQ reference images not found at {REFERENCE}")
    return REFERENCE


def _postgres_available() -> str | None:
    try:
        engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure means: skip, with the reason
        return f"PostgreSQL at {POSTGRES_URL} does not answer: {str(exc).splitlines()[0]}"
    return None


@pytest.fixture(scope="session")
def postgres_problem() -> str | None:
    return _postgres_available()


@pytest.fixture
def postgres_url(postgres_problem: str | None) -> Iterator[str]:
    """A URL for a fresh, empty schema in the local PostgreSQL, dropped afterwards."""
    if postgres_problem:
        pytest.skip(postgres_problem)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage test runs on a real SQLite file and on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'childsafe.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    """The project database on ``database_url`` (SQLite and PostgreSQL), disposed after the test."""
    from childsafe.store import open_database

    engine = open_database(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a CLI run with its own CHILDSAFE_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHILDSAFE_")}
    env["CHILDSAFE_HOME"] = str(tmp_path / "home")
    return env


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the newest migration, made once a test process: migrating
    a new database takes most of a short command's time. (First use itself is
    tested in tests/unit/store/test_store.py.)"""
    from childsafe.store import open_database

    path = tmp_path_factory.mktemp("template") / "childsafe.db"
    open_database(f"sqlite:///{path}").dispose()
    return path


@pytest.fixture
def home(tmp_path: Path, migrated_database: Path) -> Path:
    """A fresh CHILDSAFE_HOME for ``support.invoke`` (the command line in-process),
    its database already at the newest migration."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(migrated_database, home / "childsafe.db")
    return home


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its layer, from its folder: ``-m unit`` or ``-m e2e`` picks one."""
    for item in items:
        parts = item.path.relative_to(REPO / "tests").parts
        if parts[0] in ("unit", "e2e"):
            item.add_marker(parts[0])
