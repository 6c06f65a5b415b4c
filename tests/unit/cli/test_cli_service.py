"""``childsafe apikey`` and ``childsafe audit verify`` in-process: keys made,
listed and revoked, each change audited; the audit chain checked against a
scan manifest's anchor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import invoke


@pytest.fixture
def platform_key(home: Path) -> dict[str, Any]:
    """The key "platform-1" (role matcher), as ``apikey create --json`` printed it."""
    created = invoke(["apikey", "create", "platform-1", "--role", "matcher", "--json"], home)
    assert created.exit_code == 0, created.output
    return dict(json.loads(created.stdout))


def test_a_created_key_is_printed_once_and_listed_without_it(home: Path, platform_key: dict[str, Any]) -> None:
    assert (platform_key["name"], platform_key["role"]) == ("platform-1", "matcher")
    assert platform_key["key"].startswith("cs_")
    listed = json.loads(invoke(["apikey", "list", "--json"], home).stdout)
    assert [(k["name"], k["role"], k["revoked"]) for k in listed] == [("platform-1", "matcher", False)]
    assert platform_key["key"] not in json.dumps(listed)


def test_a_name_taken_is_exit_2(home: Path, platform_key: dict[str, Any]) -> None:
    again = invoke(["apikey", "create", "platform-1", "--role", "matcher"], home)
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_an_unknown_role_is_exit_2(home: Path) -> None:
    wrong = invoke(["apikey", "create", "x", "--role", "root"], home)
    assert wrong.exit_code == 2 and "role must be one of" in wrong.stderr


def test_a_revoked_key_is_listed_so_and_cannot_be_revoked_again(home: Path, platform_key: dict[str, Any]) -> None:
    assert invoke(["apikey", "revoke", "platform-1"], home).exit_code == 0
    assert json.loads(invoke(["apikey", "list", "--json"], home).stdout)[0]["revoked"] is True
    assert invoke(["apikey", "revoke", "platform-1"], home).exit_code == 2


def test_key_changes_are_audited_without_the_key(home: Path, platform_key: dict[str, Any]) -> None:
    invoke(["apikey", "revoke", "platform-1"], home)
    events = [json.loads(line) for line in invoke(["audit", "list", "--json"], home).stdout.splitlines()]
    assert [(e["action"], e["detail"]) for e in events] == [
        ("apikey.create", {"name": "platform-1", "role": "matcher"}),
        ("apikey.revoke", {"name": "platform-1", "role": "matcher"}),
    ]
    assert platform_key["key"] not in json.dumps(events)


# ---------------------------------------------------------------- audit verify


@pytest.fixture
def two_events(home: Path) -> dict[str, Any]:
    """A home whose audit log holds two events, and ``audit verify --json``'s report of it."""
    for name in ("k1", "k2"):
        assert invoke(["apikey", "create", name, "--role", "matcher"], home).exit_code == 0
    verified = invoke(["audit", "verify", "--json"], home)
    assert verified.exit_code == 0, verified.output
    return dict(json.loads(verified.stdout))


def test_verify_reports_an_intact_chain(two_events: dict[str, Any]) -> None:
    assert two_events["intact"] and two_events["events"] == 2 and two_events["anchor"] is None


def test_verify_holds_against_the_anchor_of_a_manifest(home: Path, tmp_path: Path, two_events: dict[str, Any]) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"case_id": "C1", "audit": two_events["head"]}))
    held = invoke(["audit", "verify", "--manifest", str(manifest), "--json"], home)
    assert held.exit_code == 0 and json.loads(held.stdout)["anchor"] == two_events["head"]


def test_verify_fails_with_exit_1_when_anchored_events_are_gone(
    home: Path, tmp_path: Path, two_events: dict[str, Any]
) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"case_id": "C1", "audit": {"events": 3, "head": two_events["head"]["head"]}}))
    lost = invoke(["audit", "verify", "--manifest", str(manifest)], home)
    assert lost.exit_code == 1
    assert "the log holds 2 events but the manifest anchors 3 (events deleted?)" in lost.stdout


@pytest.mark.parametrize("text", ['{"case_id": "C1"}', '{"audit": {"events": true, "head": "00"}}', "not json"])
def test_a_file_that_is_no_manifest_is_exit_2(home: Path, tmp_path: Path, text: str) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(text)
    wrong = invoke(["audit", "verify", "--manifest", str(manifest)], home)
    assert wrong.exit_code == 2 and wrong.stderr.count("\n") == 1, wrong.stderr
    assert "is not a scan manifest with an audit anchor" in wrong.stderr
