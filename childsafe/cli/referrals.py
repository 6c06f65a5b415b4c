"""Referrals: ``childsafe report referral|referral-send|referral-retract|referrals``
(on the ``report`` group, beside the printable reports)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from childsafe.cli._common import JsonOption, command_context, print_json, stderr
from childsafe.errors import UsageError

__all__ = ["referral_command", "referral_retract_command", "referral_send_command", "referrals_command"]

#: The library's field names as this command's options.
OPTIONS = {
    "destination": "--to",
    "preserved": "--preserved",
    "uploader_ids": "--uploader-id",
    "uploader_ip": "--uploader-ip",
    "incident_time": "--incident-time",
    "out": "--out",
    "state": "--state",
}
IdArgument = Annotated[int, typer.Argument(help="The referral's id.")]


def _show(record: dict[str, object]) -> None:
    remote = f" NCMEC report {record['remote_report_id']}" if record["remote_report_id"] else ""
    error = f": {record['last_error']}" if record["last_error"] else ""
    print(f"referral {record['id']}\t{record['destination']}\t{record['state']}{remote}\t{record['sha256']}{error}")


def _incident_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise UsageError("{field} must be an ISO 8601 time, e.g. 2026-04-07T10:00:00Z", field="incident_time") from None


def referral_command(
    to: Annotated[
        str, typer.Option("--to", help="ncmec (sent to the CyberTipline) or nca (a package for its portal).")
    ],
    preserved: Annotated[str, typer.Option("--preserved", help="The SHA-256 of the preserved upload to report.")],
    uploader_id: Annotated[
        list[str] | None, typer.Option("--uploader-id", help="An identifier of the uploader (repeatable).")
    ] = None,
    uploader_ip: Annotated[str | None, typer.Option("--uploader-ip", help="The uploader's IP address.")] = None,
    incident_time: Annotated[
        str | None, typer.Option("--incident-time", help="When it happened, ISO 8601 (default: the upload's time).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="nca: the folder for the package (JSON and CSV).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Report a preserved upload: to NCMEC it is sent at once (resumable with
    ``referral-send``); for the NCA a package is written into ``--out``."""
    from childsafe.referrals import Uploader, create_referral, get_referral, package_referral, send_referral

    with command_context(OPTIONS) as context:
        if to == "nca" and out is None:
            raise UsageError("{field} (a folder for the package) is needed for the NCA", field="out")
        uploader = Uploader(tuple(uploader_id or ()), uploader_ip)
        info = create_referral(context.engine, context.settings, to, preserved, uploader, _incident_time(incident_time))
        stderr.print(f"referral {info.id}: created ({to})", highlight=False)
        if to == "nca" and out is not None:
            for path in package_referral(context.engine, info.id, out):
                stderr.print(f"wrote {path}", highlight=False)
            info = get_referral(context.engine, info.id)
        elif to == "ncmec":
            info = send_referral(context.engine, context.settings, info.id)
    if json_output:
        print_json(info.to_dict())
    else:
        _show(info.to_dict())


def referral_send_command(
    referral_id: IdArgument,
    confirm_resubmit: Annotated[
        bool,
        typer.Option(
            "--confirm-resubmit",
            help="Submit again after a lost /submit answer, once NCMEC confirmed it holds no report from it.",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Send a referral on from the step it reached (after a failure, or a bank action's draft)."""
    from childsafe.referrals import send_referral

    with command_context(OPTIONS) as context:
        info = send_referral(context.engine, context.settings, referral_id, confirm_resubmit=confirm_resubmit)
    if json_output:
        print_json(info.to_dict())
    else:
        _show(info.to_dict())


def referral_retract_command(referral_id: IdArgument, json_output: JsonOption = False) -> None:
    """Withdraw a referral (an unfinished NCMEC report is retracted at NCMEC too)."""
    from childsafe.referrals import retract_referral

    with command_context(OPTIONS) as context:
        info = retract_referral(context.engine, context.settings, referral_id)
    if json_output:
        print_json(info.to_dict())
    else:
        _show(info.to_dict())


def referrals_command(
    state: Annotated[str | None, typer.Option("--state", help="Only referrals in this state.")] = None,
    json_output: JsonOption = False,
) -> None:
    """List referrals, newest first: destination, state, NCMEC's report id, last error."""
    from childsafe.referrals import list_referrals

    with command_context(OPTIONS) as context:
        records = [info.to_dict() for info in list_referrals(context.engine, state)]
    if json_output:
        print_json(records)
        return
    for record in records:
        _show(record)
