"""The match index of one bank: a PDQ radius index, a digest index per
digest signal, the entries' keypoints and its videos' frame hashes, built
from the database, saved to disk, changed in place."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from childsafe.banks.catalogue import read_entry_videos
from childsafe.index.digest_index import DigestIndex
from childsafe.index.keypoint_index import KeypointIndex
from childsafe.index.pdq_index import PdqIndex, hex_to_words
from childsafe.index.shards import WHOLE, IndexPart
from childsafe.index.video_index import VideoIndex
from childsafe.signals import PDQ_MATCH_THRESHOLD, get_signal, signal_names
from childsafe.signals.keypoints import Keypoints
from childsafe.signals.vpdq import VPDQ_COMPARED_PERCENT, VPDQ_QUERY_PERCENT
from childsafe.store.models import Bank, EntryKeypoints, EntrySignal, EntryVideo

__all__ = ["BankIndex"]

_FETCH = 100_000


@dataclass
class BankIndex:
    """Everything matching needs of one bank, or of the part of it ``part``
    says (a shard's entries, a front's media). ``seq`` is the change-log
    position the index reflects."""

    bank_id: int
    name: str
    kind: str
    scheme: str
    pdq_threshold: int
    seq: int
    #: When the bank was created: tells a saved index of this bank from one of
    #: an earlier bank that had the same id in a since-recreated database.
    created_at: str = ""
    #: Meta's vPDQ rule for the bank's videos, its defaults filled in.
    vpdq_query_percent: float = VPDQ_QUERY_PERCENT
    vpdq_compared_percent: float = VPDQ_COMPARED_PERCENT
    pdq: PdqIndex = field(default_factory=PdqIndex)
    digests: dict[str, DigestIndex] = field(default_factory=dict)
    keypoints: KeypointIndex = field(default_factory=KeypointIndex)
    videos: VideoIndex = field(default_factory=VideoIndex)
    part: IndexPart = WHOLE

    @classmethod
    def empty(cls, bank: Bank, seq: int, part: IndexPart = WHOLE) -> BankIndex:
        """An index of a bank with no entries yet."""
        index = cls(bank.id, bank.name, bank.kind, bank.scheme, _threshold(bank), seq, bank.created_at.isoformat())
        index.part = part
        index.vpdq_query_percent, index.vpdq_compared_percent = _video_rule(bank)
        for name in _digest_signals():
            index.digests[name] = DigestIndex(get_signal(name).hex_length // 2)
        return index

    @classmethod
    def build(cls, connection: Connection, bank: Bank, seq: int, part: IndexPart = WHOLE) -> BankIndex:
        """Read every signal of ``bank`` (of ``part``) from the database and
        index it, a batch at a time (memory stays near the size of the index itself)."""
        index = cls.empty(bank, seq, part)
        if part.hashes:
            index._build_hashes(connection)
        if part.media:
            index.keypoints = KeypointIndex.build(_read_keypoints(connection, EntryKeypoints.bank_id == bank.id))
            index.videos = VideoIndex.build(read_entry_videos(connection, EntryVideo.bank_id == bank.id))
        return index

    def _build_hashes(self, connection: Connection) -> None:
        """Index the PDQ hashes and digests of the part's entries, read from the database."""
        pdq_words: list[np.ndarray] = []
        pdq_ids: list[np.ndarray] = []
        digest_values: dict[str, list[str]] = {name: [] for name in self.digests}
        digest_ids: dict[str, list[int]] = {name: [] for name in self.digests}
        wanted = select(EntrySignal.signal, EntrySignal.value, EntrySignal.entry_id).where(
            EntrySignal.bank_id == self.bank_id
        )
        if self.part.count > 1:  # a shard: the database sends only its entries
            wanted = wanted.where(EntrySignal.entry_id % self.part.count == self.part.number)
        result = connection.execution_options(stream_results=True, yield_per=_FETCH).execute(
            wanted.order_by(EntrySignal.bank_id, EntrySignal.entry_id)
        )
        for rows in result.partitions(_FETCH):
            values, ids = [], []
            for signal, value, entry_id in rows:
                if signal == "pdq":
                    values.append(value)
                    ids.append(entry_id)
                elif signal in digest_values:
                    digest_values[signal].append(value)
                    digest_ids[signal].append(entry_id)
            pdq_words.append(hex_to_words(values))
            pdq_ids.append(np.asarray(ids, np.int64))
        if pdq_words:
            self.pdq = PdqIndex.build(np.concatenate(pdq_words), np.concatenate(pdq_ids))
        for name in self.digests:
            self.digests[name] = DigestIndex.build(
                get_signal(name).hex_length // 2, digest_values[name], np.asarray(digest_ids[name], np.int64)
            )

    def size(self) -> dict[str, int]:
        """How many values of each signal are indexed."""
        sizes = {name: len(index) for name, index in self.digests.items()}
        sizes["pdq"] = len(self.pdq)
        sizes["vpdq"] = len(self.videos)
        return sizes

    def add_entries(self, connection: Connection, entry_ids: list[int]) -> None:
        """Index the signals of these entries (those of the index's part),
        read from the database. Any earlier copy is dropped first, so
        replaying the log is safe."""
        wanted = [entry_id for entry_id in entry_ids if self.part.holds(entry_id)]
        self.remove_entries(wanted)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            if self.part.hashes:
                self._add_hashes(connection, chunk)
            if self.part.media:
                self.keypoints.add(
                    _read_keypoints(
                        connection, (EntryKeypoints.bank_id == self.bank_id) & EntryKeypoints.entry_id.in_(chunk)
                    )
                )
                self.videos.add(
                    read_entry_videos(connection, (EntryVideo.bank_id == self.bank_id) & EntryVideo.entry_id.in_(chunk))
                )

    def _add_hashes(self, connection: Connection, chunk: list[int]) -> None:
        """Index the PDQ hashes and digests of these entries, read from the database."""
        rows = connection.execute(
            select(EntrySignal.signal, EntrySignal.value, EntrySignal.entry_id).where(
                EntrySignal.bank_id == self.bank_id, EntrySignal.entry_id.in_(chunk)
            )
        ).all()
        pdq = [(v, e) for s, v, e in rows if s == "pdq"]
        if pdq:
            self.pdq.add(hex_to_words([v for v, _ in pdq]), np.asarray([e for _, e in pdq], np.int64))
        for name, digest in self.digests.items():
            values = [(v, e) for s, v, e in rows if s == name]
            if values:
                digest.add([v for v, _ in values], [e for _, e in values])

    def remove_entries(self, entry_ids: Iterable[int]) -> None:
        """Forget every signal of these entries."""
        ids = [entry_id for entry_id in entry_ids if self.part.holds(entry_id)]
        self.pdq.remove(ids)
        for digest in self.digests.values():
            digest.remove(ids)
        self.keypoints.remove(ids)
        self.videos.remove(ids)

    # Saved indexes live in ROOT/bank-<id><part tag>@<seq>/ (the tag is empty
    # for a whole index: see IndexPart.tag); the newest complete one wins.

    def save(self, root: Path) -> Path:
        """Write the index under ``root`` atomically (a reader never sees half
        of it) and remove older saves of the same bank."""
        final = root / f"bank-{self.bank_id}{self.part.tag}@{self.seq}"
        if final.exists():
            return final
        partial = root / f".partial-{uuid.uuid4().hex}"
        self.pdq.save(partial)
        for name, digest in self.digests.items():
            digest.save(partial, name)
        self.keypoints.save(partial / "keypoints")
        self.videos.save(partial / "videos")
        meta = {
            "bank_id": self.bank_id,
            "name": self.name,
            "created_at": self.created_at,
            "seq": self.seq,
            "part": self.part.label,
            "sizes": self.size(),
        }
        (partial / "meta.json").write_text(json.dumps(meta))
        try:
            os.rename(partial, final)
        except OSError:  # another process saved the same state first
            shutil.rmtree(partial, ignore_errors=True)
        for older in root.glob(f"bank-{self.bank_id}{self.part.tag}@*"):
            if older != final and _saved_seq(older) < self.seq:
                shutil.rmtree(older, ignore_errors=True)
        return final

    @staticmethod
    def newest_saved_seq(root: Path, bank: Bank, part: IndexPart = WHOLE) -> int | None:
        """The change-log seq of the newest saved index of ``bank`` (of
        ``part``) that ``load_newest`` would take, without loading it; ``None`` when none."""
        saves = sorted(root.glob(f"bank-{bank.id}{part.tag}@*"), key=_saved_seq)
        if not saves:
            return None
        try:
            meta: dict[str, Any] = json.loads((saves[-1] / "meta.json").read_text())
            return int(meta["seq"]) if _is_save_of(meta, bank, part) else None
        except (OSError, ValueError, KeyError):
            return None

    @classmethod
    def load_newest(cls, root: Path, bank: Bank, part: IndexPart = WHOLE) -> BankIndex | None:
        """The newest saved index of ``bank`` (of ``part``) under ``root``, or ``None``."""
        saves = sorted(root.glob(f"bank-{bank.id}{part.tag}@*"), key=_saved_seq)
        if not saves:
            return None
        folder = saves[-1]
        try:
            meta: dict[str, Any] = json.loads((folder / "meta.json").read_text())
            if not _is_save_of(meta, bank, part):
                return None
            index = cls(
                bank.id, bank.name, bank.kind, bank.scheme, _threshold(bank), int(meta["seq"]), meta["created_at"]
            )
            index.part = part
            index.vpdq_query_percent, index.vpdq_compared_percent = _video_rule(bank)
            index.pdq = PdqIndex.load(folder)
            for name in _digest_signals():
                index.digests[name] = DigestIndex.load(folder, name, get_signal(name).hex_length // 2)
            index.keypoints = KeypointIndex.load(folder / "keypoints")
            index.videos = VideoIndex.load(folder / "videos")
        except (OSError, ValueError, KeyError):
            return None  # damaged or from another version: rebuild instead
        return index


def _read_keypoints(connection: Connection, where: Any) -> Iterator[tuple[int, Keypoints]]:
    """(entry id, keypoints) of the entries ``where`` selects, streamed."""
    result = connection.execution_options(stream_results=True, yield_per=1000).execute(
        select(
            EntryKeypoints.entry_id,
            EntryKeypoints.width,
            EntryKeypoints.height,
            EntryKeypoints.points,
            EntryKeypoints.descriptors,
        ).where(where)
    )
    for entry_id, width, height, points, descriptors in result:
        yield entry_id, Keypoints.from_bytes(width, height, points, descriptors)


def _is_save_of(meta: dict[str, Any], bank: Bank, part: IndexPart) -> bool:
    """Whether a save's ``meta.json`` is of this very bank and part. The part
    is checked besides the folder's name: a shard's save renamed or copied
    into place must not be taken for a whole index (it would match a part of
    the bank and say "no match" for the rest). Saves from before shards are whole."""
    return bool(meta["created_at"] == bank.created_at.isoformat() and meta.get("part", WHOLE.label) == part.label)


def _saved_seq(folder: Path) -> int:
    try:
        return int(folder.name.rsplit("@", 1)[1])
    except (IndexError, ValueError):
        return -1


def _threshold(bank: Bank) -> int:
    return bank.pdq_threshold if bank.pdq_threshold is not None else PDQ_MATCH_THRESHOLD


def _video_rule(bank: Bank) -> tuple[float, float]:
    query, compared = bank.vpdq_query_percent, bank.vpdq_compared_percent
    return (
        VPDQ_QUERY_PERCENT if query is None else query,
        VPDQ_COMPARED_PERCENT if compared is None else compared,
    )


def _digest_signals() -> list[str]:
    return [name for name in signal_names() if get_signal(name).kind == "digest"]
