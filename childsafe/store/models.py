"""The database tables, as SQLAlchemy 2 declarative models.

Every schema change is an Alembic migration in ``migrations/versions``; a
test checks that the models and the migrations agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Base",
    "AuditEvent",
    "ApiKey",
    "Bank",
    "BankEntry",
    "EntryVariant",
    "EntryKeypoints",
    "EntryVideo",
    "EntrySignal",
    "BankImport",
    "BankChange",
    "Exchange",
    "WebhookEvent",
    "PreservedItem",
    "Referral",
    "RateLimit",
    "utc_now",
]


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored with its time zone and always read back as UTC-aware
    (SQLite keeps no zone; PostgreSQL does)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    """Base of every childsafe table."""

    type_annotation_map = {datetime: UtcDateTime}


class AuditEvent(Base):
    """Something done that a reviewer may need to account for later: a bank
    changed, an image revealed, a scan run. Append-only."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: The previous event's ``entry_hash`` and this one's: a chain, so that a
    #: changed or deleted event is detected (``childsafe audit verify``).
    prev_hash: Mapped[str] = mapped_column(String(64), server_default="")
    entry_hash: Mapped[str] = mapped_column(String(64), server_default="")


class Bank(Base):
    """A named hash list with its category scheme, kind and PDQ threshold."""

    __tablename__ = "banks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    scheme: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20))
    pdq_threshold: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Meta's vPDQ rule for this bank's videos (``None``: Meta's 80 and 0).
    vpdq_query_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    vpdq_compared_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    #: What a match in this bank does in the service: none, webhook or preserve.
    action: Mapped[str] = mapped_column(String(20), server_default="none", default="none")
    webhook_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    webhook_secret: Mapped[str | None] = mapped_column(String(200), nullable=True)
    preserve_days: Mapped[int | None] = mapped_column(Integer, nullable=True)


class BankEntry(Base):
    """One known item: one or more signals (e.g. MD5 + SHA-1 + PDQ of one
    image) with its category and the supplier's id for it.

    ``entry_key`` is a digest of the entry's sorted signals: the same hashes
    imported twice are the same entry (imports are idempotent).
    """

    __tablename__ = "bank_entries"
    __table_args__ = (UniqueConstraint("bank_id", "entry_key", name="uq_bank_entries_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"), index=True)
    entry_key: Mapped[str] = mapped_column(String(40))
    category: Mapped[str | None] = mapped_column(String(20), nullable=True)
    source_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    import_id: Mapped[int | None] = mapped_column(ForeignKey("bank_imports.id", ondelete="SET NULL"), nullable=True)


class EntrySignal(Base):
    """One hash of an entry. An entry may hold several values of one signal
    (the PDQ hashes of an original's edited variants).

    The primary key starts with the bank, so a bank's signals are one range
    (building its index, deleting it) and imports append. There is no index
    by value: matching uses the in-memory index (``childsafe.index``), and
    keeping a second B-tree on random hashes would halve import speed.
    On SQLite the table is WITHOUT ROWID: the primary key is the table.
    """

    __tablename__ = "entry_signals"
    __table_args__ = {"sqlite_with_rowid": False}

    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"), primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("bank_entries.id", ondelete="CASCADE"), primary_key=True)
    signal: Mapped[str] = mapped_column(String(20), primary_key=True)
    value: Mapped[str] = mapped_column(String(64), primary_key=True)


class EntryVariant(Base):
    """A PDQ value of an entry that was derived from the entry's own image
    (``bank add``: crops, small rotations), not supplied: it is matched like
    the others, reported as ``variant:NAME``, removed with the entry and never
    exported."""

    __tablename__ = "entry_variants"

    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"), primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("bank_entries.id", ondelete="CASCADE"), primary_key=True)
    value: Mapped[str] = mapped_column(String(64), primary_key=True)
    variant: Mapped[str] = mapped_column(String(40))


class EntryKeypoints(Base):
    """The keypoints of an entry's own image (``bank add``; see
    ``childsafe/signals/keypoints.py``): matched, reported as
    ``variant:keypoints``, removed with the entry and never exported."""

    __tablename__ = "entry_keypoints"

    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"), primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("bank_entries.id", ondelete="CASCADE"), primary_key=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    points: Mapped[bytes] = mapped_column(LargeBinary)
    descriptors: Mapped[bytes] = mapped_column(LargeBinary)


class EntryVideo(Base):
    """The vPDQ frame hashes of a video entry (its ``vpdq`` signal is their
    digest), as packed arrays (``FrameHashes.to_columns``): 32 bytes of PDQ,
    1 of quality, 4 of frame number and 8 of timestamp a frame. Matched by
    Meta's rule, exported with the entry, removed with it."""

    __tablename__ = "entry_videos"

    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"), primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("bank_entries.id", ondelete="CASCADE"), primary_key=True)
    frame_count: Mapped[int] = mapped_column(Integer)
    hashes: Mapped[bytes] = mapped_column(LargeBinary)
    qualities: Mapped[bytes] = mapped_column(LargeBinary)
    frame_numbers: Mapped[bytes] = mapped_column(LargeBinary)
    timestamps: Mapped[bytes] = mapped_column(LargeBinary)


class BankImport(Base):
    """Provenance of an import: which file (name and SHA-256), who, when, what changed."""

    __tablename__ = "bank_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"), index=True)
    file_name: Mapped[str] = mapped_column(String(500))
    file_sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(20))
    importer: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    added: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    #: The exchange whose fetch this was (``childsafe/exchanges``), else ``None``.
    #: Not a foreign key: the provenance outlives a removed exchange (which
    #: sets it back to ``None``, disowning its entries).
    exchange_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)


