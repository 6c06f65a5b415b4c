"""Fixtures of the exchange tests: a fresh database with a bank, quick HTTP settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from childsafe.banks import create_bank
from childsafe.config import HttpSettings


@pytest.fixture
def bank_engine(engine: sa.Engine) -> Iterator[sa.Engine]:
    """The test database with an empty bank ``shared`` (scheme ncmec)."""
    create_bank(engine, "shared", "ncmec")
    yield engine


@pytest.fixture
def http() -> HttpSettings:
    """Short timeouts and waits: a failing server is found out in a second or two."""
    return HttpSettings(connect_timeout=2, read_timeout=1.0, request_seconds=5, retries=2, backoff_seconds=0.01)
