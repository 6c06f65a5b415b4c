"""Triage of seized media: ``scan_evidence`` walks the evidence, hashes and
matches every item (archive members included) in worker processes, saves
progress so a killed scan can resume, and writes the case reports.

Outputs are complete or absent: each is written to a temporary file and
renamed into place, ``manifest.json`` (the SHA-256 of every other output)
last, and the scan state is removed only then.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine

from childsafe import __version__
from childsafe.banks.catalogue import iter_bank_entries, read_banks
from childsafe.config import Settings
from childsafe.detect import digests_only, match_prepared, useful_steps
from childsafe.errors import UsageError
from childsafe.fileio import atomic_file
from childsafe.index import Match, Matcher, open_matcher
from childsafe.media.budgets import ScanBudgets
from childsafe.media.limits import MediaLimits
from childsafe.store import open_database, record_audit
from childsafe.supervised import SupervisedPool, TaskFailed
from childsafe.triage.case import CaseReport, schemes_of, summarise
from childsafe.triage.contact_sheets import contact_sheet_digests, sheet_jpeg, write_contact_sheet, write_sheet_jpeg
from childsafe.triage.names import display_name, item_id, raw_name
from childsafe.triage.reading import ScannedItem, image_shares, read_task, recorded_item
from childsafe.triage.records import BankSnapshot, CaseSummary
from childsafe.triage.reports import writers
from childsafe.triage.sources import Recorded, Task, source_for
from childsafe.triage.state import CASE_STORE, STATE_FOLDER, ScanState, TaskRows, task_rows

__all__ = ["ScanRequest", "ScanProgress", "ScanResult", "scan_evidence", "bank_snapshot"]

MANIFEST = "manifest.json"
#: Workers one piece of evidence may take down (each poison item costs one or two) before it is reported as failed.
MAX_ATTEMPTS = 12


@dataclass(frozen=True)
class ScanRequest:
    """What the investigator asked for."""

    evidence: Path
    case_id: str
    out: Path
    workers: int = 1
    resume: bool = False
    command: tuple[str, ...] = ()
    #: Seconds between rewrites of the incomplete reports while the scan runs.
    report_every: float = 60.0
    #: Check the acquisition hashes that disk images store (E01), reading each image once more.
    verify_images: bool = False
    #: A Dask scheduler's address (``tcp://HOST:PORT``): the work runs on its workers, not on ``workers`` here.
    scheduler: str | None = None


@dataclass
class ScanProgress:
    """Running totals, for a progress display."""

    files: int = 0
    bytes: int = 0
    matches: int = 0
    bytes_total: int = 0
    started: float = field(default_factory=time.monotonic)


@dataclass
class ScanResult:
    """Where the reports are, and the case summary."""

    out: Path
    summary: CaseSummary
    outputs: dict[str, str]
    #: Files on disk read by this run, and the pieces of evidence (files, and
    #: links or FIFOs recorded unread) a resumed run found already done.
    read_now: int = 0
    done_before: int = 0

    def reports_dict(self) -> dict[str, Any]:
        """Where the reports are and the summary, as JSON-ready fields (what
        ``childsafe demo --json`` shows of its scan)."""
        return {"out": str(self.out), "summary": self.summary.to_dict(), "outputs": self.outputs}

    def to_dict(self) -> dict[str, Any]:
        """The result as ``childsafe scan --json`` prints it."""
        return {**self.reports_dict(), "read_now": self.read_now, "done_before": self.done_before}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def bank_snapshot(engine: Engine) -> list[BankSnapshot]:
    """Every bank with a digest of its content (signals and categories of every
    entry), so a report says exactly which lists it was matched against."""
    snapshot = []
    with engine.connect() as connection:
        for bank in read_banks(connection):
            digest = hashlib.sha256()
            entries = 0
            for entry in iter_bank_entries(connection, bank.id):
                entries += 1
                signals = ",".join(f"{s}:{v}" for s, v in entry.signals)
                digest.update(f"{signals}|{entry.category or ''}\n".encode())
            snapshot.append(BankSnapshot(bank.name, bank.scheme, bank.kind, entries, digest.hexdigest()))
    return sorted(snapshot, key=lambda b: b.name)


# -- work done in each worker process ---------------------------------------
# A process pool runs _scan_task in other processes; each keeps its database
# connection, index and state file open between tasks in this one variable,
# set by _start_worker (the pool's initializer). It is never used elsewhere.
# On a Dask cluster (dask_worker.py) reading processes run return_task
# instead: they have no state file, and return what they found
# (ReturnedTask) for the scanning process to save.


@dataclass
class Reading:
    """What a worker reads and matches with, opened once a worker process:
    the banks' saved index (``Matcher``), the media limits and budgets."""

    matcher: Matcher
    limits: MediaLimits
    budgets: ScanBudgets
    verify_images: bool = False

    def close(self) -> None:
        self.matcher.close()
        self.matcher.engine.dispose()


