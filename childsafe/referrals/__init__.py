"""Referrals: reports of matched, preserved uploads to NCMEC's CyberTipline
(sent through its Reporting API) and the UK's NCA (a package for its
portal). One module a thing:

- ``model``: the report's contents, built from a preserved upload;
- ``ncmec``: NCMEC's XML (lxml, checked against ``ncmec_report.xsd``) and client;
- ``nca``: the NCA's JSON and CSV package and the API client's interface;
- ``store``: the referrals table, each step committed with its audit event;
- ``sending``: NCMEC's steps in order, resumed where they stopped;
- ``destinations``: the registry of where referrals go.

This module is the API the CLI, the service and the bank actions use.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from childsafe.config import Settings
from childsafe.errors import UsageError
from childsafe.referrals.destinations import DESTINATIONS, get_destination
from childsafe.referrals.model import ReferralReport, Uploader, build_report
from childsafe.referrals.nca import write_package
from childsafe.referrals.store import STATES, ReferralInfo, get_referral, insert_referral, list_referrals, record_step
from childsafe.store import os_user

__all__ = [
    "DESTINATIONS",
    "STATES",
    "ReferralInfo",
    "ReferralReport",
    "Uploader",
    "create_referral",
    "get_referral",
    "list_referrals",
    "package_referral",
    "retract_referral",
    "send_referral",
]


def create_referral(
    engine: Engine,
    settings: Settings,
    destination: str,
    sha256: str,
    uploader: Uploader,
    incident_time: datetime | None = None,
    actor: str | None = None,
) -> ReferralInfo:
    """A draft referral to ``destination`` of the preserved upload with this
    SHA-256 (its report built now, from the evidence store), audited."""
    get_destination(destination)
    if incident_time is not None and incident_time.tzinfo is None:
        raise UsageError("{field} must include its time zone (e.g. 2026-04-07T10:00:00Z)", field="incident_time")
    report = build_report(engine, settings, sha256, uploader, incident_time)
    return insert_referral(engine, destination, report, actor or os_user())


def send_referral(
    engine: Engine, settings: Settings, referral_id: int, actor: str | None = None, *, confirm_resubmit: bool = False
) -> ReferralInfo:
    """Send a referral from the step it reached (nothing to do when it is
    finished or retracted); a failure is recorded on it and raised."""
    info = get_referral(engine, referral_id)
    get_destination(info.destination).send(engine, settings, info, actor or os_user(), confirm_resubmit)
    return get_referral(engine, referral_id)


def retract_referral(engine: Engine, settings: Settings, referral_id: int, actor: str | None = None) -> ReferralInfo:
    """Withdraw a referral (at NCMEC, an unfinished report is retracted there too)."""
    info = get_referral(engine, referral_id)
    get_destination(info.destination).retract(engine, settings, info, actor or os_user())
    return get_referral(engine, referral_id)


def package_referral(engine: Engine, referral_id: int, out: Path, actor: str | None = None) -> list[Path]:
    """Write an NCA referral's package (JSON and CSV) into ``out``; the
    referral is then ``packaged`` (audited with the files' names)."""
    info = get_referral(engine, referral_id)
    if info.destination != "nca":
        raise UsageError(f"referral {referral_id} goes to {info.destination}: only NCA referrals are packaged")
    if info.state == "retracted":
        raise UsageError(f"referral {referral_id} was retracted")
    written = write_package(info.contents, info.id, out)
    record_step(
        engine, info.id, "referral.package", {"files": [p.name for p in written]}, actor or os_user(),
        step="packaged", state="packaged",
    )  # fmt: skip
    return written
