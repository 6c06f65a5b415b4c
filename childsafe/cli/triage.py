"""Triage of seized media: ``childsafe scan``, ``demo`` and ``audit verify|list``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn

from childsafe.cli._common import JsonOption, WorkersOption, command_context, print_json, stderr, sub_app
from childsafe.errors import UsageError
from childsafe.parallel import default_workers

__all__ = ["audit_app", "demo_command", "scan_command"]

audit_app = sub_app("The audit log: who did what, chained so tampering shows.")


def demo_command(
    json_output: JsonOption = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="A new or empty folder for the demo case, or one an earlier demo made (default: CHILDSAFE_HOME/demo).",
        ),
    ] = None,
) -> None:
    """Build a small benign case and a demo bank, scan it, and say where the report is."""
    from childsafe.demo import run_demo

    with command_context() as context:
        result = run_demo(context.settings, out)
    if json_output:
        print_json(result.to_dict())
    else:
        print(result.describe())


def scan_command(
    evidence: Annotated[
        Path, typer.Argument(help="A folder, an archive, a disk image or a single file; never modified.")
    ],
    case: Annotated[str, typer.Option("--case", help="The case id, written into every report.")],
    out: Annotated[Path, typer.Option("--out", help="A new folder for the reports.")],
    workers: WorkersOption = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted scan in --out.")] = False,
    report_every: Annotated[
        float, typer.Option("--report-every", help="Seconds between rewrites of the incomplete reports while scanning.")
    ] = 60.0,
    verify_images: Annotated[
        bool,
        typer.Option(
            "--verify-images",
            help="Check the acquisition hashes stored in disk images (E01) by reading each image once more.",
        ),
    ] = False,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="A Dask scheduler's address (tcp://HOST:PORT): scan on its workers instead of --workers here.",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Scan seized media (archives and disk images included) and write the case reports."""
    from rich.progress import DownloadColumn, TimeRemainingColumn, TransferSpeedColumn

    from childsafe.triage import ScanProgress, ScanRequest, scan_evidence

    request = ScanRequest(
        evidence,
        case,
        out,
        workers or default_workers(),
        resume,
        tuple(sys.argv),
        report_every,
        verify_images,
        scheduler,
    )
    progress = Progress(
        TextColumn("scanning"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[files]} items, {task.fields[matches]} matched"),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    )
    with command_context() as context, progress:
        if workers is not None and scheduler is not None:  # else --workers would be ignored without a word
            raise UsageError(
                "--workers counts this machine's workers; a Dask cluster has its own: give one or the other"
            )
        task = progress.add_task("scan", total=None, files=0, matches=0)

        def show(state: ScanProgress) -> None:
            progress.update(
                task, completed=state.bytes, total=state.bytes_total or None, files=state.files, matches=state.matches
            )

        result = scan_evidence(request, context.settings, show)
    if json_output:
        print_json(result.to_dict())
        return
    summary = result.summary
    print(
        f"Case {case}: {summary.files} items ({summary.images} images, {summary.videos} videos),"
        f" {summary.errors} with errors"
    )
    print(
        f"  matched: {summary.matched_files} items, {summary.matched_unique} distinct;"
        f" images left for review: {summary.unmatched_images}"
    )
    for label, counts in summary.by_category.items():
        print(f"  category {label}: {counts.files} files, {counts.unique} unique")
    for label, counts in summary.videos_by_category.items():
        print(f"  of which videos, category {label}: {counts.files} files, {counts.unique} unique")
    for state, state_counts in (summary.by_state or {}).items():
        print(f"  {state} in disk images: {state_counts.files} items, {state_counts.matched} matched")
    print(f"Reports in {result.out}: " + ", ".join(result.outputs))


@audit_app.command("verify")
def audit_verify_command(
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", help="A scan's manifest.json: also check the log still holds its audit anchor."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Check the audit log's hash chain; exit 1 if an event was changed, added, moved or removed."""
    from childsafe.store import anchor_from_manifest, verify_audit_chain

    with command_context() as context:
        anchor = anchor_from_manifest(manifest) if manifest is not None else None
        report = verify_audit_chain(context.engine, anchor)
    if json_output:
        print_json(report.to_dict())
    elif report.intact:
        anchored = f"; holds the manifest's anchor (event {anchor.events})" if anchor else ""
        head = report.head.head if report.head else ""
        print(f"audit log intact: {report.events} events, each chained to the one before{anchored}; head {head}")
    elif report.first_broken is None:
        print(f"audit log BROKEN: {report.reason}")
    else:
        print(f"audit log BROKEN at event {report.first_broken}: {report.reason}")
    if not report.intact:
        raise typer.Exit(1)


@audit_app.command("list")
def audit_list_command(
    action: Annotated[str | None, typer.Option("--action", help="Only events of this action (e.g. scan).")] = None,
    json_output: JsonOption = False,
) -> None:
    """List audit events, oldest first (JSON Lines with --json)."""
    from childsafe.store import audit_events

    with command_context() as context:
        events = audit_events(context.engine, action)
    for event in events:
        record = {
            "id": event.id,
            "at": event.at.isoformat(),
            "actor": event.actor,
            "action": event.action,
            "detail": event.detail,
        }
        if json_output:
            print_json(record)
        else:
            print(f"{record['id']}\t{record['at']}\t{event.actor}\t{event.action}\t{json.dumps(event.detail)[:200]}")
