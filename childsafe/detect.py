"""Detection: the one way a file is matched against the banks. The CLI's
``match``, the scan and the service's upload routes all go through here.

It comes in two halves, so that whatever touches pixels can run apart from
the index (the service runs the first half in worker processes with a time
and memory limit, and holds its index lock for the second only):

- ``prepare_query`` reads the file once: its digests, its PDQ hash turned 8
  ways (a video: its vPDQ frame hashes), and, made up front so that nothing touching pixels is left for
  later, the hashes of its cuts, its keypoints and its full-resolution hash,
  as far as the steps switched on (``QuerySteps``) and the picture call for
  them. The result, a ``PreparedQuery``, is plain data: it pickles.
- ``match_prepared`` looks it up: the cascade of ``Matcher.match_hashes``,
  the cheaper queries first and the costlier only when those found nothing.
  Index lookups only.

Making every step up front costs nothing extra for a picture that matches
nothing (most of them: the cascade makes every step for those anyway) and,
on the scan benchmark's camera photos, 10 ms more than the 39 ms of
hashing for one that matches on its own hash (docs/detection.md).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import IO

from childsafe.errors import MediaError, ResourceLimitError
from childsafe.index.matcher import Match, Matcher
from childsafe.media.limits import ALL_QUERY_STEPS, MediaLimits, QueryStep, QuerySteps, parse_query_steps
from childsafe.media.walk import FoundFile, walk_paths
from childsafe.parallel import ordered_map
from childsafe.signals.full_resolution import FullSource, full_resolution_hash
from childsafe.signals.hashing import FileHashes, found_unreadable, hash_stream, unreadable
from childsafe.signals.keypoints import Keypoints
from childsafe.signals.pdq import PDQ_MIN_QUALITY

__all__ = [
    "ALL_QUERY_STEPS",
    "PDQ_STEP",
    "PreparedQuery",
    "QueryStep",
    "QuerySteps",
    "digests_only",
    "match_prepared",
    "parse_query_steps",
    "prepare_paths",
    "prepare_query",
    "stopped_steps",
    "unanswered_steps",
    "useful_steps",
]

#: How ``incomplete`` names the file's own PDQ hash (before any variant).
PDQ_STEP = "pdq"


@dataclass(frozen=True)
class PreparedQuery:
    """Everything matching one file needs, made from its bytes.

    ``hashes`` is its ``hash`` object (with its dihedral variants in
    ``pdq_variants``; no picture). ``cuts``, ``query_keypoints`` and ``full``
    are the later steps of the cascade, made already. ``incomplete`` names
    the steps that could not run because a time or memory limit stopped them
    (``"pdq"`` first when the picture could not be decoded at all): the file
    may be a known picture that these steps would have found.
    """

    hashes: FileHashes
    cuts: dict[str, str] = field(default_factory=dict)
    query_keypoints: Keypoints | None = None
    full: dict[str, str] = field(default_factory=dict)
    incomplete: tuple[str, ...] = ()

    # The later steps, as ``Matcher.match_hashes`` asks for them (``LaterSteps``).
    def cut_hashes(self) -> dict[str, str]:
        """The PDQ hashes of its cuts, by transform name."""
        return self.cuts

    def keypoints(self) -> Keypoints | None:
        """Its keypoints (``None`` when not made)."""
        return self.query_keypoints

    def full_hashes(self) -> dict[str, str]:
        """Its full-resolution hash, when it needed one."""
        return self.full


def stopped_steps(steps: QuerySteps) -> tuple[str, ...]:
    """What ``incomplete`` says when none of the perceptual steps could run."""
    return (PDQ_STEP, *steps)


def prepare_query(
    source: bytes | IO[bytes], name: str, limits: MediaLimits, steps: QuerySteps | None = None, sheet_tiles: int = 0
) -> PreparedQuery:
    """Read ``source`` (bytes, or a stream read once) and make everything
    matching it needs; ``name`` is only the name to report. ``steps``
    (default: ``limits.query_variants``) are the query-side mechanisms to
    prepare. With ``sheet_tiles`` above 0, a video's contact sheet of that
    many tiles is made in the decoding that hashes it (``hashes.video.sheet``).
    Never raises for bad content (it is in ``hashes.error``); ``OSError`` from
    a stream propagates."""
    steps = limits.query_variants if steps is None else steps
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    hashes = hash_stream(
        stream, name, replace(limits, query_variants=steps), dihedral=True, videos=True, sheet_tiles=sheet_tiles
    )
    picture, hashes.picture = hashes.picture, None
    if hashes.unfinished:
        return PreparedQuery(hashes, incomplete=stopped_steps(steps))
    if picture is None:
        return PreparedQuery(hashes)
    keypoints = picture.keypoints() if hashes.pdq else None
    full, full_stopped = _full_hashes(picture.full_source)
    return PreparedQuery(hashes, picture.cut_hashes(), keypoints, full, (QueryStep.FULL,) if full_stopped else ())


def _full_hashes(source: FullSource | None) -> tuple[dict[str, str], bool]:
    """The full-resolution hash when the picture needs one, and whether a
    time or memory limit stopped it (a damaged second decode is no match:
    the small decode already stands)."""
    if source is None:
        return {}, False
    try:
        full = full_resolution_hash(source.data, source.mime, source.limits)
    except ResourceLimitError:
        return {}, True
    except MediaError:
        return {}, False
    return ({"full": full.hex} if full.quality >= PDQ_MIN_QUALITY else {}), False


def match_prepared(matcher: Matcher, prepared: PreparedQuery) -> list[Match]:
    """The matches of a prepared file, from the matcher's indexes alone (the
    caller holds whatever lock its matcher needs; call ``sync`` first)."""
    return matcher.match_hashes(prepared.hashes, prepared)


def unanswered_steps(prepared: PreparedQuery, matches: list[Match]) -> tuple[str, ...]:
    """The steps that did not run (``prepared.incomplete``) and could have
    changed ``matches``: all of them when nothing matched; when something did,
    only if the file's own PDQ hash was among them, since it is looked up with
    the digests and the later steps run only when those find nothing."""
    if matches and PDQ_STEP not in prepared.incomplete:
        return ()
    return prepared.incomplete


def digests_only(hashes: FileHashes) -> PreparedQuery:
    """A file known by its ``hash`` object alone (digests, perhaps a PDQ
    hash), with none of the later steps: an item a scan could not decode."""
    return PreparedQuery(hashes)


def useful_steps(matcher: Matcher, steps: QuerySteps) -> QuerySteps:
    """``steps`` without the ones that cannot find anything in the matcher's
    banks now: keypoints when no bank has bank-side keypoints."""
    if QueryStep.KEYPOINTS in steps and not matcher.has_keypoints():
        return tuple(step for step in steps if step != QueryStep.KEYPOINTS)
    return steps


def prepare_paths(
    paths: Iterable[str], limits: MediaLimits, workers: int, steps: QuerySteps | None = None
) -> Iterator[PreparedQuery]:
    """``prepare_query`` for every file under ``paths``, in walk order, in ``workers`` processes."""
    return ordered_map(_prepare_found_task, ((found, limits, steps) for found in walk_paths(paths)), workers)


def _prepare_found_task(args: tuple[FoundFile, MediaLimits, QuerySteps | None]) -> PreparedQuery:
    # Module-level so a process pool can pickle it.
    found, limits, steps = args
    recorded = found_unreadable(found)
    if recorded is not None:
        return PreparedQuery(recorded)
    try:
        with open(found.path, "rb", buffering=0) as stream:
            return prepare_query(stream, found.path, limits, steps)
    except OSError as exc:
        return PreparedQuery(unreadable(found.path, exc))
