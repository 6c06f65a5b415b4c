"""Settings read from the environment, passed explicitly (no global state)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from childsafe.media.budgets import ScanBudgets
from childsafe.media.limits import MediaLimits

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    """Where childsafe keeps its state and how it reads media.

    ``home`` holds the default SQLite database and, later, saved indexes.
    ``database_url`` is a SQLAlchemy URL; PostgreSQL is
    ``postgresql+psycopg://user@host/db``.
    """

    home: Path
    database_url: str
    limits: MediaLimits = field(default_factory=MediaLimits)
    budgets: ScanBudgets = field(default_factory=ScanBudgets)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Settings from ``CHILDSAFE_HOME`` and ``CHILDSAFE_DATABASE_URL``."""
        env = os.environ if environ is None else environ
        home = Path(env.get("CHILDSAFE_HOME") or platformdirs.user_data_dir("childsafe"))
        url = env.get("CHILDSAFE_DATABASE_URL") or f"sqlite:///{home / 'childsafe.db'}"
        return cls(home=home, database_url=url, limits=MediaLimits.from_env(env), budgets=ScanBudgets.from_env(env))
