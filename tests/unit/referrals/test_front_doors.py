"""The front doors onto referrals: the service (an upload matched and
preserved through ``POST /v1/match`` becomes a CyberTipline report through
``POST /v1/referrals``, curators only; a ``refer-nca`` bank makes a draft
by itself) and the command line (``childsafe report referral ...``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from ncmec_server import NcmecServer
from referral_support import PASSWORD, USER, Preserved, picture_with_exif
from support import InProcessApp, error_message, invoke

from childsafe.actions.keys import create_api_key
from childsafe.config import ServiceOptions, Settings
from childsafe.referrals import list_referrals
from childsafe.service.app import create_app
from childsafe.store import audit_events


@pytest.fixture
def service(engine: sa.Engine, settings: Settings, credentials: None) -> Iterator[tuple[InProcessApp, dict[str, str]]]:
    keys = {role: create_api_key(engine, f"{role}-key", role) for role in ("curator", "matcher")}
    app = InProcessApp(create_app(settings, ServiceOptions.from_env({})))
    try:
        yield app, {role: f"Bearer {key}" for role, key in keys.items()}
    finally:
        app.close()


def test_a_matched_upload_becomes_a_report_through_the_api(
    service: tuple[InProcessApp, dict[str, str]], engine: sa.Engine, ncmec: NcmecServer
) -> None:
    app, keys = service
    curator, matcher = {"Authorization": keys["curator"]}, {"Authorization": keys["matcher"]}
    upload = picture_with_exif()
    sha256 = hashlib.sha256(upload).hexdigest()
    bank = {"name": "known", "scheme": "ncmec", "action": "preserve", "preserve_days": 30}
    assert app.request("POST", "/v1/banks", json=bank, headers=curator).status_code == 201
    entry = {"signal": "sha256", "value": sha256, "category": "B1"}
    app.request("POST", "/v1/banks/known/entries", json={"entries": [entry]}, headers=curator)
    matched = app.request("POST", "/v1/match", files={"file": ("upload.jpg", upload)}, headers=matcher)
    assert len(matched.json()["matches"]) == 1

    body = {"destination": "ncmec", "preserved_sha256": sha256, "uploader_ids": ["acct-9"], "uploader_ip": "192.0.2.4"}
    error_message(app.request("POST", "/v1/referrals", json=body, headers=matcher), 403)
    created = app.request("POST", "/v1/referrals", json=body, headers=curator)
    assert created.status_code == 201, created.text
    referral = created.json()
    assert referral["state"] == "finished" and referral["remote_report_id"] in ncmec.reports
    assert ncmec.calls == ["/submit", "/upload", "/fileinfo", "/finish"]
    assert referral["report"]["file"]["sha256"] == sha256 and referral["report"]["matches"][0]["category"] == "B1"
    assert app.request("GET", f"/v1/referrals/{referral['id']}", headers=curator).json() == referral
    assert error_message(app.request("GET", "/v1/referrals/999", headers=curator), 404) == "no referral 999"
    assert error_message(app.request("GET", f"/v1/referrals/{10**20}", headers=curator), 404).startswith("no referral")
    assert {e.actor for e in audit_events(engine) if e.action.startswith("referral.")} == {"api:curator-key"}

    ncmec.faults["/submit"] = ["500"]  # a failure is in the record returned, to resume later
    failed = app.request("POST", "/v1/referrals", json=body, headers=curator).json()
    assert failed["state"] == "failed" and "HTTP 500" in failed["last_error"]


def test_a_refer_bank_makes_a_draft_of_each_preserved_match(
    service: tuple[InProcessApp, dict[str, str]], engine: sa.Engine
) -> None:
    app, keys = service
    curator, matcher = {"Authorization": keys["curator"]}, {"Authorization": keys["matcher"]}
    upload = picture_with_exif()
    sha256 = hashlib.sha256(upload).hexdigest()
    assert (
        app.request("POST", "/v1/banks", json={"name": "uk", "action": "refer-nca"}, headers=curator).status_code == 201
    )
    app.request(
        "POST", "/v1/banks/uk/entries", json={"entries": [{"signal": "sha256", "value": sha256}]}, headers=curator
    )
    app.request("POST", "/v1/match", files={"file": ("upload.jpg", upload)}, headers=matcher)

    (draft,) = list_referrals(engine)
    assert (draft.destination, draft.state, draft.sha256, draft.created_by) == (
        "nca",
        "draft",
        sha256,
        "api:matcher-key",
    )
    package = app.request("GET", f"/v1/referrals/{draft.id}/package", headers=curator).json()
    assert package["content"]["hash_values"]["sha256"] == sha256 and package["user"]["identifiers"] == []


def test_the_command_line_reports_lists_and_retracts(
    engine: sa.Engine, settings: Settings, preserved: Preserved, ncmec: NcmecServer, tmp_path: Path
) -> None:
    env = {
        "CHILDSAFE_DATABASE_URL": settings.database_url, "CHILDSAFE_NCMEC_URL": ncmec.url,
        "CHILDSAFE_NCMEC_USER": USER, "CHILDSAFE_NCMEC_PASSWORD": PASSWORD,
        "CHILDSAFE_REPORTER_EMAIL": "safety@example.org", "CHILDSAFE_HTTP_RETRIES": "0",
    }  # fmt: skip
    args = ["report", "referral", "--to", "ncmec", "--preserved", preserved.sha256, "--uploader-id", "u-1"]
    sent = invoke([*args, "--json"], settings.home, env)
    assert sent.exit_code == 0, sent.output
    referral = json.loads(sent.stdout)
    assert referral["state"] == "finished" and referral["report"]["uploader"]["ids"] == ["u-1"]

    ncmec.faults["/upload"] = ["500"]
    failed = invoke(args, settings.home, env)
    assert failed.exit_code == 1 and "HTTP 500" in failed.stderr and "referral 2: created (ncmec)" in failed.stderr
    retracted = invoke(["report", "referral-retract", "2"], settings.home, env)
    assert retracted.exit_code == 0 and "referral 2\tncmec\tretracted" in retracted.stdout
    listed = invoke(["report", "referrals", "--state", "retracted", "--json"], settings.home, env)
    assert [r["id"] for r in json.loads(listed.stdout)] == [2]
    again = invoke(["report", "referral-send", "1"], settings.home, env)
    assert again.exit_code == 0 and "finished" in again.stdout

    bad = invoke(["report", "referral", "--to", "nca", "--preserved", preserved.sha256], settings.home, env)
    assert bad.exit_code == 2 and "--out (a folder for the package) is needed for the NCA" in bad.stderr
    bad_ip = invoke([*args, "--uploader-ip", "nope"], settings.home, env)
    assert bad_ip.exit_code == 2 and "--uploader-ip is not an IP address" in bad_ip.stderr
    out = tmp_path / "nca"
    packaged = invoke(
        ["report", "referral", "--to", "nca", "--preserved", preserved.sha256, "--out", str(out)], settings.home, env
    )
    assert packaged.exit_code == 0 and "packaged" in packaged.stdout
    assert sorted(p.name for p in out.iterdir()) == ["referral-3.csv", "referral-3.json"]
    for result in (sent, failed, retracted, listed, again, packaged):
        assert PASSWORD not in result.output
