"""Referrals to NCMEC's CyberTipline, against a loopback server that
implements the documented endpoints in order: a matched, preserved upload
becomes a finished report with its file and hashes; a retracted one is
retracted; failures part-way (a 500, a timeout, a dropped answer, refused
credentials, an answer that is not XML) leave a referral that resumes
where it stopped, never opening a second report."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from lxml import etree
from ncmec_server import NcmecServer
from PIL import Image
from referral_support import PASSWORD, Preserved

from childsafe.config import ReferralSettings, Settings
from childsafe.errors import RemoteError, UsageError
from childsafe.referrals import Uploader, create_referral, get_referral, retract_referral, send_referral
from childsafe.referrals.model import (
    INCIDENT_TYPE,
    MatchedEntry,
    ReferralReport,
    ReportedFile,
    Reporter,
    exif_summary,
)
from childsafe.referrals.ncmec import CyberTipline, file_details_xml, report_xml, validate
from childsafe.store import audit_events

pytestmark = pytest.mark.usefixtures("credentials")

UPLOADER = Uploader(("account-4412", "display name here"), "203.0.113.9")


def _referral(engine: sa.Engine, settings: Settings, preserved: Preserved) -> int:
    return create_referral(engine, settings, "ncmec", preserved.sha256, UPLOADER, actor="tester").id


def test_a_matched_upload_becomes_a_finished_report_in_the_documented_order(
    engine: sa.Engine, settings: Settings, preserved: Preserved, ncmec: NcmecServer
) -> None:
    referral = send_referral(engine, settings, _referral(engine, settings, preserved), "tester")

    assert ncmec.calls == ["/submit", "/upload", "/fileinfo", "/finish"]
    assert referral.state == referral.step == "finished" and referral.last_error is None
    report = ncmec.reports[referral.remote_report_id or ""]
    assert report.state == "finished"
    (file_id, file), *others = report.files.items()
    assert not others and referral.remote_files == [{"file_id": file_id, "described": True}]
    assert file["data"] == preserved.data  # the preserved bytes, as uploaded
    details = etree.fromstring(file["details"])
    hashes = {h.get("hashType"): h.text for h in details.iter("originalFileHash")}
    assert hashes["MD5"] == hashlib.md5(preserved.data).hexdigest()
    assert hashes["SHA1"] == hashlib.sha1(preserved.data).hexdigest()
    assert hashes["SHA256"] == preserved.sha256
    assert len(hashes["PDQ"] or "") == 64
    assert details.findtext("industryClassification") == "A1"
    assert details.findtext("fileViewedByEsp") == "false"
    exif = {p.findtext("name"): p.findtext("value") for p in details.iter("nameValuePair")}
    assert exif["make"] == "TestMaker" and "gps" not in exif  # no position unless the operator asks
    submitted = etree.fromstring(report.xml)
    assert submitted.findtext("incidentSummary/incidentType").startswith("Child Pornography")
    assert submitted.findtext("reporter/reportingPerson/email") == "safety@example.org"
    assert submitted.findtext("personOrUserReported/espIdentifier") == "account-4412"
    assert submitted.findtext("personOrUserReported/ipCaptureEvent/ipAddress") == "203.0.113.9"
    assert f"entry {preserved.entry_id} (source id supplier-17) category A1" in submitted.findtext("additionalInfo")
    actions = [e.action for e in audit_events(engine) if e.action.startswith("referral.")]
    assert actions == [
        "referral.create", "referral.submit.sent", "referral.submit", "referral.upload", "referral.fileinfo",
        "referral.finish",
    ]  # fmt: skip
    # Sending a finished referral again does nothing.
    assert send_referral(engine, settings, referral.id).state == "finished" and len(ncmec.calls) == 4


def test_a_retracted_report_is_retracted_at_ncmec(
    engine: sa.Engine, settings: Settings, preserved: Preserved, ncmec: NcmecServer
) -> None:
    referral_id = _referral(engine, settings, preserved)
    ncmec.faults["/upload"] = ["500"]
    with pytest.raises(RemoteError, match=r"POST http://127\.0\.0\.1:\d+/upload: HTTP 500"):
        send_referral(engine, settings, referral_id)
    failed = get_referral(engine, referral_id)
    assert (failed.state, failed.step) == ("failed", "submitted") and failed.remote_report_id

    retracted = retract_referral(engine, settings, referral_id)
    assert retracted.state == "retracted" and ncmec.calls[-1] == "/retract"
    assert ncmec.reports[failed.remote_report_id or ""].state == "retracted"
    assert send_referral(engine, settings, referral_id).state == "retracted"  # nothing more is sent
    assert ncmec.calls.count("/submit") == 1


def test_a_finished_report_cannot_be_retracted_through_the_api(
    engine: sa.Engine, settings: Settings, preserved: Preserved, ncmec: NcmecServer
) -> None:
    referral = send_referral(engine, settings, _referral(engine, settings, preserved))
    with pytest.raises(
        UsageError,
        match=f"finished: NCMEC's API cannot retract it; contact NCMEC about report {referral.remote_report_id}",
    ):
        retract_referral(engine, settings, referral.id)


def test_a_500_on_upload_then_a_rerun_resumes_without_a_second_submit(
    engine: sa.Engine, settings: Settings, preserved: Preserved, ncmec: NcmecServer
) -> None:
    referral_id = _referral(engine, settings, preserved)
    ncmec.faults["/upload"] = ["500"]
    with pytest.raises(RemoteError, match="HTTP 500"):
        send_referral(engine, settings, referral_id)
    assert get_referral(engine, referral_id).last_error.startswith("POST http://127.0.0.1")  # type: ignore[union-attr]

    referral = send_referral(engine, settings, referral_id)
    assert referral.state == "finished" and referral.attempts == 2
    assert ncmec.calls == ["/submit", "/upload", "/upload", "/fileinfo", "/finish"]
    assert len(ncmec.reports) == 1


def test_a_failure_after_the_upload_resumes_at_the_file_details(
    engine: sa.Engine, settings: Settings, preserved: Preserved, ncmec: NcmecServer
) -> None:
    referral_id = _referral(engine, settings, preserved)
    ncmec.faults["/fileinfo"] = ["500", "500", "500"]  # every try of the idempotent call
    with pytest.raises(RemoteError, match="fileinfo: HTTP 500 after 3 tries"):
        send_referral(engine, settings, referral_id)
    assert get_referral(engine, referral_id).step == "uploaded"
    assert send_referral(engine, settings, referral_id).state == "finished"
    assert ncmec.calls.count("/submit") == ncmec.calls.count("/upload") == 1


def test_a_timeout_is_a_clear_error_and_the_referral_resumes(
    engine: sa.Engine, settings: Settings, preserved: Preserved, ncmec: NcmecServer
) -> None:
    referral_id = _referral(engine, settings, preserved)
    ncmec.faults["/fileinfo"] = ["slow", "slow", "slow"]
    with pytest.raises(RemoteError, match=r"/fileinfo: timed out after 3 tries; try again later"):
        send_referral(engine, settings, referral_id)
    assert get_referral(engine, referral_id).state == "failed"
    assert send_referral(engine, settings, referral_id).state == "finished"
    assert ncmec.calls.count("/submit") == 1


def test_a_lost_finish_answer_is_confirmed_by_the_next_send(
    engine: sa.Engine, settings: Settings, preserved: Preserved, ncmec: NcmecServer
) -> None:
    referral_id = _referral(engine, settings, preserved)
    ncmec.faults["/finish"] = ["slow"]  # NCMEC finishes the report; its answer comes too late
    with pytest.raises(RemoteError, match="/finish: timed out; the service may have acted on it"):
        send_referral(engine, settings, referral_id)
    assert get_referral(engine, referral_id).step == "finish_sent"
    referral = send_referral(engine, settings, referral_id)
    assert referral.state == "finished" and ncmec.calls[-2:] == ["/finish", "/finish"]
    assert ncmec.reports[referral.remote_report_id or ""].state == "finished"


def test_a_lost_submit_answer_is_never_resubmitted_without_the_operator(
    engine: sa.Engine, settings: Settings, preserved: Preserved, ncmec: NcmecServer
) -> None:
    referral_id = _referral(engine, settings, preserved)
    ncmec.faults["/submit"] = ["slow"]  # NCMEC opens the report; its answer comes too late
    with pytest.raises(RemoteError, match="/submit: timed out; the service may have acted on it: check before"):
        send_referral(engine, settings, referral_id)
    assert ncmec.calls == ["/submit"] and len(ncmec.reports) == 1
    stuck = get_referral(engine, referral_id)
    assert stuck.submit_sent_at is not None and stuck.remote_report_id is None
    with pytest.raises(UsageError, match="its answer was lost, so NCMEC may already hold this report: ask NCMEC"):
        send_referral(engine, settings, referral_id)
    assert ncmec.calls == ["/submit"]  # nothing was sent again

    # The operator asked NCMEC (and withdrew the orphan there); now it is resubmitted on purpose.
    referral = send_referral(engine, settings, referral_id, confirm_resubmit=True)
    assert referral.state == "finished" and referral.submit_sent_at is None
    assert ncmec.calls.count("/submit") == 2


def test_an_answer_that_is_not_xml_is_a_clear_error(
    engine: sa.Engine, settings: Settings, preserved: Preserved, ncmec: NcmecServer
) -> None:
    ncmec.faults["/status"] = ["malformed"]
    with CyberTipline.from_settings(settings.referrals, settings.http) as tipline:
        with pytest.raises(RemoteError, match=r"NCMEC http://127\.0\.0\.1:\d+/status: the answer is not XML"):
            tipline.status()
        assert tipline.status() == "Remote User : reporter"
    referral_id = _referral(engine, settings, preserved)
    ncmec.faults["/upload"] = ["malformed"]
    with pytest.raises(RemoteError, match="the answer is not XML; is this NCMEC's reporting API"):
        send_referral(engine, settings, referral_id)
    assert send_referral(engine, settings, referral_id).state == "finished"


def test_refused_credentials_are_a_clear_error_and_never_shown(
    engine: sa.Engine,
    settings: Settings,
    preserved: Preserved,
    ncmec: NcmecServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-password-4f2a"
    monkeypatch.setenv("CHILDSAFE_NCMEC_PASSWORD", wrong)
    referral_id = _referral(engine, settings, preserved)
    with pytest.raises(RemoteError, match="/submit: HTTP 401: the credentials were refused; check them") as raised:
        send_referral(engine, settings, referral_id)
    failed = get_referral(engine, referral_id)
    assert failed.state == "failed" and failed.submit_sent_at is None  # a refusal: no report was opened
    monkeypatch.setenv("CHILDSAFE_NCMEC_PASSWORD", PASSWORD)
    done = send_referral(engine, settings, referral_id)
    assert done.state == "finished"

    shown = [str(raised.value), caplog.text, json.dumps(done.to_dict()), json.dumps(failed.to_dict())]
    shown += [json.dumps(e.detail) + e.actor for e in audit_events(engine)]
    shown += [r.xml.decode() for r in ncmec.reports.values()]
    for text in shown:
        assert wrong not in text and PASSWORD not in text


def test_credentials_come_from_an_owner_only_file_or_not_at_all(
    engine: sa.Engine, settings: Settings, preserved: Preserved, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CHILDSAFE_NCMEC_USER")
    monkeypatch.delenv("CHILDSAFE_NCMEC_PASSWORD")
    referral_id = _referral(engine, settings, preserved)
    with pytest.raises(UsageError, match="no NCMEC credentials: set CHILDSAFE_NCMEC_USER and CHILDSAFE_NCMEC_PASSWORD"):
        send_referral(engine, settings, referral_id)
    secret = tmp_path / "ncmec.txt"
    secret.write_text(f"reporter:{PASSWORD}\n")
    os.chmod(secret, 0o644)
    with_file = Settings(
        settings.home, settings.database_url, http=settings.http,
        referrals=ReferralSettings(**{**settings.referrals.__dict__, "ncmec_credentials_file": secret}),
    )  # fmt: skip
    with pytest.raises(UsageError, match=f"may be read by others; run chmod 600 {secret}"):
        send_referral(engine, with_file, referral_id)
    os.chmod(secret, 0o600)
    assert send_referral(engine, with_file, referral_id).state == "finished"


def test_without_an_address_nothing_is_sent(engine: sa.Engine, settings: Settings, preserved: Preserved) -> None:
    unset = Settings(settings.home, settings.database_url, http=settings.http, referrals=ReferralSettings())
    referral_id = create_referral(engine, unset, "ncmec", preserved.sha256, Uploader()).id
    with pytest.raises(UsageError, match="NCMEC is not configured: set CHILDSAFE_NCMEC_URL"):
        send_referral(engine, unset, referral_id)


def test_reports_are_checked_against_the_schema_before_anything_is_sent(
    engine: sa.Engine, settings: Settings, preserved: Preserved, ncmec: NcmecServer, tmp_path: Path
) -> None:
    referral = create_referral(engine, settings, "ncmec", preserved.sha256, UPLOADER)
    document = report_xml(referral.contents)
    validate(document)  # ours
    # An operator's schema (NCMEC's own, say) is used instead: one that asks for more refuses ours.
    strict = tmp_path / "strict.xsd"
    strict.write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="report">'
        '<xs:complexType><xs:sequence><xs:element name="required"/></xs:sequence></xs:complexType>'
        "</xs:element></xs:schema>"
    )
    with_schema = Settings(
        settings.home, settings.database_url, http=settings.http,
        referrals=ReferralSettings(**{**settings.referrals.__dict__, "ncmec_xsd": strict}),
    )  # fmt: skip
    with pytest.raises(UsageError, match="the report does not match the NCMEC schema: line 2"):
        send_referral(engine, with_schema, referral.id)
    assert ncmec.calls == []
    no_email = ReferralSettings(ncmec_url=ncmec.url)
    without = Settings(settings.home, settings.database_url, http=settings.http, referrals=no_email)
    other = create_referral(engine, without, "ncmec", preserved.sha256, Uploader())
    with pytest.raises(UsageError, match="needs the reporter's e-mail: set CHILDSAFE_REPORTER_EMAIL"):
        send_referral(engine, without, other.id)
    assert ncmec.calls == []


def test_the_exif_position_is_reported_only_when_the_operator_asks(
    engine: sa.Engine, settings: Settings, preserved: Preserved
) -> None:
    asked = Settings(
        settings.home, settings.database_url, http=settings.http,
        referrals=ReferralSettings(**{**settings.referrals.__dict__, "exif_gps": True}),
    )  # fmt: skip
    assert create_referral(engine, asked, "ncmec", preserved.sha256, Uploader()).report["exif"]["gps"] == (
        "51.500000,-0.125000"
    )
    assert "gps" not in create_referral(engine, settings, "ncmec", preserved.sha256, Uploader()).report["exif"]


def test_bad_uploader_identifiers_and_unknown_uploads_are_refused(
    engine: sa.Engine, settings: Settings, preserved: Preserved
) -> None:
    with pytest.raises(UsageError, match="uploader_ip is not an IP address"):
        create_referral(engine, settings, "ncmec", preserved.sha256, Uploader(("a",), "999.1.1.1"))
    with pytest.raises(UsageError, match="destination must be one of ncmec, nca"):
        create_referral(engine, settings, "fbi", preserved.sha256, Uploader())
    with pytest.raises(UsageError, match="no preserved upload has SHA-256 0000"):
        create_referral(engine, settings, "ncmec", "0" * 64, Uploader())


def test_a_refusal_says_what_ncmec_said(
    engine: sa.Engine, settings: Settings, preserved: Preserved, ncmec: NcmecServer
) -> None:
    referral_id = _referral(engine, settings, preserved)
    ncmec.faults["/upload"] = ["500"]
    with pytest.raises(RemoteError):
        send_referral(engine, settings, referral_id)
    report_id = get_referral(engine, referral_id).remote_report_id or ""
    ncmec.reports[report_id].state = "retracted"  # withdrawn at NCMEC by someone else
    with pytest.raises(
        RemoteError, match=f"/upload: HTTP 400; check the address: responseCode 4200: Report {report_id} is not open"
    ):
        send_referral(engine, settings, referral_id)
    assert ncmec.calls.count("/submit") == 1


def test_long_and_odd_reports_still_match_the_schema() -> None:
    exif = Image.Exif()
    exif[271], exif[272] = "\x01Cam\x02era\x00", ""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG", exif=exif)
    summary = exif_summary(buffer.getvalue(), gps=True)
    assert summary == {"width": "8", "height": "8", "make": "Camera"}  # no control characters, nothing empty
    moment = datetime(2026, 4, 7, 10, 0, tzinfo=UTC)
    report = ReferralReport(
        INCIDENT_TYPE, moment, moment, Reporter("Ada", "safety@example.org", None),
        ReportedFile("a.jpg", 8, "image/jpeg", "a" * 32, "b" * 40, "c" * 64, None), summary,
        Uploader(tuple(f"{n:03d}" + "x" * 197 for n in range(20)), "198.51.100.1"), "key",
        tuple(MatchedEntry("bank", str(n), f"source-{n}", "A1") for n in range(500)),
    )  # fmt: skip
    document = report_xml(report)
    validate(document)
    validate(file_details_xml(report, "7001", "f1"))
    assert "(" in etree.fromstring(document).findtext("additionalInfo")[-40:]  # says how much was left out
