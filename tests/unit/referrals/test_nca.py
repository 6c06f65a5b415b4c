"""NCA referrals: the package (Schedule 1 of SI 2026/268, as JSON and CSV)
of a matched, preserved upload, and an API client that says the NCA has
not published its API instead of guessing an address."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from referral_support import PASSWORD, Preserved

from childsafe.config import Settings
from childsafe.errors import UsageError
from childsafe.referrals import (
    Uploader,
    create_referral,
    get_referral,
    package_referral,
    retract_referral,
    send_referral,
)
from childsafe.referrals.nca import UnpublishedNcaApi, nca_csv, nca_package
from childsafe.store import audit_events


def test_the_package_holds_what_the_regulations_name(
    engine: sa.Engine, settings: Settings, preserved: Preserved, tmp_path: Path
) -> None:
    referral = create_referral(
        engine, settings, "nca", preserved.sha256, Uploader(("user-77", "=cmd|' /C calc'!A0"), "2001:db8::5")
    )
    out = tmp_path / "packages"
    written = package_referral(engine, referral.id, out, "tester")
    assert [p.name for p in written] == [f"referral-{referral.id}.json", f"referral-{referral.id}.csv"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in written)

    package = json.loads(written[0].read_text())
    assert list(package) == [
        "format", "regulations", "referral_id", "authorised_person", "content", "priority", "user",
        "identity_documents", "other_information", "declaration",
    ]  # fmt: skip
    assert "SI 2026/268" in package["regulations"]
    assert package["authorised_person"] == {
        "name": "Ada Reporter", "email": "safety@example.org", "organisation": "Example Platform",
    }  # fmt: skip
    content = package["content"]
    assert content["hash_values"]["md5"] == hashlib.md5(preserved.data).hexdigest()
    assert content["hash_values"]["sha256"] == preserved.sha256 and len(content["hash_values"]["pdq"]) == 64
    assert content["exif"]["make"] == "TestMaker" and content["media_type"] == "image/jpeg"
    assert content["matched_entries"] == [
        {"bank": "known", "entry_id": preserved.entry_id, "source_id": "supplier-17", "category": "A1"}
    ]
    assert package["user"]["identifiers"][0] == "user-77" and package["user"]["ip_address"] == "2001:db8::5"
    assert package["declaration"] is None  # made by the authorised person in the portal

    rows = list(csv.reader(io.StringIO(written[1].read_text())))
    assert rows[0] == ["section", "field", "value"]
    cells = {(section, field): value for section, field, value in rows[1:]}
    assert cells[("content", "hash_values.sha256")] == preserved.sha256
    assert cells[("content", "matched_entries.1.category")] == "A1"
    assert cells[("user", "identifiers.2")] == "'=cmd|' /C calc'!A0"  # no formula for a spreadsheet
    assert cells[("priority", "")] == ""

    assert get_referral(engine, referral.id).state == "packaged"
    assert [e.action for e in audit_events(engine) if e.action.startswith("referral.")] == [
        "referral.create", "referral.package",
    ]  # fmt: skip


def test_the_csv_is_the_json_flattened() -> None:
    package = {"a": {"b": [1, {"c": None}]}, "d": "x"}
    assert nca_csv(package) == "section,field,value\na,b.1,1\na,b.2.c,\nd,,x\n"


def test_the_api_client_says_it_is_not_configured(engine: sa.Engine, settings: Settings, preserved: Preserved) -> None:
    with pytest.raises(UsageError, match="the NCA API is not configured: the NCA has not published its API"):
        UnpublishedNcaApi().submit({}, b"")
    referral = create_referral(engine, settings, "nca", preserved.sha256, Uploader())
    with pytest.raises(UsageError, match="the NCA API is not configured"):
        send_referral(engine, settings, referral.id)
    assert get_referral(engine, referral.id).state == "draft"  # nothing was tried
    assert retract_referral(engine, settings, referral.id).state == "retracted"
    with pytest.raises(UsageError, match="was retracted"):
        package_referral(engine, referral.id, settings.home / "out")


def test_packages_hold_no_credential(
    engine: sa.Engine, settings: Settings, preserved: Preserved, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHILDSAFE_NCMEC_PASSWORD", PASSWORD)
    referral = create_referral(engine, settings, "nca", preserved.sha256, Uploader(("u",)))
    text = json.dumps(nca_package(referral.contents, referral.id))
    assert PASSWORD not in text and PASSWORD not in nca_csv(json.loads(text))