def open_reading(settings: Settings, verify_images: bool = False) -> Reading:
    """Open the database and load the banks' saved index (``Matcher.ensure_saved`` made it)."""
    engine = open_database(settings.database_url)
    matcher = open_matcher(engine, settings)
    matcher.sync()
    return Reading(matcher, settings.limits, settings.budgets, verify_images)


def read_and_match(
    reading: Reading,
    task: Task,
    progress: Callable[[Hashable], None] = lambda position: None,
    poisoned: Mapping[Hashable, str] | None = None,
) -> list[tuple[ScannedItem, list[Match]]]:
    """Read, hash and match one piece of evidence: its items and their matches."""
    poisoned = {key: _explained(reason) for key, reason in (poisoned or {}).items()}
    steps = useful_steps(reading.matcher, reading.limits.query_variants)
    limits = replace(reading.limits, query_variants=steps)
    found = read_task(task, limits, reading.budgets, progress, poisoned, reading.verify_images)
    return [
        (scanned, match_prepared(reading.matcher, scanned.query or digests_only(scanned.hashes))) for scanned in found
    ]


@dataclass(frozen=True)
class ReturnedTask:
    """A task done by a worker that cannot write the scan's state (on another
    machine): its items as saved (``task_rows``), the contact sheets of its
    unmatched videos (item id, JPEG), and (items, bytes, matched items)."""

    rows: TaskRows
    sheets: list[tuple[str, bytes]]
    counts: tuple[int, int, int]


def returned_task(
    reading: Reading,
    task: Task,
    progress: Callable[[Hashable], None] = lambda position: None,
    poisoned: Mapping[Hashable, str] | None = None,
) -> ReturnedTask:
    """``read_and_match`` for a worker elsewhere: what the scanning process saves (``_save_returned``)."""
    items = read_and_match(reading, task, progress, poisoned)
    sheets = []
    for scanned, matches in items:
        jpeg = None if matches else sheet_jpeg(scanned.hashes)  # a known video's sheet, never
        if jpeg is not None:
            sheets.append((item_id(task.label, scanned.position), jpeg))
    counts = (len(items), _counted_bytes(task), sum(bool(matches) for _, matches in items))
    return ReturnedTask(task_rows(task.label, items, task.key), sheets, counts)


@dataclass
class _Worker:
    reading: Reading
    state: ScanState | None  # None: the process returns its tasks (return_task)


_worker: _Worker | None = None


def _start_worker(settings: Settings, out: Path | None, verify_images: bool = False) -> None:
    global _worker
    _worker = _Worker(open_reading(settings, verify_images), None if out is None else ScanState(out))


def _scan_task(
    task: Task, progress: Callable[[Hashable], None], poisoned: Mapping[Hashable, str]
) -> tuple[int, int, int]:
    """Read, hash and match one piece of evidence; save it with all its items.
    Returns (items, bytes of the evidence file, matched items)."""
    assert _worker is not None and _worker.state is not None, "worker not started"
    items = read_and_match(_worker.reading, task, progress, poisoned)
    for scanned, matches in items:
        if not matches:  # an unmatched video's sheet, for review; a known video's never
            write_contact_sheet(_worker.state.folder.parent, item_id(task.label, scanned.position), scanned.hashes)
    _worker.state.save_task(task.label, items, task.key)
    return len(items), _counted_bytes(task), sum(bool(matches) for _, matches in items)


def start_returning_worker(settings: Settings, verify_images: bool) -> None:
    """The initializer of a worker process that returns its tasks (``return_task``):
    a Dask worker's reading process (``childsafe/dask_worker.py``)."""
    _start_worker(settings, None, verify_images)


def return_task(task: Task, progress: Callable[[Hashable], None], poisoned: Mapping[Hashable, str]) -> ReturnedTask:
    """Read, hash and match one piece of evidence for a scanning process elsewhere (``returned_task``)."""
    assert _worker is not None, "worker not started"
    return returned_task(_worker.reading, task, progress, poisoned)


