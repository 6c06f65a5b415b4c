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
    ``webhook_allow_private`` (``CHILDSAFE_WEBHOOK_ALLOW_PRIVATE=1``, an admin
    setting) lets webhooks go to loopback, private and other non-public
    addresses, which are refused otherwise (server-side request forgery).
    """

    home: Path
    database_url: str
    limits: MediaLimits = field(default_factory=MediaLimits)
    budgets: ScanBudgets = field(default_factory=ScanBudgets)
    webhook_allow_private: bool = False
    #: ``CHILDSAFE_HELP_RESOURCES``: a JSON file of help services over the packaged ones.
    help_resources: Path | None = None
    #: ``CHILDSAFE_WARNING_TEXTS``: a folder of ``warning-<lang>.json`` texts over the packaged ones.
    warning_texts: Path | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Settings from ``CHILDSAFE_HOME``, ``CHILDSAFE_DATABASE_URL`` and the other ``CHILDSAFE_*`` variables."""
        env = os.environ if environ is None else environ
        home = Path(env.get("CHILDSAFE_HOME") or platformdirs.user_data_dir("childsafe"))
        url = env.get("CHILDSAFE_DATABASE_URL") or f"sqlite:///{home / 'childsafe.db'}"
        allow_private = env.get("CHILDSAFE_WEBHOOK_ALLOW_PRIVATE", "").strip().lower() in ("1", "yes", "true", "on")
        return cls(
            home=home, database_url=url, limits=MediaLimits.from_env(env), budgets=ScanBudgets.from_env(env),
            webhook_allow_private=allow_private, help_resources=_path(env.get("CHILDSAFE_HELP_RESOURCES")),
            warning_texts=_path(env.get("CHILDSAFE_WARNING_TEXTS")),
        )  # fmt: skip


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None
