"""Groups of near-duplicates among a scan's unmatched pictures and videos, so
that an investigator grades each group once (issue 20; docs/review.md).

Two items are linked when they have

* the same SHA-1 (the same bytes),
* the same vPDQ digest (videos whose frame hashes are all the same), or
* PDQ hashes within ``distance`` bits (``REVIEW_GROUP_DISTANCE``, the match
  threshold, by default), both of quality ``PDQ_MIN_QUALITY`` or more: a flat
  or featureless picture's hash says little about it, so such a picture (or
  one without a PDQ hash) is linked by its SHA-1 only.

A group is a connected component of these links: links chain, so if A is near
B and B near C, A, B and C are one group even when A and C are further apart
than ``distance``. That is intended (a series of edits of one picture is one
group), and it is why a group can be wider than the distance.

Components are found with a union-find (a forest of parent pointers, each
pointing to a smaller item number) whose unions and finds are done on whole
arrays of links at a time. PDQ neighbours come from the project's exact
radius index (``PdqIndex``) of the distinct hashes, never a comparison of
every pair, searched a batch at a time; a batch's hashes are then dropped
from the index, as every link to them is made. 20,000 pictures of a case
group in a fraction of a second; if every one of them were near every other
(the index then finds all 200 million pairs), in about 25 s
(bench/review_speed.py, docs/benchmarks.md).

Deterministic: items are put in label order (then id) first, so the same
items give the same groups, ids and representatives in any input order.

``load_review_items`` streams the items to review out of a finished scan's
``report.json`` (docs/spec.md), never loading it whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import ijson
import numpy as np

from childsafe.errors import UsageError
from childsafe.index.pdq_index import PdqIndex, hex_to_words
from childsafe.signals.pdq import PDQ_MATCH_THRESHOLD, PDQ_MIN_QUALITY

__all__ = ["REVIEW_GROUP_DISTANCE", "ReviewGroup", "ReviewItem", "group_items", "load_review_items"]

#: PDQ hashes at most this many bits apart link two items (as a bank's match does).
REVIEW_GROUP_DISTANCE = PDQ_MATCH_THRESHOLD
#: PDQ hashes searched at once: bounds the memory of the neighbours found
#: when pictures crowd together (at worst 256 x the number of hashes).
QUERY_BATCH = 256
#: The media types a person reviews.
REVIEWED_MEDIA = ("image", "video")

_PDQ_HEX = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class ReviewItem:
    """One unmatched picture or video of a case, with what groups it."""

    id: str  # the item's id in the case (report.json items[].id)
    label: str  # its path as reports show it (the sort order)
    media_type: str  # "image" | "video" | "other"
    sha1: str | None
    pdq: str | None  # 64 hex, or None
    pdq_quality: int | None
    vpdq_digest: str | None = None  # a video's frame digest (report item "vpdq"["digest"]), if any
    md5: str | None = None  # its other digests: what a bank of graded items holds
    sha256: str | None = None

    def __post_init__(self) -> None:
        if self.pdq is not None and not _PDQ_HEX.fullmatch(self.pdq):
            raise ValueError(f"item {self.id}: a PDQ hash is 64 hexadecimal characters")

    def links_by_pdq(self) -> bool:
        """Whether its PDQ hash is good enough to link it to near pictures."""
        return self.pdq is not None and self.pdq_quality is not None and self.pdq_quality >= PDQ_MIN_QUALITY


@dataclass(frozen=True)
class ReviewGroup:
    """Items graded together: near-duplicates of each other (through links)."""

    id: str  # stable: the id of its first item in label order
    item_ids: list[str]  # every item of the group, in label order
    representative: str  # the item shown: the best PDQ quality, then the first in label order


def group_items(items: Iterable[ReviewItem], distance: int = REVIEW_GROUP_DISTANCE) -> list[ReviewGroup]:
    """Groups in label order of their first item; every item is in exactly one
    (an item linked to nothing is a group of its own). Links and their
    chaining: the module's docstring. ``distance``: 0-63 bits."""
    if not 0 <= distance <= 63:
        raise UsageError("{field} must be between 0 and 63 bits", field="distance")
    ordered = sorted(items, key=lambda item: (item.label, item.id))
    if len({item.id for item in ordered}) != len(ordered):
        raise ValueError("two review items have the same id")
    parent = np.arange(len(ordered), dtype=np.int64)
    for first, other in (_same_value_links(ordered, "sha1"), _same_value_links(ordered, "vpdq_digest")):
        _union(parent, first, other)
    _link_near_pdq(ordered, parent, distance)  # and every item's parent is now its group's root
    members: dict[int, list[int]] = {}
    for position, root in enumerate(parent.tolist()):  # in label order, so each group's first item comes first
        members.setdefault(root, []).append(position)
    groups = []
    for positions in members.values():  # dicts keep insertion order: groups in order of their first item
        best = max(positions, key=lambda p: (_quality(ordered[p]), -p))
        groups.append(
            ReviewGroup(
                id=ordered[positions[0]].id,
                item_ids=[ordered[p].id for p in positions],
                representative=ordered[best].id,
            )
        )
    return groups


def _quality(item: ReviewItem) -> int:
    return -1 if item.pdq_quality is None else item.pdq_quality


def _same_value_links(ordered: list[ReviewItem], field: str) -> tuple[np.ndarray, np.ndarray]:
    """Links from each item to the first item with the same ``field`` value (not None)."""
    first_of: dict[str, int] = {}
    links: list[tuple[int, int]] = []
    for position, item in enumerate(ordered):
        value = getattr(item, field)
        if value is not None:
            links.append((first_of.setdefault(value.lower(), position), position))
    return _arrays(links)


