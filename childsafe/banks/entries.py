"""Entries of a bank changed one by one: added (``bank add`` of files, the
API's entries) and removed. Each change is written with its change-log record
(``banks/changes.py``) and its audit event in one transaction, so every
process's index follows it and none is committed without its event.
(Whole files of entries: ``importing.py``.)"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from childsafe.banks.catalogue import entry_key, get_bank, with_video_signal
from childsafe.banks.changes import ChangeOp, log_change
from childsafe.banks.schemes import check_category
from childsafe.errors import NotFoundError, UsageError
from childsafe.media import MediaLimits
from childsafe.signals import PDQ_MIN_QUALITY, get_signal, hash_file
from childsafe.signals.keypoints import Keypoints
from childsafe.signals.vpdq import FrameHashes
from childsafe.store import append_audit
from childsafe.store.models import BankEntry, EntryKeypoints, EntrySignal, EntryVariant, EntryVideo, utc_now

__all__ = [
    "AddFilesResult",
    "AddedEntries",
    "NewEntry",
    "add_entries",
    "add_files_to_bank",
    "remove_entry",
]


@dataclass
class NewEntry:
    """An entry to add: its signals and what is known of it."""

    signals: list[tuple[str, str]]
    category: str | None = None
    source_id: str | None = None
    note: str | None = None
    #: Bank-side variants (name, PDQ hex): matched, never exported, not part of the entry's identity.
    variants: list[tuple[str, str]] = field(default_factory=list)
    #: Bank-side keypoints of the entry's own image (``bank add``): matched, never exported.
    keypoints: Keypoints | None = None
    #: A video's vPDQ frame hashes: the entry's ``vpdq`` signal is their digest.
    video: FrameHashes | None = None


@dataclass
class AddedEntries:
    """The id of each entry given (in order), and how many were new."""

    ids: list[int]
    added: int


def add_entries(engine: Engine, name: str, entries: Sequence[NewEntry], actor: str | None = None) -> AddedEntries:
    """Add entries one by one (API and ``bank add``), all or none.

    Values are checked and normalised; an entry whose signals are already in
    the bank is not added twice: its existing id is returned and it does not
    count as added.
    """
    with engine.begin() as connection:
        bank = get_bank(connection, name)
        ids: list[int] = []
        added: list[int] = []
        for entry in entries:
            signals = sorted({(get_signal(s).name, get_signal(s).parse(v)) for s, v in entry.signals})
            signals = with_video_signal(signals, entry.video)
            if not signals:
                raise UsageError("an entry needs at least one signal")
            category = check_category(bank.scheme, entry.category)
            key = entry_key(signals)
            existing = connection.scalar(
                select(BankEntry.id).where(BankEntry.bank_id == bank.id, BankEntry.entry_key == key)
            )
            if existing is not None:
                ids.append(existing)
                continue
            entry_id = connection.execute(
                insert(BankEntry).values(
                    bank_id=bank.id,
                    entry_key=key,
                    category=category,
                    source_id=entry.source_id,
                    note=entry.note,
                    added_at=utc_now(),
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            connection.execute(
                insert(EntrySignal),
                [{"entry_id": entry_id, "signal": s, "value": v, "bank_id": bank.id} for s, v in signals],
            )
            own = {v for s, v in signals if s == "pdq"}
            variants = {get_signal("pdq").parse(v): n for n, v in entry.variants if v not in own}
            if variants:
                connection.execute(
                    insert(EntrySignal),
                    [{"entry_id": entry_id, "signal": "pdq", "value": v, "bank_id": bank.id} for v in variants],
                )
                connection.execute(
                    insert(EntryVariant),
                    [{"entry_id": entry_id, "value": v, "variant": n, "bank_id": bank.id} for v, n in variants.items()],
                )
            if entry.keypoints is not None:
                connection.execute(
                    insert(EntryKeypoints).values(
                        bank_id=bank.id,
                        entry_id=entry_id,
                        width=entry.keypoints.width,
                        height=entry.keypoints.height,
                        points=entry.keypoints.points_bytes(),
                        descriptors=entry.keypoints.descriptors_bytes(),
                    )
                )
            if entry.video is not None:
                connection.execute(
                    insert(EntryVideo).values(
                        bank_id=bank.id, entry_id=entry_id, frame_count=len(entry.video), **entry.video.to_columns()
                    )
                )
            ids.append(entry_id)
            added.append(entry_id)
        if added:
            log_change(connection, bank.id, ChangeOp.ADD, added)
            # The first ids only: an audit event stays small whatever was added.
            detail = {"bank": bank.name, "added": len(added), "given": len(entries), "first_ids": added[:20]}
            append_audit(connection, "bank.add", detail, actor)
        return AddedEntries(ids, len(added))


def remove_entry(engine: Engine, name: str, entry_id: int, actor: str | None = None) -> None:
    """Remove one entry; ``UsageError`` if the bank has no such entry."""
    with engine.begin() as connection:
        bank = get_bank(connection, name)
        removed = connection.execute(
            delete(BankEntry).where(BankEntry.bank_id == bank.id, BankEntry.id == entry_id)
        ).rowcount
        if not removed:
            raise NotFoundError(f"bank {name!r} has no entry {entry_id}")
        # Its signals, variants and keypoints go with it: the schema's ON DELETE CASCADE.
        log_change(connection, bank.id, ChangeOp.REMOVE, [entry_id])
        append_audit(connection, "bank.remove", {"bank": bank.name, "entry_id": entry_id}, actor)


@dataclass
class AddFilesResult:
    """What ``bank add`` prints, plus a line for each file that was rejected or only partly hashed."""

    bank: str
    added: int
    rejected: int
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"bank": self.bank, "added": self.added, "rejected": self.rejected}


def add_files_to_bank(
    engine: Engine,
    name: str,
    paths: Sequence[str | os.PathLike[str]],
    limits: MediaLimits,
    category: str | None = None,
    source_id: str | None = None,
    actor: str | None = None,
) -> AddFilesResult:
    """Hash media files and add one entry for each: md5, sha1, sha256 and,
    when its quality is usable, PDQ; for a video, its vPDQ frame hashes. A
    file that cannot be read is rejected (and said why); the others are
    added in one transaction."""
    with engine.connect() as connection:
        bank = get_bank(connection, name)
    check_category(bank.scheme, category)
    entries: list[NewEntry] = []
    problems: list[str] = []
    rejected = 0
    for path in paths:
        hashes = hash_file(path, limits, bank_variants=limits.bank_variants, videos=True)
        if hashes.sha1 is None:
            problems.append(f"{hashes.path}: {hashes.error}")
            rejected += 1
            continue
        signals = [("md5", hashes.md5), ("sha1", hashes.sha1), ("sha256", hashes.sha256)]
        if hashes.pdq and (hashes.pdq_quality or 0) >= PDQ_MIN_QUALITY:
            signals.append(("pdq", hashes.pdq))
        video = None
        if hashes.video is not None and hashes.video.features:
            video = FrameHashes.of(hashes.video.features)
        if hashes.media_type == "video" and hashes.error:
            # Added by what could be made (its digests, the frames before the
            # damage), and said: a partial vPDQ hash matches less of the video.
            problems.append(f"{hashes.path}: added, but {hashes.error}")
        variants = sorted((hashes.pdq_variants or {}).items())
        entries.append(
            NewEntry(
                [(s, v) for s, v in signals if v],
                category,
                source_id or Path(path).name,
                None,
                variants,
                hashes.keypoints,
                video,
            )
        )
    added = add_entries(engine, name, entries, actor).added
    return AddFilesResult(name, added, rejected, problems)