def _counted_bytes(task: Task) -> int:
    """The bytes of evidence a finished task adds to the scan's progress (a shared image's, once)."""
    return task.size if task.reads_file_itself else 0


def _explained(reason: str) -> str:
    """A poison reason from the supervisor, with the setting that governs it."""
    if reason.startswith("time limit"):
        return f"{reason} (raise CHILDSAFE_ITEM_SECONDS)"
    if reason.startswith("memory limit"):
        return f"{reason} (raise CHILDSAFE_WORKER_MEMORY_BYTES)"
    return reason


def _failed_task(task: Task, failed: TaskFailed) -> ScannedItem:
    reasons = "; ".join(_explained(reason) for reason in failed.reasons)
    label = task.label
    if task.share is not None:  # the image's own item belongs to its first share: another share is an item apart
        label = f"{label} [share {task.share.index + 1} of {task.share.count} of its files]"
    return recorded_item(
        Recorded(label, f"cannot be read: {reasons}", "application/octet-stream", task.size, task.modified)
    )


# -- the scan ----------------------------------------------------------------


def _prepare(request: ScanRequest, state_exists: bool) -> None:
    if not request.case_id.strip():
        raise UsageError("{field} must not be empty", field="case")
    if request.resume and not state_exists:
        raise UsageError(
            f"no interrupted scan to resume in {request.out}; run without {{field}} to start one", field="resume"
        )
    if not request.resume and request.out.exists() and any(request.out.iterdir()):
        raise UsageError(
            f"{request.out} is not empty: choose a new {{field}} folder (or resume an interrupted scan there)",
            field="out",
        )
    evidence = request.evidence.resolve()
    out = request.out.resolve()
    if out == evidence or evidence in out.parents:
        raise UsageError("{field} must be outside the evidence: evidence is never written to", field="out")
    if request.scheduler is not None:
        from childsafe.triage.dask_runner import check_address  # imports distributed: only when asked for

        check_address(request.scheduler)


def scan_evidence(
    request: ScanRequest, settings: Settings, on_progress: Callable[[ScanProgress], None] | None = None
) -> ScanResult:
    """Scan ``request.evidence`` and write the case reports to ``request.out``."""
    source = source_for(request.evidence)
    engine = open_database(settings.database_url)
    try:
        _prepare(request, (request.out / STATE_FOLDER / "state.sqlite").exists())
        # Build or refresh the saved index once, so workers only load it.
        matcher = open_matcher(engine, settings)
        try:
            matcher.ensure_saved()
        finally:
            matcher.close()
        workers = _pool(request, settings)
        # Local workers start up while the banks are summed and the evidence walked; a Dask
        # cluster is reached and its workers checked before anything is written.
        with workers:
            request.out.mkdir(parents=True, exist_ok=True)
            state = ScanState(request.out)
            banks = bank_snapshot(engine)
            _start_or_resume(request, state, banks, workers.size)
            progress = ScanProgress(bytes_total=_total_bytes(source.walk(request.evidence)))
            done = state.done_tasks()
            shares = int(state.meta().get("image_shares", 1))
            tasks = _tasks(source.walk(request.evidence), state, done, shares)
            read_now = 0
            partial_reports = _PartialReports(request, state, banks, request.report_every)
            partial_reports.due += request.report_every
            for task, outcome in workers.map(tasks):
                if isinstance(outcome, TaskFailed):
                    # Never dropped: the file is reported with why it could not be read.
                    failed = _failed_task(task, outcome)
                    state.save_task(failed.hashes.path, [(failed, [])], task.key)
                    outcome = (1, _counted_bytes(task), 0)
                elif isinstance(outcome, ReturnedTask):  # done on another machine: saved here
                    _save_returned(request.out, state, task, outcome)
                    outcome = outcome.counts
                items, size, matched = outcome
                progress.files += items
                progress.bytes += size
                progress.matches += matched
                read_now += 1
                partial_reports.maybe_write()
                if on_progress:
                    on_progress(progress)
        result = _finish(request, state, banks, engine)
        result.read_now, result.done_before = read_now, len(done)
        # The state becomes the case's item store: its reports are written again from it after review.
        state.keep_as(request.out / CASE_STORE)
        shutil.rmtree(request.out / STATE_FOLDER)
        return result
    finally:
        engine.dispose()


class _Pool(Protocol):
    """What a scan runs its tasks on: ``SupervisedPool`` here, ``DaskPool`` on a cluster."""

    @property
    def size(self) -> int: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def map(self, tasks: Iterable[Task]) -> Iterator[tuple[Task, Any]]: ...


