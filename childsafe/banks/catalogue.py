"""Banks in the database: create, list, show, delete, set their actions, read their
entries (entries changed one by one: ``entries.py``).

Every change that matching must see is written to the change log
(``bank_changes``) in the same transaction, so every process's index can
follow it (``childsafe.index``); and every change is written to the audit
log in that transaction too (``bank.create``, ``bank.delete``, ``bank.add``,
``bank.remove``; imports: ``bank.import``), so the CLI and the service both
leave an event, and a change is never committed without its event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from childsafe.banks.changes import ChangeOp, log_change
from childsafe.banks.formats.base import ExportEntry
from childsafe.banks.schemes import check_scheme
from childsafe.errors import ConflictError, NotFoundError, UsageError
from childsafe.naming import checked_name
from childsafe.signals import PDQ_MATCH_THRESHOLD
from childsafe.signals.vpdq import FrameHashes
from childsafe.store import append_audit
from childsafe.store.models import (
    Bank,
    BankEntry,
    BankImport,
    EntryKeypoints,
    EntrySignal,
    EntryVariant,
    EntryVideo,
    WebhookEvent,
    utc_now,
)

__all__ = [
    "BankInfo",
    "BANK_KINDS",
    "BANK_ACTIONS",
    "BankAction",
    "entry_key",
    "single_signal_keys",
    "with_video_signal",
    "VideoRule",
    "read_entry_videos",
    "create_bank",
    "get_bank",
    "read_banks",
    "bank_info",
    "list_banks",
    "delete_bank",
    "set_webhook",
    "iter_bank_entries",
    "audit_bank_created",
]

BANK_KINDS = ("match", "suppress")
#: What a match does in the service (see childsafe/actions/on_match.py).
BANK_ACTIONS = ("none", "webhook", "preserve", "refer-ncmec", "refer-nca")
#: The actions that preserve the upload: ``refer-*`` also make a draft referral of it.
PRESERVING_ACTIONS = ("preserve", "refer-ncmec", "refer-nca")
DEFAULT_PRESERVE_DAYS = 90


@dataclass(frozen=True)
class VideoRule:
    """Meta's vPDQ match rule for a bank's videos: a known video matches when
    at least ``query_percent`` of the query's usable frames and at least
    ``compared_percent`` of its own have a match in the other. ``None`` is
    Meta's default (80 and 0: most of the query is the known video). A bank
    meant to find known videos inside compilations uses 0 and 80 (most of the
    known video is in the query, whatever else the query holds)."""

    query_percent: float | None = None
    compared_percent: float | None = None

    def checked(self) -> VideoRule:
        """This rule, or ``UsageError`` naming the setting out of 0-100."""
        for value, name in (
            (self.query_percent, "vpdq_query_percent"),
            (self.compared_percent, "vpdq_compared_percent"),
        ):
            if value is not None and not 0 <= value <= 100:
                raise UsageError(f"{{field}} must be a percentage (0-100), got {value}", field=name)
        return self


@dataclass
class BankInfo:
    """What ``bank show --json`` prints."""

    name: str
    scheme: str
    kind: str
    pdq_threshold: int | None
    entries: int = 0
    action: str = "none"
    signals: dict[str, int] = field(default_factory=dict)
    imports: list[dict[str, Any]] = field(default_factory=list)
    video_rule: VideoRule = field(default_factory=VideoRule)

    def to_dict(self) -> dict[str, Any]:
        """docs/spec.md field order (the video rule after it: an addition)."""
        return {
            "name": self.name,
            "scheme": self.scheme,
            "kind": self.kind,
            "pdq_threshold": self.pdq_threshold,
            "entries": self.entries,
            "signals": self.signals,
            "imports": self.imports,
            "action": self.action,
            "vpdq_query_percent": self.video_rule.query_percent,
            "vpdq_compared_percent": self.video_rule.compared_percent,
        }


def entry_key(signals: Iterable[tuple[str, str]]) -> str:
    """The identity of an entry: a digest of its sorted, distinct signals."""
    canonical = "\n".join(f"{s}:{v}" for s, v in sorted(set(signals)))
    return hashlib.sha1(canonical.encode()).hexdigest()


def with_video_signal(signals: list[tuple[str, str]], video: FrameHashes | None) -> list[tuple[str, str]]:
    """``signals`` with the ``vpdq`` signal of ``video`` (the digest of its
    frames), sorted. A ``vpdq`` value without the frames it stands for is
    refused: the digest alone cannot match a video (``UsageError``)."""
    kept = [(s, v) for s, v in signals if s != "vpdq"]
    if video is None:
        if len(kept) != len(signals):
            raise UsageError("a vpdq value needs the video's frame hashes: import its vPDQ file (format vpdq)")
        return signals
    if not len(video):
        raise UsageError("a video entry needs at least one frame hash")
    digest = video.digest()
    if any(v != digest for s, v in signals if s == "vpdq"):
        raise UsageError("the vpdq value given is not the digest of the video's frame hashes")
    return sorted([*kept, ("vpdq", digest)])


def single_signal_keys(signal: str, values: Iterable[str]) -> list[str]:
    """``entry_key([(signal, value)])`` for each of ``values``, the key of an
    entry with that one signal, made without the general case's sorting and
    joining (a million-line hash list makes a million keys)."""
    prefix = f"{signal}:"
    sha1 = hashlib.sha1
    return [sha1((prefix + value).encode()).hexdigest() for value in values]


def _check_name(name: str) -> str:
    return checked_name(name, "bank")


def _check_threshold(threshold: int | None) -> int | None:
    if threshold is not None and not 0 <= threshold <= 63:
        raise UsageError(
            f"{{field}} must be between 0 and 63 (default {PDQ_MATCH_THRESHOLD}), got {threshold}",
            field="pdq_threshold",
        )
    return threshold


def read_banks(connection: Connection, bank_id: int | None = None) -> list[Bank]:
    """Bank rows (detached objects), all or the one with ``bank_id``."""
    query = select(Bank).order_by(Bank.id)
    if bank_id is not None:
        query = query.where(Bank.id == bank_id)
    return [Bank(**row._mapping) for row in connection.execute(query)]


def get_bank(connection: Connection, name: str) -> Bank:
    """The bank row called ``name``; ``UsageError`` if there is none."""
    bank = connection.execute(select(Bank).where(Bank.name == name)).first()
    if bank is None:
        raise NotFoundError(f"no bank called {name!r}; `childsafe bank list` shows the banks")
    return Bank(**bank._mapping)


@dataclass(frozen=True)
class BankAction:
    """What a match in a bank does: ``none``; ``webhook`` (POST a signed event
    to ``webhook_url``); ``preserve`` (keep the upload for ``preserve_days``);
    ``refer-ncmec`` or ``refer-nca`` (preserve it and make a draft referral
    of it to NCMEC or the NCA, see ``childsafe/referrals``).

    A webhook needs a secret (it signs every event) and a public destination;
    ``allow_private`` is the admin setting ``CHILDSAFE_WEBHOOK_ALLOW_PRIVATE``
    (``Settings.webhook_allow_private``) that also allows loopback and
    private addresses."""

    action: str = "none"
    webhook_url: str | None = None
    webhook_secret: str | None = None
    preserve_days: int | None = None
    allow_private: bool = False

    def checked(self) -> BankAction:
        """This action, or ``UsageError`` saying what is missing or refused."""
        if self.action not in BANK_ACTIONS:
            raise UsageError(f"action must be one of {', '.join(BANK_ACTIONS)}, got {self.action!r}")
        if self.action == "webhook":
            # Imported here: only webhooks need the service's HTTP client.
            from childsafe.actions.webhooks import check_webhook_secret, check_webhook_url

            check_webhook_secret(self.webhook_secret)
            check_webhook_url(self.webhook_url, self.allow_private)
        if self.action in PRESERVING_ACTIONS:
            days = self.preserve_days if self.preserve_days is not None else DEFAULT_PRESERVE_DAYS
            if not 1 <= days <= 3650:
                raise UsageError("{field} must be between 1 and 3650", field="preserve_days")
            return BankAction(self.action, preserve_days=days)
        return self


def _action_detail(bank: Bank) -> dict[str, Any]:
    """What a bank's match action is, for the audit log: the webhook's host,
    never its full URL (it may carry a token) or its secret."""
    detail: dict[str, Any] = {"action": bank.action}
    if bank.action == "webhook" and bank.webhook_url:
        detail["webhook_host"] = urlsplit(bank.webhook_url).hostname
    if bank.action in PRESERVING_ACTIONS:
        detail["preserve_days"] = bank.preserve_days
    return detail


def audit_bank_created(connection: Connection, bank: Bank, actor: str | None) -> None:
    """The audit event of a new bank (its webhook, if any, is created with it)."""
    detail: dict[str, Any] = {
        "bank": bank.name,
        "scheme": bank.scheme,
        "kind": bank.kind,
        "pdq_threshold": bank.pdq_threshold,
    }
    if bank.vpdq_query_percent is not None or bank.vpdq_compared_percent is not None:
        detail |= {"vpdq_query_percent": bank.vpdq_query_percent, "vpdq_compared_percent": bank.vpdq_compared_percent}
    append_audit(connection, "bank.create", {**detail, **_action_detail(bank)}, actor)


def create_in(
    connection: Connection,
    name: str,
    scheme: str,
    kind: str,
    pdq_threshold: int | None,
    action: BankAction | None = None,
    actor: str | None = None,
    audit: bool = True,
    video_rule: VideoRule | None = None,
) -> Bank:
    """Create a bank inside an open transaction (used by import too, which
    passes ``audit=False`` and calls ``audit_bank_created`` when it is done,
    so that a long import does not hold the audit log's lock)."""
    action = (action or BankAction()).checked()
    _check_name(name)
    check_scheme(scheme)
    if kind not in BANK_KINDS:
        raise UsageError(f"bank kind must be one of {', '.join(BANK_KINDS)}, got {kind!r}")
    _check_threshold(pdq_threshold)
    rule = (video_rule or VideoRule()).checked()
    try:
        with connection.begin_nested():
            bank_id = connection.execute(
                insert(Bank).values(
                    name=name,
                    scheme=scheme,
                    kind=kind,
                    pdq_threshold=pdq_threshold,
                    vpdq_query_percent=rule.query_percent,
                    vpdq_compared_percent=rule.compared_percent,
                    created_at=utc_now(),
                    action=action.action,
                    webhook_url=action.webhook_url,
                    webhook_secret=action.webhook_secret,
                    preserve_days=action.preserve_days,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
    except IntegrityError:
        raise ConflictError(f"a bank called {name!r} already exists") from None
    log_change(connection, bank_id, ChangeOp.CREATE)
    bank = get_bank(connection, name)
    if audit:
        audit_bank_created(connection, bank, actor)
    return bank


def create_bank(
    engine: Engine,
    name: str,
    scheme: str = "none",
    kind: str = "match",
    pdq_threshold: int | None = None,
    action: BankAction | None = None,
    actor: str | None = None,
    video_rule: VideoRule | None = None,
) -> BankInfo:
    """Create an empty bank (audited as ``actor``, default the OS user)."""
    with engine.begin() as connection:
        create_in(connection, name, scheme, kind, pdq_threshold, action, actor, video_rule=video_rule)
    return bank_info(engine, name)


def bank_info(engine: Engine, name: str) -> BankInfo:
    """Counts and provenance of one bank."""
    with engine.connect() as connection:
        return _info(connection, get_bank(connection, name))


def _info(connection: Connection, bank: Bank) -> BankInfo:
    entries = connection.scalar(select(func.count()).select_from(BankEntry).where(BankEntry.bank_id == bank.id))
    signals = dict(
        connection.execute(
            select(EntrySignal.signal, func.count())
            .where(EntrySignal.bank_id == bank.id)
            .group_by(EntrySignal.signal)
            .order_by(EntrySignal.signal)
        ).all()
    )
    imports = [
        {
            "file": row.file_name,
            "sha256": row.file_sha256,
            "format": row.format,
            "importer": row.importer,
            "at": row.at.isoformat(),
            "added": row.added,
            "updated": row.updated,
            "removed": row.removed,
            "rejected": row.rejected,
        }
        for row in connection.execute(select(BankImport).where(BankImport.bank_id == bank.id).order_by(BankImport.id))
    ]
    rule = VideoRule(bank.vpdq_query_percent, bank.vpdq_compared_percent)
    return BankInfo(
        bank.name, bank.scheme, bank.kind, bank.pdq_threshold, entries or 0, bank.action, signals, imports, rule
    )


def list_banks(engine: Engine) -> list[BankInfo]:
    """Every bank, by name."""
    with engine.connect() as connection:
        banks = [Bank(**row._mapping) for row in connection.execute(select(Bank).order_by(Bank.name))]
        return [_info(connection, bank) for bank in banks]


def delete_bank(engine: Engine, name: str, actor: str | None = None) -> None:
    """Delete a bank and all its entries (and its webhook, if it has one)."""
    with engine.begin() as connection:
        bank = get_bank(connection, name)
        entries = connection.scalar(select(func.count()).select_from(BankEntry).where(BankEntry.bank_id == bank.id))
        # By bank, table by table: one indexed delete each, where the schema's
        # cascade would look up every entry's rows one entry at a time.
        connection.execute(delete(EntrySignal).where(EntrySignal.bank_id == bank.id))
        connection.execute(delete(EntryVariant).where(EntryVariant.bank_id == bank.id))
        connection.execute(delete(EntryKeypoints).where(EntryKeypoints.bank_id == bank.id))
        connection.execute(delete(EntryVideo).where(EntryVideo.bank_id == bank.id))
        connection.execute(delete(BankEntry).where(BankEntry.bank_id == bank.id))
        connection.execute(delete(BankImport).where(BankImport.bank_id == bank.id))
        connection.execute(delete(Bank).where(Bank.id == bank.id))
        log_change(connection, bank.id, ChangeOp.DROP)
        detail = {"bank": bank.name, "kind": bank.kind, "entries": entries or 0, **_action_detail(bank)}
        append_audit(connection, "bank.delete", detail, actor)


def set_webhook(
    engine: Engine,
    name: str,
    secret: str | None,
    url: str | None = None,
    allow_private: bool = False,
    actor: str | None = None,
) -> int:
    """Give bank ``name`` a webhook (its action becomes ``webhook``): a new
    secret, and a new URL or the one it has. Events still waiting in the
    outbox take the new URL and secret, so events held for want of a secret
    are sent. Audited as ``bank.webhook``; returns how many waiting events
    were changed."""
    with engine.begin() as connection:
        bank = get_bank(connection, name)
        action = BankAction("webhook", url or bank.webhook_url, secret, allow_private=allow_private).checked()
        connection.execute(
            update(Bank).where(Bank.id == bank.id)
            .values(action="webhook", webhook_url=action.webhook_url, webhook_secret=action.webhook_secret)
        )  # fmt: skip
        waiting = connection.execute(
            update(WebhookEvent)
            .where(WebhookEvent.bank == name, WebhookEvent.delivered_at.is_(None), WebhookEvent.dead_at.is_(None))
            .values(url=action.webhook_url, secret=action.webhook_secret, next_attempt_at=utc_now())
        ).rowcount
        detail = {"bank": name, "action": "webhook", "webhook_host": urlsplit(action.webhook_url or "").hostname}
        append_audit(connection, "bank.webhook", {**detail, "waiting_events": waiting}, actor)
    return waiting


def iter_bank_entries(connection: Connection, bank_id: int, batch: int = 10_000) -> Iterator[ExportEntry]:
    """Every entry of a bank with its signals, in id order, streamed in batches."""
    last = 0
    while True:
        rows = connection.execute(
            select(BankEntry.id, BankEntry.category, BankEntry.source_id, BankEntry.note)
            .where(BankEntry.bank_id == bank_id, BankEntry.id > last)
            .order_by(BankEntry.id)
            .limit(batch)
        ).all()
        if not rows:
            return
        first, last = rows[0].id, rows[-1].id
        signals: dict[int, list[tuple[str, str]]] = {}
        for entry_id, signal, value in connection.execute(
            select(EntrySignal.entry_id, EntrySignal.signal, EntrySignal.value)
            .where(EntrySignal.bank_id == bank_id, EntrySignal.entry_id.between(first, last))
            .order_by(EntrySignal.bank_id, EntrySignal.entry_id, EntrySignal.signal, EntrySignal.value)
        ):
            signals.setdefault(entry_id, []).append((signal, value))
        derived = {
            (entry_id, value)
            for entry_id, value in connection.execute(
                select(EntryVariant.entry_id, EntryVariant.value).where(
                    EntryVariant.bank_id == bank_id, EntryVariant.entry_id.between(first, last)
                )
            )
        }
        if derived:  # bank-side variants belong to the entry but are never exported
            signals = {i: [(s, v) for s, v in found if (i, v) not in derived] for i, found in signals.items()}
        videos = dict(
            read_entry_videos(connection, (EntryVideo.bank_id == bank_id) & EntryVideo.entry_id.between(first, last))
        )
        for row in rows:
            yield ExportEntry(
                row.id, signals.get(row.id, []), row.category, row.source_id, row.note, videos.get(row.id)
            )


def read_entry_videos(connection: Connection, where: Any) -> Iterator[tuple[int, FrameHashes]]:
    """(entry id, frame hashes) of the video entries ``where`` selects, streamed."""
    result = connection.execution_options(stream_results=True, yield_per=1000).execute(
        select(
            EntryVideo.entry_id,
            EntryVideo.hashes,
            EntryVideo.qualities,
            EntryVideo.frame_numbers,
            EntryVideo.timestamps,
        ).where(where)
    )
    for entry_id, *columns in result:
        yield entry_id, FrameHashes.from_columns(*columns)
