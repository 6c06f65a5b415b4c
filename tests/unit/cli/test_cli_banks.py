"""``childsafe bank`` and ``childsafe audit`` in-process: what each command
prints, its exit code, and the audit event it leaves."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest
from support import DATA, invoke

MD5 = "0123456789abcdef0123456789abcdef"
SECRET = "0123456789abcdef-receiver-secret"
HASH_LIST = DATA / "text" / "hash-list.txt"  # five hashes of four signals, every line shape


@pytest.fixture
def police(home: Path) -> Path:
    """A home with the bank "police", imported from the text list."""
    imported = invoke(["bank", "import", "police", str(HASH_LIST), "--scheme", "uk", "--json"], home)
    assert imported.exit_code == 0, imported.output
    return home


def test_import_prints_what_it_did(home: Path) -> None:
    imported = invoke(["bank", "import", "police", str(HASH_LIST), "--scheme", "uk", "--json"], home)
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout) == {"bank": "police", "added": 5, "updated": 0, "removed": 0, "rejected": 0}


def test_show_gives_the_fields_of_the_contract_in_order(police: Path) -> None:
    shown = json.loads(invoke(["bank", "show", "police", "--json"], police).stdout)
    contract = ["name", "scheme", "kind", "pdq_threshold", "entries", "signals", "imports", "action"]
    assert list(shown) == [*contract, "vpdq_query_percent", "vpdq_compared_percent"]  # ours after the contract's
    assert (shown["entries"], shown["scheme"], shown["kind"]) == (5, "uk", "match")


def test_list_names_the_banks(police: Path) -> None:
    assert [b["name"] for b in json.loads(invoke(["bank", "list", "--json"], police).stdout)] == ["police"]


def test_export_writes_the_file_named(police: Path, tmp_path: Path) -> None:
    out = tmp_path / "police.csv"
    exported = invoke(["bank", "export", "police", "--format", "csv", "--out", str(out)], police)
    assert exported.exit_code == 0, exported.output
    assert out.read_text().startswith("md5,sha1,sha256,pdq")


def test_a_bad_line_is_one_error_line_and_exit_2(police: Path) -> None:
    failed = invoke(["bank", "import", "police", str(DATA / "text" / "bad-line.txt")], police)
    assert failed.exit_code == 2
    assert failed.stderr == "childsafe: error: bad-line.txt: line 2: not a hash: 'not-a-hash'\n"


def test_a_csv_list_with_a_bad_row_is_refused_whole(home: Path) -> None:
    failed = invoke(["bank", "import", "partner", str(DATA / "csv" / "bad-row.csv"), "--scheme", "ncmec"], home)
    assert failed.exit_code == 2
    assert failed.stderr.startswith("childsafe: error: bad-row.csv: line 3: ")
    assert json.loads(invoke(["bank", "list", "--json"], home).stdout) == []  # not even created


def test_a_missing_bank_is_exit_2(home: Path) -> None:
    missing = invoke(["bank", "show", "nobody"], home)
    assert missing.exit_code == 2 and "no bank called 'nobody'" in missing.stderr


def test_delete_removes_the_bank(police: Path) -> None:
    deleted = invoke(["bank", "delete", "police", "--json"], police)
    assert json.loads(deleted.stdout) == {"bank": "police", "deleted": True}
    assert json.loads(invoke(["bank", "list", "--json"], police).stdout) == []


def test_each_change_is_audited_as_the_os_user_whatever_user_says(police: Path) -> None:
    invoke(["bank", "delete", "police"], police)
    faked = {"USER": "someone-else", "LOGNAME": "someone-else"}
    assert invoke(["bank", "create", "empty", "--kind", "suppress"], police, env=faked).exit_code == 0
    listed = invoke(["audit", "list", "--json"], police).stdout.splitlines()
    events = [(e["action"], e["actor"], e["detail"].get("bank")) for e in map(json.loads, listed)]
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert events == [("bank.create", me, "police"), ("bank.import", me, "police"), ("bank.delete", me, "police"),
                      ("bank.create", me, "empty")]  # fmt: skip
    assert invoke(["audit", "verify"], police).exit_code == 0


# ---------------------------------------------------------------- webhooks


def test_a_webhook_without_a_secret_is_refused_naming_the_option(home: Path) -> None:
    url = "http://127.0.0.1:9/hook"
    missing = invoke(["bank", "create", "hook", "--action", "webhook", "--webhook-url", url], home)
    assert missing.exit_code == 2 and missing.stderr.count("\n") == 1
    assert "--webhook-secret of at least 16 characters" in missing.stderr


def test_a_webhook_to_loopback_is_refused_unless_allowed(home: Path) -> None:
    url = "http://127.0.0.1:9/hook"
    made = ["bank", "create", "hook", "--action", "webhook", "--webhook-url", url, "--webhook-secret", SECRET]
    private = invoke(made, home)
    assert private.exit_code == 2 and "loopback" in private.stderr
    assert invoke(["bank", "create", "hook"], home).exit_code == 0
    set_webhook = ["bank", "set-webhook", "hook", "--webhook-url", url, "--webhook-secret", SECRET]
    refused = invoke(set_webhook, home)
    assert refused.exit_code == 2 and "loopback" in refused.stderr
    allowed = invoke([*set_webhook, "--json"], home, env={"CHILDSAFE_WEBHOOK_ALLOW_PRIVATE": "1"})
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.stdout) == {"bank": "hook", "action": "webhook", "waiting_events": 0}


def test_show_never_prints_the_webhook_secret(home: Path) -> None:
    allowed = {"CHILDSAFE_WEBHOOK_ALLOW_PRIVATE": "1"}
    made = ["bank", "create", "hook", "--action", "webhook", "--webhook-url", "http://127.0.0.1:9/hook"]
    assert invoke([*made, "--webhook-secret", SECRET], home, env=allowed).exit_code == 0
    shown = invoke(["bank", "show", "hook", "--json"], home)
    assert json.loads(shown.stdout)["action"] == "webhook" and SECRET not in shown.stdout