def _pool(request: ScanRequest, settings: Settings) -> _Pool:
    """The workers of a scan: this machine's processes, or a Dask cluster's (``request.scheduler``)."""
    if request.scheduler is not None:
        from childsafe.triage.dask_runner import DaskPool  # imports distributed: only when asked for

        return DaskPool(request.scheduler, settings, request.evidence, request.verify_images)
    return SupervisedPool(
        _scan_task,
        request.workers,
        initializer=_start_worker,
        initargs=(settings, request.out, request.verify_images),
        item_seconds=settings.budgets.item_seconds,
        memory_bytes=settings.budgets.worker_memory_bytes,
        max_attempts=MAX_ATTEMPTS,
    )


def _save_returned(out: Path, state: ScanState, task: Task, returned: ReturnedTask) -> None:
    """Save a task a worker elsewhere returned: its contact sheets, then its items (which mark it done)."""
    for item, jpeg in returned.sheets:
        write_sheet_jpeg(out, item, jpeg)
    state.save_rows(task.key, returned.rows)


def _start_or_resume(request: ScanRequest, state: ScanState, banks: list[BankSnapshot], shares: int) -> None:
    """Record what this scan is of, or check that a resumed one is of the same evidence against the same banks."""
    evidence = str(request.evidence.resolve())
    if not request.resume:
        state.set_meta(
            {
                "case_id": request.case_id,
                "evidence": display_name(str(request.evidence)),
                "evidence_resolved": evidence,
                "banks": [bank.to_dict() for bank in banks],
                "started_at": _now(),
                "command": list(request.command),
                "verify_images": request.verify_images,
                # Fixed for the scan: a resumed scan shares its images as it began, whatever its workers.
                "image_shares": shares,
            }
        )
        return
    meta = state.meta()
    if (meta.get("case_id"), meta.get("evidence_resolved")) != (request.case_id, evidence):
        raise UsageError(
            f"the scan in {request.out} is of case {meta.get('case_id')!r}, evidence {meta.get('evidence')!r}:"
            " resume it with the same {field} and evidence",
            field="case",
        )
    if meta.get("verify_images", False) != request.verify_images:
        started = "with" if meta.get("verify_images") else "without"
        raise UsageError(
            f"the scan in {request.out} was started {started} {{field}}: resume it {started} it too",
            field="verify_images",
        )
    if meta.get("banks") != [bank.to_dict() for bank in banks]:
        raise UsageError(
            "the banks changed since this scan started; start it again in a new {field} folder", field="out"
        )


def _tasks(walk: Iterator[Task | Recorded], state: ScanState, done: set[bytes], shares: int) -> Iterator[Task]:
    """The pieces of evidence still to read, disk images in ``shares`` shares;
    items recorded without reading (links, FIFOs) are saved on the way, so the
    evidence is walked once here."""
    for item in walk:
        if isinstance(item, Task):
            yield from (share for share in image_shares(item, shares) if share.key not in done)
        elif raw_name(item.label) not in done:
            state.save_task(item.label, [(recorded_item(item), [])])


def _total_bytes(walk: Iterator[Task | Recorded]) -> int:
    return sum(item.size for item in walk if isinstance(item, Task))


def _write_output(folder: Path, name: str, write: Callable[[Any], None]) -> str:
    """Write one output through a temporary file renamed into place; returns its SHA-256."""
    with atomic_file(folder / name) as handle:
        write(handle)
    return hashlib.sha256((folder / name).read_bytes()).hexdigest()


def _case(request: ScanRequest, state: ScanState, banks: list[BankSnapshot], complete: bool) -> CaseReport:
    meta = state.meta()
    return CaseReport(
        state=state,
        case_id=request.case_id,
        tool={"name": "childsafe", "version": __version__},
        started_at=meta["started_at"],
        finished_at=_now() if complete else None,
        evidence=meta["evidence"],
        command=list(meta.get("command", request.command)),
        banks=banks,
        summary=summarise(state.items(), schemes_of(banks)),
        complete=complete,
    )


def _write_reports(out: Path, case: CaseReport) -> dict[str, str]:
    """Every report file in ``out``, each written whole and renamed into place; their SHA-256 by name."""
    return {writer.filename: _write_output(out, writer.filename, partial(writer.write, case)) for writer in writers()}