def _link_near_pdq(ordered: list[ReviewItem], parent: np.ndarray, distance: int) -> None:
    """Join the items whose PDQ hashes (good enough ones) are within ``distance``:
    equal hashes directly, and each distinct hash with its neighbours in an
    exact radius index of the distinct hashes."""
    first_of: dict[str, int] = {}  # a distinct hash -> the first item with it
    same: list[tuple[int, int]] = []
    for position, item in enumerate(ordered):
        if item.links_by_pdq():
            assert item.pdq is not None
            same.append((first_of.setdefault(item.pdq.lower(), position), position))
    _union(parent, *_arrays(same))
    if len(first_of) < 2:
        return
    owners = np.fromiter(first_of.values(), np.int64, len(first_of))  # distinct hash number -> item position
    words = hex_to_words(list(first_of))
    index = PdqIndex.build(words, np.arange(len(owners), dtype=np.int64))
    for start in range(0, len(owners), QUERY_BATCH):
        end = min(start + QUERY_BATCH, len(owners))
        rows, found, _ = index.search_many_ids(words[start:end], distance)
        rows = rows + start
        later = rows < found  # each pair once, never a hash with itself
        _union(parent, owners[rows[later]], owners[found[later]])
        # Every neighbour of these hashes is joined to them now: later queries need not find them.
        index.remove(list(range(start, end)))


def _arrays(links: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    pairs = np.array(links, dtype=np.int64).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def _compress(parent: np.ndarray) -> None:
    """Point every item straight at its tree's root (pointer doubling: each
    pass halves every path, so a path of n takes log2(n) passes)."""
    while True:
        grandparents = parent[parent]
        if np.array_equal(grandparents, parent):
            return
        parent[:] = grandparents


def _union(parent: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """Join the trees of ``a[k]`` and ``b[k]`` for every k: each pass hooks
    every root that a link still crosses onto the smallest root it is linked
    to (so parents stay smaller than their children: no cycles), until no
    link joins two trees. Each item is left pointing straight at its root."""
    while len(a):
        _compress(parent)
        roots_a, roots_b = parent[a], parent[b]
        apart = roots_a != roots_b
        high = np.maximum(roots_a[apart], roots_b[apart])
        low = np.minimum(roots_a[apart], roots_b[apart])
        np.minimum.at(parent, high, low)
        a, b = high, low


def load_review_items(case_out: Path) -> Iterator[ReviewItem]:
    """The pictures and videos of a scan's output folder ``case_out`` that
    matched nothing (damaged ones included, as the report's
    ``unmatched_images`` counts them), in the report's order (label order),
    read one by one from its ``report.json``. A missing or unreadable report
    is a ``UsageError`` (raised here for a missing one, while reading for a
    damaged one)."""
    report = Path(case_out) / "report.json"
    try:
        stream = report.open("rb")
    except OSError:
        raise UsageError(f"no report.json in {case_out}: is this a scan's output folder?") from None
    return _read_items(stream, case_out)


def _read_items(stream: BinaryIO, case_out: Path) -> Iterator[ReviewItem]:
    unreadable = f"report.json in {case_out} cannot be read"
    with stream:
        try:
            if not _has_items(stream):
                raise UsageError(f'{unreadable}: it has no "items" list; is this a scan\'s output folder?')
            stream.seek(0)
            for record in ijson.items(stream, "items.item", use_float=True):
                item = _review_item(record)
                if item is not None:
                    yield item
        except ijson.JSONError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else "invalid JSON"
            raise UsageError(f"{unreadable} ({reason}): scan the evidence again into a new folder") from None
        except UnicodeDecodeError:
            raise UsageError(f"{unreadable} (not UTF-8): scan the evidence again into a new folder") from None
        except OSError as exc:
            raise UsageError(f"{unreadable} ({exc.strerror or 'read error'})") from None


def _has_items(stream: BinaryIO) -> bool:
    """Whether the report has a top-level ``items`` list (read up to it only:
    the summary comes before the items)."""
    for prefix, event, value in ijson.parse(stream):
        if prefix == "" and event == "map_key" and value == "items":
            return True
        if prefix == "" and event == "start_array":
            return False
    return False


def _review_item(record: Any) -> ReviewItem | None:
    """The ReviewItem of one report item, or None if it is not to be reviewed."""
    if not isinstance(record, dict):
        raise UsageError("report.json has an item that is not an object: scan the evidence again into a new folder")
    if record.get("matches") or record.get("media_type") not in REVIEWED_MEDIA:
        return None
    if not isinstance(record.get("id"), str) or not isinstance(record.get("path"), str):
        raise UsageError(
            "report.json has an item without its id or path (written by an older childsafe?):"
            " scan the evidence again into a new folder"
        )
    vpdq = record.get("vpdq")
    frames = vpdq.get("frames") if isinstance(vpdq, dict) else None
    pdq = record.get("pdq")
    try:
        return ReviewItem(
            id=record["id"],
            label=record["path"],
            media_type=record["media_type"],
            sha1=record.get("sha1"),
            pdq=pdq,
            pdq_quality=record.get("pdq_quality"),
            # A video with no frame hashed has the digest of nothing: it says nothing about its content.
            vpdq_digest=vpdq.get("digest") if isinstance(vpdq, dict) and frames else None,
            md5=record.get("md5"),
            sha256=record.get("sha256"),
        )
    except ValueError:
        raise UsageError(
            f"report.json has a PDQ hash that is not 64 hexadecimal characters (item {record['id']})"
        ) from None
