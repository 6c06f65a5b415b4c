"""Matching: hashes looked up in every bank's index, with the entries'
details. The indexes are kept in step with the database by the matcher's
``ChangeFollower`` (``index/follower.py``), so a change made by any process is
matched by the next query here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Engine, select

from childsafe.errors import InputFormatError, UnavailableError, UsageError
from childsafe.index.bank_index import BankIndex
from childsafe.index.follower import ChangeFollower, write_snapshot
from childsafe.index.pdq_index import hex_to_words
from childsafe.index.shards import FRONT, WHOLE, IndexPart, RemoteHit, RemoteShards
from childsafe.signals import PDQ_MIN_QUALITY, FileHashes, get_signal
from childsafe.signals.derived import DERIVED_MAX_DISTANCE
from childsafe.signals.keypoints import Keypoints
from childsafe.signals.pdq import pdq_distance
from childsafe.signals.vpdq import FrameHashes, VpdqComparison
from childsafe.store.models import BankEntry, EntrySignal, EntryVariant

if TYPE_CHECKING:
    from childsafe.config import Settings

__all__ = [
    "Match",
    "Matcher",
    "LaterSteps",
    "ShardHits",
    "index_root",
    "open_matcher",
    "KEYPOINTS_TRANSFORM",
    "FRAME_TRANSFORM",
]

#: Entry ids per statement when fetching their details: one statement for up
#: to this many (far below the bound values SQLite and PostgreSQL allow).
_DETAILS_CHUNK = 10_000

#: How a match found by the entry's bank-side keypoints is reported.
KEYPOINTS_TRANSFORM = "variant:keypoints"


#: How a match of one frame of a video to a known still picture is reported.
FRAME_TRANSFORM = "frame"
#: The fields only some matches have: a video's (``query_percent``,
#: ``compared_percent``, ``query_ranges``) and a frame's (``timestamp``).
_VIDEO_FIELDS = ("query_percent", "compared_percent", "query_ranges", "timestamp")


@dataclass(frozen=True)
class Match:
    """The docs/spec.md ``MATCH`` object. A video matched by its frames
    (signal ``vpdq``) adds the percentages of each video's frames that
    matched and the query's matching time ranges (seconds); a frame of a
    video matching a still picture (signal ``pdq``, transform ``frame``)
    adds the frame's ``timestamp``."""

    bank: str
    entry_id: str
    source_id: str | None
    signal: str
    value: str
    distance: int
    category: str | None
    transform: str
    query_percent: float | None = None
    compared_percent: float | None = None
    query_ranges: list[list[float]] | None = None
    timestamp: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, its keys in the order of the fields (those of
        videos and frames only when the match has them)."""
        # Not dataclasses.asdict: it deep-copies every field, on every answer.
        record = dict(self.__dict__)
        for name in _VIDEO_FIELDS:
            if record[name] is None:
                del record[name]
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Match:
        """The match ``to_dict`` gave, read back by field name. A record with
        a field this version does not know, or without one it needs, is
        refused (``InputFormatError``) rather than read wrong."""
        names = [field.name for field in fields(cls)]
        unknown = sorted(set(record) - set(names))
        missing = [name for name in names if name not in record and name not in _VIDEO_FIELDS]
        problems = []
        if unknown:
            problems.append(f"unknown field(s) {', '.join(unknown)}")
        if missing:
            problems.append(f"missing field(s) {', '.join(missing)}")
        if problems:
            raise InputFormatError(
                f"a saved match cannot be read ({'; '.join(problems)}): was it written by another version?"
            )
        return cls(**record)


class LaterSteps(Protocol):
    """The costlier query variants of one picture, for the cascade of
    ``Matcher.match_hashes``: made on demand from the picture
    (``signals.hashing.QueryPicture``), or made already, away from the index
    (``childsafe.detect.PreparedQuery``)."""

    def cut_hashes(self) -> dict[str, str]:
        """PDQ hashes of its cuts, by transform name."""
        ...

    def keypoints(self) -> Keypoints | None:
        """Its keypoints, or ``None`` when that mechanism is off."""
        ...

    def full_hashes(self) -> dict[str, str]:
        """Its full-resolution hash as ``{"full": hex}``, when it needs one."""
        ...


@dataclass
class _Hit:
    bank: BankIndex
    entry_id: int
    signal: str
    value: str
    distance: int
    transform: str
    video: VpdqComparison | None = None  # a video matched by its frames
    timestamp: float | None = None  # where in the query video the matching frame is


def _suppressed(hits: list[_Hit]) -> list[_Hit]:
    """``hits`` as a suppress bank leaves them. A hit in a suppress bank says
    the picture is a known false positive, so it removes the query's
    perceptual matches (PDQ, its turns, cuts, bank-side variants and
    keypoints); an exact digest match to an entry of another bank is a copy of
    that very file and stays. Suppress hits themselves are never reported."""
    if not any(hit.bank.kind == "suppress" for hit in hits):
        return hits
    return [hit for hit in hits if hit.bank.kind != "suppress" and get_signal(hit.signal).kind == "digest"]


def open_matcher(engine: Engine, settings: Settings, *, part_only: bool = False) -> Matcher:
    """The matcher the settings ask for: of the whole banks, of one shard
    (``CHILDSAFE_INDEX_SHARD``; only when ``part_only``: a shard cannot match
    on its own, it would miss every other shard's entries), or a front over
    the shards (``CHILDSAFE_INDEX_SHARDS``). Not yet synced."""
    root = index_root(settings.home, settings.database_url)
    if settings.index_shards:
        shards = RemoteShards(settings.index_shards, settings.index_shards_key or "")
        return Matcher(engine, root, settings.index_snapshot, shards=shards)
    if settings.index_shard is None:
        return Matcher(engine, root, settings.index_snapshot)
    if not part_only:
        raise UsageError(
            "CHILDSAFE_INDEX_SHARD is set: this process's index holds one shard of the banks and cannot match"
            " on its own; unset it, or set CHILDSAFE_INDEX_SHARDS to match through the shards"
        )
    number, count = settings.index_shard
    return Matcher(engine, root, settings.index_snapshot, IndexPart(number, count))


def index_root(home: Path, database_url: str) -> Path:
    """Where saved indexes of this database live: beside the database, one
    folder per database (so SQLite and PostgreSQL never share)."""
    tag = hashlib.sha1(database_url.encode()).hexdigest()[:12]
    return home / "index" / tag


@dataclass
class _EntryDetails:
    category: str | None
    source_id: str | None
    variants: dict[str, str]  # PDQ value -> bank-side variant name


@dataclass(frozen=True)
class ShardHits:
    """What a shard answers a front (``Matcher.shard_search``): each query's
    hits as ``[bank_id, entry_id, signal, value, distance]``, and the name and
    kind of each bank they are in."""

    results: list[list[list[int | str]]]
    banks: dict[str, list[str]]


class Matcher:
    """Match hashes against every bank. Call ``sync()`` before a query (or a
    batch of queries) to see the latest changes; it is cheap when nothing changed.

    ``part`` is what of the banks the index holds (``index/shards.py``): a
    shard's matcher answers a front's ``shard_search``; a front's (``shards``
    given) holds the keypoints and videos and sends the PDQ and digest
    searches to its shards."""

    def __init__(
        self,
        engine: Engine,
        root: Path,
        snapshot: Path | None = None,
        part: IndexPart = WHOLE,
        shards: RemoteShards | None = None,
    ) -> None:
        self.engine = engine
        self.root = root
        self.part = FRONT if shards is not None else part
        #: Where a front's hash searches go; ``None``: this process's own index.
        self.shards = shards
        self.banks: dict[int, BankIndex] = {}
        self._details: dict[int, _EntryDetails] = {}
        #: Keeps ``banks`` in step with the change log (``index/follower.py``);
        #: starts from ``snapshot``'s saved indexes where they are newer than ``root``'s.
        self.follower = ChangeFollower(engine, root, self.banks, snapshot, self.part)

    # -- keeping in step (the follower's work) -------------------------------

    def sync(self) -> None:
        """Apply every change logged since the last sync (``ChangeFollower.sync``)."""
        if self.follower.sync():
            self._details.clear()  # categories or source ids may have changed

    def behind(self) -> bool:
        """Whether ``sync`` may have changes to apply (``ChangeFollower.behind``)."""
        return self.follower.behind()

    def ensure_saved(self) -> None:
        """Make sure a new process only loads saved indexes (``ChangeFollower.ensure_saved``)."""
        self.follower.ensure_saved()

    def close(self) -> None:
        """Close what the follower keeps open, and the clients of the shards (the engine is the caller's)."""
        self.follower.close()
        if self.shards is not None:
            self.shards.close()

    def write_snapshot(self, folder: Path) -> dict[str, Any]:
        """Bring every bank's index up to date and save it into ``folder``, for
        replicas to start from (``CHILDSAFE_INDEX_SNAPSHOT``); what was written,
        as ``{"folder", "seq", "banks": [{"bank", "seq", "sizes"}...]}``."""
        self.sync()
        write_snapshot(self.banks, folder)
        banks = [
            {"bank": index.name, "seq": index.seq, "sizes": index.size()} for _, index in sorted(self.banks.items())
        ]
        return {"folder": str(folder), "seq": self.follower.seq, "banks": banks}

    # -- searching -------------------------------------------------------------

    def sizes(self) -> dict[str, dict[str, int]]:
        """For health checks: how many values of each signal are indexed, over all banks."""
        totals: dict[str, int] = {}
        for bank_index in self.banks.values():
            for signal, size in bank_index.size().items():
                totals[signal] = totals.get(signal, 0) + size
        return {signal: {"size": size} for signal, size in sorted(totals.items())}

    # -- matching ----------------------------------------------------------

    def _search(self, queries: Sequence[tuple[str, str, str]]) -> list[list[_Hit]]:
        """Hits for ``(signal, value, transform)`` queries, in every bank (in
        every shard of every bank, for a front)."""
        if self.shards is not None:
            return self._remote_search(queries, self.shards)
        results: list[list[_Hit]] = [[] for _ in queries]
        by_signal: dict[str, list[int]] = {}
        for number, (signal, _, _) in enumerate(queries):
            by_signal.setdefault(signal, []).append(number)
        for bank in self.banks.values():
            for signal, numbers in by_signal.items():
                if signal == "pdq":
                    words = hex_to_words([queries[n][1] for n in numbers])
                    for n, hits in zip(numbers, bank.pdq.search_many(words, bank.pdq_threshold), strict=True):
                        results[n].extend(
                            _Hit(bank, hit.entry_id, "pdq", hit.value, hit.distance, queries[n][2]) for hit in hits
                        )
                elif signal in bank.digests:
                    found = bank.digests[signal].lookup_many([queries[n][1] for n in numbers])
                    for ids, n in zip(found, numbers, strict=True):
                        results[n].extend(_Hit(bank, i, signal, queries[n][1], 0, queries[n][2]) for i in ids)
        return results

    def _remote_search(self, queries: Sequence[tuple[str, str, str]], shards: RemoteShards) -> list[list[_Hit]]:
        """``_search`` through the shards: their hits, merged, each in the
        front's own index of its bank (a bank the front has not seen yet, as
        the shard describes it). Needs no lock: it only reads ``banks``."""
        found = shards.search([(signal, value) for signal, value, _ in queries])
        unknown: dict[int, BankIndex] = {}

        def bank_of(hit: RemoteHit) -> BankIndex:
            bank = self.banks.get(hit.bank_id) or unknown.get(hit.bank_id)
            if bank is None:  # created a moment ago: the shard followed the change log before the front
                bank = unknown[hit.bank_id] = BankIndex(hit.bank_id, hit.bank_name, hit.bank_kind, "", 0, -1)
            return bank

        return [
            [_Hit(bank_of(hit), hit.entry_id, hit.signal, hit.value, hit.distance, transform) for hit in hits]
            for hits, (_, _, transform) in zip(found, queries, strict=True)
        ]

    def shard_search(self, queries: Sequence[tuple[str, str]]) -> ShardHits:
        """A shard's answer to a front: the raw hits of each ``(signal,
        value)`` query in this process's index, to be merged with the other
        shards' and ranked by the front (``_to_matches``)."""
        results: list[list[list[int | str]]] = []
        banks: dict[str, list[str]] = {}
        for hits in self._search([(signal, value, "none") for signal, value in queries]):
            results.append([[hit.bank.bank_id, hit.entry_id, hit.signal, hit.value, hit.distance] for hit in hits])
            for hit in hits:
                banks[str(hit.bank.bank_id)] = [hit.bank.name, hit.bank.kind]
        return ShardHits(results, banks)

    def _check_whole(self) -> None:
        """A shard's index holds some of the entries only: its "no match" would be a guess."""
        if self.part.count > 1:
            raise UnavailableError(
                f"this process holds index shard {self.part.label} only and does not match on its own:"
                " send matches to the front (CHILDSAFE_INDEX_SHARDS)"
            )

    def _to_matches(self, hits: list[_Hit], details: dict[int, _EntryDetails] | None = None) -> list[Match]:
        """Best hit per (bank, entry, signal), with category and source id
        from ``details`` (fetched from the database if not given); a hit in a
        suppress bank leaves only exact digest matches (``_suppressed``)."""
        hits = _suppressed(hits)
        # One match per entry and signal: a hash before keypoints, an entry's
        # own hash before its bank-side variants, then the closest, then the
        # query as it is before its turns and cuts.
        if details is None:
            details = self._entry_details({hit.entry_id for hit in hits})

        def rank(hit: _Hit) -> tuple[bool, bool, int, bool, float]:
            entry = details.get(hit.entry_id)
            is_variant = bool(entry and hit.signal == "pdq" and hit.value in entry.variants)
            return (
                hit.transform == KEYPOINTS_TRANSFORM,
                is_variant,
                hit.distance,
                hit.transform != "none",
                hit.timestamp or 0.0,  # of equally close frames, the first
            )

        best: dict[tuple[int, int, str], _Hit] = {}
        for hit in hits:
            key = (hit.bank.bank_id, hit.entry_id, hit.signal)
            if key not in best or rank(hit) < rank(best[key]):
                best[key] = hit
        matches = []
        for hit in best.values():
            entry = details.get(hit.entry_id, _EntryDetails(None, None, {}))
            transform = hit.transform
            variant = entry.variants.get(hit.value) if hit.signal == "pdq" else None
            if variant:  # the bank's own variant of the entry matched: say so, with the query's turn
                transform = variant if transform == "none" else f"{transform}+{variant}"
            video = hit.video
            matches.append(
                Match(
                    hit.bank.name,
                    str(hit.entry_id),
                    entry.source_id,
                    hit.signal,
                    hit.value,
                    hit.distance,
                    entry.category,
                    transform,
                    video.query_percent if video else None,
                    video.compared_percent if video else None,
                    [[start, end] for start, end in video.query_ranges] if video else None,
                    hit.timestamp,
                )
            )
        matches.sort(key=lambda m: (m.distance, m.bank, int(m.entry_id), m.signal))
        return matches

    def _entry_details(self, entry_ids: set[int]) -> dict[int, _EntryDetails]:
        # Cached until the next change to any bank: a service answering the
        # same matches again should not ask the database each time.
        # .get: on a front, lookups run without the index lock, and a sync may clear the cache meanwhile.
        details = {i: entry for i in entry_ids if (entry := self._details.get(i)) is not None}
        ids = sorted(entry_ids - details.keys())
        if not ids:  # all known: no connection (a hot match, or a query that found nothing)
            return details
        with self.engine.connect() as connection:
            for start in range(0, len(ids), _DETAILS_CHUNK):
                # One statement a chunk: each entry with its bank-side
                # variants, a row each (one row with none if it has none).
                rows = connection.execute(
                    select(
                        BankEntry.id, BankEntry.category, BankEntry.source_id, EntryVariant.value, EntryVariant.variant
                    )
                    .outerjoin(EntryVariant, EntryVariant.entry_id == BankEntry.id)
                    .where(BankEntry.id.in_(ids[start : start + _DETAILS_CHUNK]))
                )
                for entry_id, category, source_id, value, variant in rows:
                    entry = details.get(entry_id)
                    if entry is None:
                        entry = details[entry_id] = _EntryDetails(category, source_id, {})
                    if value is not None:
                        entry.variants[value] = variant
        if len(self._details) > 100_000:
            self._details.clear()
        self._details.update(details)
        return details

    def lookup(self, queries: Sequence[tuple[str, str]]) -> list[list[Match]]:
        """Matches for each ``(signal, value)`` query (values already parsed), in order."""
        self._check_whole()
        hits = self._search([(signal, value, "none") for signal, value in queries])
        # The details of every entry found, in one statement (per 10,000),
        # not in one per query.
        details = self._entry_details({hit.entry_id for found in hits for hit in found})
        return [self._to_matches(found, details) for found in hits]

    def match_hashes(self, hashes: FileHashes, later: LaterSteps | None = None) -> list[Match]:
        """Matches for one hashed file: its digests, and its PDQ hash with all
        8 rotations and flips when the hash is of usable quality; if those
        find nothing, the hashes of its cuts; if those find nothing either,
        its keypoints against the bank-side ones; and last, for a picture
        whose hash depends on the decode's scale, its full-resolution hash
        (docs/detection.md). The later steps come from ``later``, or else
        are made from ``hashes.picture`` as they are needed."""
        self._check_whole()
        queries: list[tuple[str, str, str]] = []
        for name in ("md5", "sha1", "sha256"):
            value = getattr(hashes, name)
            if value:
                queries.append((get_signal(name).name, value, "none"))
        if hashes.pdq_variants is not None:
            # Each variant passed its own quality check when it was made.
            queries.extend(("pdq", value, transform) for transform, value in hashes.pdq_variants.items())
        elif hashes.pdq and (hashes.pdq_quality or 0) >= PDQ_MIN_QUALITY:
            queries.append(("pdq", hashes.pdq, "none"))
        kept = [hit for found in self._search(queries) for hit in found]
        if hashes.video is not None and hashes.video.features:
            kept.extend(self._video_hits(FrameHashes.of(hashes.video.features)))
        # The costlier query variants only when the cheaper ones found nothing
        # (nor hit a suppress bank): cuts of the picture, then its keypoints,
        # those only if a bank has any.
        # Last, for the few pictures whose hash depends on the decode's scale,
        # a hash from a full-resolution decode (a decode costs most).
        steps = later if later is not None else hashes.picture
        if not kept and steps is not None:
            kept = self._derived_hits(steps.cut_hashes())
        if not kept and steps is not None and hashes.pdq and self.has_keypoints():
            keypoints = steps.keypoints()
            if keypoints is not None:
                kept = self._keypoint_hits(keypoints, hashes.pdq)
        if not kept and steps is not None:
            kept = self._derived_hits(steps.full_hashes())
        return self._to_matches(kept)

    def _video_hits(self, video: FrameHashes) -> list[_Hit]:
        """A video's hits: known videos its frames match by Meta's rule
        (signal ``vpdq``, the entry's digest as the value), and known still
        pictures that one of its usable frames matches (signal ``pdq``,
        transform ``frame``, the frame's time)."""
        usable = video.usable()
        hits: list[_Hit] = []
        for bank in self.banks.values():
            hits.extend(
                _Hit(bank, found.video_id, "vpdq", "", 0, "none", video=found.comparison)
                for found in bank.videos.search(
                    usable, query_percent=bank.vpdq_query_percent, compared_percent=bank.vpdq_compared_percent
                )
            )
        if hits:
            digests = self._video_digests({hit.entry_id for hit in hits})
            for hit in hits:
                hit.value = digests.get(hit.entry_id, "")
        frames = [bytes(row).hex() for row in usable.hashes]
        for moment, found in zip(
            usable.timestamps.tolist(), self._search([("pdq", value, FRAME_TRANSFORM) for value in frames]), strict=True
        ):
            for hit in found:
                hit.timestamp = round(moment, 3)
                hits.append(hit)
        return hits

    def _video_digests(self, entry_ids: set[int]) -> dict[int, str]:
        """The ``vpdq`` value (frame digest) of these video entries."""
        with self.engine.connect() as connection:
            return {
                entry_id: value
                for entry_id, value in connection.execute(
                    select(EntrySignal.entry_id, EntrySignal.value).where(
                        EntrySignal.entry_id.in_(sorted(entry_ids)), EntrySignal.signal == "vpdq"
                    )
                )
            }

    def has_keypoints(self) -> bool:
        """Whether any bank has bank-side keypoints (else a query's are not looked for)."""
        return any(len(bank.keypoints) for bank in self.banks.values())

    def _derived_hits(self, derived: dict[str, str]) -> list[_Hit]:
        """Hits for PDQ hashes derived from the query (by transform name),
        held to the stricter ``DERIVED_MAX_DISTANCE``."""
        queries = [("pdq", value, transform) for transform, value in derived.items()]
        return [hit for found in self._search(queries) for hit in found if hit.distance <= DERIVED_MAX_DISTANCE]

    def _keypoint_hits(self, keypoints: Keypoints, query_pdq: str) -> list[_Hit]:
        """Entries found by their bank-side keypoints. The hit carries the
        entry's own PDQ value, and as its distance the whole query's PDQ
        distance to it (for information: the keypoint check decided)."""
        found = [(bank, match) for bank in self.banks.values() for match in bank.keypoints.search(keypoints)]
        if not found:
            return []
        entry_ids = {match.entry_id for _, match in found}
        details = self._entry_details(entry_ids)
        own_pdq: dict[int, str] = {}
        with self.engine.connect() as connection:
            for entry_id, value in connection.execute(
                select(EntrySignal.entry_id, EntrySignal.value).where(
                    EntrySignal.entry_id.in_(sorted(entry_ids)), EntrySignal.signal == "pdq"
                )
            ):
                if entry_id in details and value not in details[entry_id].variants:
                    own_pdq[entry_id] = value
        hits = []
        for bank, match in found:
            own = own_pdq.get(match.entry_id)
            if own:
                hits.append(_Hit(bank, match.entry_id, "pdq", own, pdq_distance(query_pdq, own), KEYPOINTS_TRANSFORM))
        return hits