@dataclass
class _PartialReports:
    """Reports rewritten as the scan goes (marked incomplete), so a scan
    killed outright still leaves a usable report beside its resumable state.
    Rewritten every ``every`` seconds, and never more than a tenth of the
    time: writing a million-item report takes a while."""

    request: ScanRequest
    state: ScanState
    banks: list[BankSnapshot]
    every: float
    due: float = field(default_factory=time.monotonic)

    def maybe_write(self) -> None:
        now = time.monotonic()
        if now < self.due:
            return
        _write_reports(self.request.out, _case(self.request, self.state, self.banks, complete=False))
        spent = time.monotonic() - now
        self.due = time.monotonic() + max(self.every, 10 * spent)


def _finish(request: ScanRequest, state: ScanState, banks: list[BankSnapshot], engine: Engine) -> ScanResult:
    """The complete reports, then the audit event that records them, then the
    manifest, which anchors the audit log at that event: ``childsafe audit
    verify --manifest`` later proves no event up to it was removed or changed."""
    case = _case(request, state, banks, complete=True)
    outputs = _write_reports(request.out, case)
    sheets = contact_sheet_digests(request.out)
    anchor = record_audit(
        engine,
        "scan",
        {
            "case_id": case.case_id,
            "evidence": case.evidence,
            "out": display_name(str(request.out.resolve())),
            "banks": [{"name": b.name, "digest": b.digest} for b in banks],
            "files": outputs,
            "contact_sheets": len(sheets),
            "summary": case.summary.totals(),
        },
    )
    manifest = {
        "tool": case.tool,
        "case_id": case.case_id,
        "evidence": case.evidence,
        "command": case.command,
        "started_at": case.started_at,
        "finished_at": case.finished_at,
        "banks": [bank.to_dict() for bank in banks],
        "files": outputs,
        "audit": anchor.to_dict(),
    }
    images = state.images()
    if images:  # disk images read: format, segments, stored acquisition hashes and their verification
        manifest["images"] = images
    if sheets:  # unmatched videos' contact sheets
        manifest["contact_sheets"] = sheets
    outputs[MANIFEST] = _write_output(request.out, MANIFEST, lambda h: json.dump(manifest, h, indent=1))
    return ScanResult(request.out, case.summary, outputs)


def read_case_manifest(case_out: Path) -> dict[str, Any]:
    """A finished case's ``manifest.json``; ``UsageError`` for a folder without a readable one."""
    try:
        manifest: dict[str, Any] = json.loads((case_out / MANIFEST).read_text())
    except (OSError, ValueError):
        raise UsageError(f"no readable {MANIFEST} in {case_out}: is this a finished scan's output folder?") from None
    return manifest


def rewrite_case_reports(
    case_out: Path,
    grades: Mapping[str, Mapping[str, Any]],
    settings: Settings,
    actor: str | None = None,
    grade_scheme: str = "uk",
) -> ScanResult:
    """Write a finished case's reports again from its item store, with the
    investigators' ``grades`` (item id -> ``{"category", "reviewer", "at"}``,
    categories of ``grade_scheme``):
    each item's ``grade`` and ``summary.graded_by_category``. Then the
    manifest is written again with the new files' SHA-256, anchored by a
    ``review.reports`` audit event (as the scan's own anchors it)."""
    manifest = read_case_manifest(case_out)
    state = ScanState.of_case(case_out)
    engine = open_database(settings.database_url)
    try:
        meta = state.meta()
        banks = [BankSnapshot(**bank) for bank in meta["banks"]]
        case = CaseReport(
            state=state,
            case_id=meta["case_id"],
            tool=manifest["tool"],
            started_at=meta["started_at"],
            finished_at=manifest["finished_at"],
            evidence=meta["evidence"],
            command=list(meta["command"]),
            banks=banks,
            summary=summarise(state.items(), schemes_of(banks), grades),
            grades=grades,
            grade_scheme=grade_scheme,
        )
        outputs = _write_reports(case_out, case)
        detail = {
            "case_id": case.case_id,
            "out": display_name(str(case_out.resolve())),
            "files": outputs,
            "graded": len(grades),
            "graded_by_category": {label: c.to_dict() for label, c in case.summary.graded_by_category.items()},
        }
        anchor = record_audit(engine, "review.reports", detail, actor)
    finally:
        state.close()
        engine.dispose()
    manifest |= {"files": outputs, "audit": anchor.to_dict(), "reviewed_at": _now()}
    outputs[MANIFEST] = _write_output(case_out, MANIFEST, lambda h: json.dump(manifest, h, indent=1))
    return ScanResult(case_out, case.summary, outputs)
