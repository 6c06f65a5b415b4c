"""Sending a referral to NCMEC in the documented order, resumably:
``/submit`` (the report id is stored and audited in one transaction), then
``/upload`` of the preserved file (its file id stored), ``/fileinfo`` (its
hashes and EXIF), ``/finish``. A send after a failure starts at the step
the referral reached, so a report NCMEC accepted is never submitted again.

The one gap no client can close: NCMEC may accept a ``/submit`` whose
answer never reaches us (a timeout, a dropped connection, a 5xx after the
request went out). ``submit_sent_at`` is committed *before* ``/submit`` is
sent and cleared when its answer is stored; a referral that still has it
is not submitted again unless the operator, having asked NCMEC whether it
holds a report from that time (docs/referrals.md), says so
(``confirm_resubmit``).
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Engine

from childsafe.config import Settings
from childsafe.errors import ChildsafeError, RemoteError, RemoteOutcomeUnknown, UsageError
from childsafe.referrals.model import preserved_bytes
from childsafe.referrals.ncmec import CyberTipline, file_details_xml, report_xml, validate
from childsafe.referrals.store import ReferralInfo, record_failure, record_step
from childsafe.store.models import utc_now

__all__ = ["retract_ncmec", "send_ncmec"]


def send_ncmec(
    engine: Engine, settings: Settings, info: ReferralInfo, actor: str, *, confirm_resubmit: bool = False
) -> None:
    """Carry ``info`` on to ``finished`` from the step it reached. A failure
    is recorded (state ``failed``, its reason) and raised; sending again
    resumes."""
    if info.state in ("finished", "retracted"):
        return
    try:
        with CyberTipline.from_settings(settings.referrals, settings.http) as tipline:
            _send(engine, settings, info, tipline, actor, confirm_resubmit)
    except ChildsafeError as error:
        record_failure(engine, info.id, str(error), actor)
        raise


def _send(
    engine: Engine, settings: Settings, info: ReferralInfo, tipline: CyberTipline, actor: str, confirm: bool
) -> None:
    report = info.contents
    schema = settings.referrals.ncmec_xsd
    report_id = info.remote_report_id
    attempt = {"attempts": info.attempts + 1, "last_error": None}
    if report_id is None:
        if info.submit_sent_at is not None and not confirm:
            raise UsageError(
                f"referral {info.id}: a /submit went out at {info.submit_sent_at.isoformat()} and its answer was "
                "lost, so NCMEC may already hold this report: ask NCMEC, then send again confirming a resubmission"
            )
        document = report_xml(report)
        validate(document, schema)
        record_step(engine, info.id, "referral.submit.sent", {}, actor, submit_sent_at=utc_now(), **attempt)
        try:
            report_id = tipline.submit(document)
        except RemoteOutcomeUnknown:
            raise  # submit_sent_at stays: the operator checks before a resubmission
        except RemoteError:
            # A definite refusal (a 4xx, a responseCode): no report was opened.
            record_step(engine, info.id, "referral.submit.refused", {}, actor, submit_sent_at=None)
            raise
        record_step(
            engine, info.id, "referral.submit", {"report_id": report_id}, actor,
            remote_report_id=report_id, submit_sent_at=None, step="submitted", state="submitted",
        )  # fmt: skip
    else:
        record_step(engine, info.id, "referral.resume", {"report_id": report_id, "step": info.step}, actor, **attempt)
    files = list(info.remote_files)
    if not files:
        data = preserved_bytes(settings.home, report.file.sha256)
        if hashlib.sha256(data).hexdigest() != report.file.sha256:
            raise UsageError(f"the evidence store's copy of {report.file.sha256} has changed; it is not sent")
        file_id = tipline.upload(report_id, report.file.name, data, report.file.mime)
        files = [{"file_id": file_id, "described": False}]
        record_step(
            engine, info.id, "referral.upload", {"report_id": report_id, "file_id": file_id, "size": len(data)},
            actor, remote_files=files, step="uploaded", state="uploaded",
        )  # fmt: skip
    for number, entry in enumerate(files):
        if entry["described"]:
            continue
        document = file_details_xml(report, report_id, entry["file_id"])
        validate(document, schema)
        tipline.file_info(document)
        files = [*files[:number], {**entry, "described": True}, *files[number + 1 :]]
        record_step(
            engine, info.id, "referral.fileinfo", {"report_id": report_id, "file_id": entry["file_id"]}, actor,
            remote_files=files, state="uploaded",
        )  # fmt: skip
    try:
        tipline.finish(report_id)
    except RemoteOutcomeUnknown:
        record_step(engine, info.id, "referral.finish.sent", {"report_id": report_id}, actor, step="finish_sent")
        raise
    except RemoteError:
        if info.step != "finish_sent":
            raise
        # The last /finish went out and its answer was lost; NCMEC now refuses to finish the
        # report because it is not open any more: that /finish did it (we never retracted it).
        record_step(
            engine, info.id, "referral.finish", {"report_id": report_id, "confirmed_by": "refusal to finish again"},
            actor, step="finished", state="finished",
        )  # fmt: skip
        return
    record_step(engine, info.id, "referral.finish", {"report_id": report_id}, actor, step="finished", state="finished")


def retract_ncmec(engine: Engine, settings: Settings, info: ReferralInfo, actor: str) -> None:
    """Withdraw an unfinished report at NCMEC (``/retract``) and mark it
    ``retracted``; one never submitted is only marked. A finished report
    cannot be withdrawn through the API."""
    if info.state == "retracted":
        return
    if info.step == "finished":
        raise UsageError(
            f"referral {info.id} is finished: NCMEC's API cannot retract it; contact NCMEC about report "
            f"{info.remote_report_id}"
        )
    detail: dict[str, object] = {"report_id": info.remote_report_id}
    if info.remote_report_id is not None:
        try:
            with CyberTipline.from_settings(settings.referrals, settings.http) as tipline:
                tipline.retract(info.remote_report_id)
        except ChildsafeError as error:
            record_failure(engine, info.id, str(error), actor)
            raise
    elif info.submit_sent_at is not None:
        # A /submit whose answer was lost: NCMEC may hold a report we have no id for.
        detail["unknown_submit_at"] = info.submit_sent_at.isoformat()
    record_step(engine, info.id, "referral.retract", detail, actor, state="retracted", last_error=None)