class Exchange(Base):
    """A hash-list source fetched into a bank on a schedule
    (``childsafe/exchanges``): its settings (never a secret: only where the
    credentials are), where the last fetch got to, and how it went.

    ``checkpoint`` is the source's own resume point (a URL list's ETag and
    lines done, NCMEC's time range and next page), committed with each
    page's changes. ``run_import_id`` is the ``BankImport`` of a fetch that
    has begun and not finished: a resumed fetch carries on under it.
    ``lease_owner``/``lease_until``: the process fetching it now, so that
    two service replicas never fetch one exchange at once."""

    __tablename__ = "exchanges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"), index=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    every_seconds: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    checkpoint: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    run_import_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    next_fetch_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_fetch_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    #: ``ok``, ``unchanged`` or ``failed``; ``last_error`` the one-line reason of a failure.
    last_outcome: Mapped[str | None] = mapped_column(String(20), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    last_counts: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class BankChange(Base):
    """The change log every process follows to keep its match index in step
    with the database, without rebuilding: ``seq`` only grows.

    ``op`` is ``add`` / ``remove`` (one entry, ``entry_id`` set), ``reload``
    (many entries changed at once: rebuild this bank), ``update`` (categories
    or source ids changed, not hashes), ``create`` or ``drop``.
    ``bank_id`` is not a foreign key: the log outlives a deleted bank.
    """

    __tablename__ = "bank_changes"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bank_id: Mapped[int] = mapped_column(Integer, index=True)
    op: Mapped[str] = mapped_column(String(10))
    entry_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class ApiKey(Base):
    """A key for the HTTP service. Only a SHA-256 of the key is kept: the key
    itself is shown once, when it is made."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class RateLimit(Base):
    """A token bucket shared by every service worker and machine: an API key's
    requests (``key:NAME``) or a client address's failed key attempts
    (``addr:ADDRESS``). Updated by one UPSERT per grant; see
    ``childsafe/service/limits.py``."""

    __tablename__ = "rate_limits"

    bucket: Mapped[str] = mapped_column(String(120), primary_key=True)
    #: Tokens left at ``at``; negative after a batch bigger than what was left (a debt).
    tokens: Mapped[float] = mapped_column(Float)
    #: Unix time of the last update (seconds): shared by machines, unlike a monotonic clock.
    at: Mapped[float] = mapped_column(Float)
    #: Whether the last request was let through (read back by the same UPSERT).
    granted: Mapped[int] = mapped_column(Integer)


class WebhookEvent(Base):
    """A match to tell a receiver about: the outbox. Written in the request
    that found the match, delivered (with retries) by the service; never
    deleted, so an event that could not be delivered stays, dead-lettered."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_due", "delivered_at", "dead_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bank: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str | None] = mapped_column(String(200), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    dead_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)


class PreservedItem(Base):
    """An upload kept because it matched a ``preserve`` bank: where the bytes
    are (by SHA-256 in the evidence store), why, for whom, until when."""

    __tablename__ = "preserved_items"
    __table_args__ = (Index("ix_preserved_items_sha256", "sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64))
    bank: Mapped[str] = mapped_column(String(100))
    entry_id: Mapped[str] = mapped_column(String(40))
    size: Mapped[int] = mapped_column(Integer)
    mime: Mapped[str] = mapped_column(String(100))
    key_name: Mapped[str] = mapped_column(String(100))
    preserved_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    purged_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Referral(Base):
    """A report of a preserved upload to NCMEC or the NCA
    (``childsafe/referrals``), and how far its sending got.

    ``state`` is one of ``draft``, ``submitted``, ``uploaded``, ``finished``,
    ``packaged`` (an NCA package written), ``retracted`` or ``failed``;
    ``step`` is the last step done (what a resumed send carries on from),
    so a failed referral still knows it (``finish_sent``: a ``/finish``
    whose answer was lost). ``report`` is the report's
    contents (``ReferralReport.to_dict``: hashes, EXIF summary, matched
    entries; never the file's bytes or a credential). ``remote_report_id`` is
    the id NCMEC returned, stored in the transaction that records the step,
    and ``remote_files`` its file ids with whether their details were sent.
    ``submit_sent_at``: a ``/submit`` went out and its answer is not stored
    yet; a send never repeats it by itself (see docs/referrals.md)."""

    __tablename__ = "referrals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    destination: Mapped[str] = mapped_column(String(20))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(20), index=True)
    step: Mapped[str] = mapped_column(String(20))
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    remote_report_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    remote_files: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    submit_sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class DeterEntry(Base):
    """One term or URL of an operator's prevention list (loaded at run time, under licence)."""

    __tablename__ = "deter_entries"
    __table_args__ = (UniqueConstraint("kind", "list_name", "lang", "value", name="uq_deter_entries"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(10))  # "term" or "url"
    list_name: Mapped[str] = mapped_column(String(100))
    lang: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(String(2000))


class DeterCount(Base):
    """How often something happened, per day, region, list and outcome: no
    text, address or identifier is ever stored."""

    __tablename__ = "deter_counts"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    region: Mapped[str] = mapped_column(String(10), primary_key=True)
    list_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(20), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class MatchCount(Base):
    """How many matches the service answered, per day, bank and category:
    what the dashboard shows. Nothing about the upload or the caller is kept."""

    __tablename__ = "match_counts"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # ISO date, UTC
    bank: Mapped[str] = mapped_column(String(100), primary_key=True)
    category: Mapped[str] = mapped_column(String(100), primary_key=True)  # "" for none
    count: Mapped[int] = mapped_column(Integer)


class CaseEvent(Base):
    """One event in a case's life (referral, opened, warrant, charged,
    closed): the figures a force publishes are counted from these. A case is
    named by the force's own reference; nothing about the person is kept."""

    __tablename__ = "case_events"

    case_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True, index=True)  # ISO date
    event: Mapped[str] = mapped_column(String(20), primary_key=True)
    area: Mapped[str] = mapped_column(String(100), primary_key=True)
