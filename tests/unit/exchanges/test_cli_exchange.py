"""``childsafe exchange add|list|fetch|remove`` in-process, against a list on
a loopback server: thin commands, ``--json``, one-line errors and exit codes,
and the credential never printed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import md5s
from servers import LocalServer, Reply, Request
from support import invoke

SECRET = "cli-secret-never-printed"


@pytest.fixture
def list_server() -> Iterator[LocalServer]:
    body = "".join(f"{v}\n" for v in md5s(12, 30)).encode()

    def reply(request: Request) -> Reply:
        if request.basic_auth() != f"reader:{SECRET}":
            return Reply(401)
        return Reply(200, body, {"ETag": '"v1"'})

    server = LocalServer(reply)
    yield server
    server.close()


def test_add_list_fetch_remove(home: Path, list_server: LocalServer, tmp_path: Path) -> None:
    assert invoke(["bank", "create", "shared"], home).exit_code == 0
    credentials = tmp_path / "feed.credentials"
    credentials.write_text(f"reader:{SECRET}")
    credentials.chmod(0o644)
    url = list_server.url("/list.txt")
    add = ["exchange", "add", "feed", "--kind", "url", "--bank", "shared", "--url", url, "--credentials-file"]
    refused = invoke([*add, str(credentials)], home)
    assert refused.exit_code == 2 and "chmod 600" in refused.stderr
    credentials.chmod(0o600)
    added = invoke([*add, str(credentials), "--every", "600", "--json"], home)
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["source"] == url
    too_often = invoke(
        ["exchange", "add", "x", "--kind", "url", "--bank", "shared", "--url", url, "--every", "5"], home
    )
    assert too_often.exit_code == 2 and "--every must be at least 60 seconds" in too_often.stderr
    fetched = invoke(["exchange", "fetch", "feed", "--json"], home)
    assert fetched.exit_code == 0, fetched.output
    assert json.loads(fetched.stdout) | {} == {
        "exchange": "feed", "bank": "shared", "outcome": "ok", "resumed": False, "pages": 1,
        "added": 12, "updated": 0, "removed": 0, "rejected": 0,
    }  # fmt: skip
    again = invoke(["exchange", "fetch", "feed"], home)
    assert again.exit_code == 0 and again.stdout.startswith("feed: ok: 0 added")
    listed = invoke(["exchange", "list", "--json"], home)
    (info,) = json.loads(listed.stdout)
    assert (info["name"], info["bank"], info["every_seconds"], info["last_outcome"]) == ("feed", "shared", 600, "ok")
    plain = invoke(["exchange", "list"], home)
    assert "feed\turl\tshared" in plain.stdout
    for output in (added.output, fetched.output, listed.output, plain.output):
        assert SECRET not in output
    missing = invoke(["exchange", "fetch", "nope"], home)
    assert missing.exit_code == 2 and "no exchange called 'nope'" in missing.stderr
    assert invoke(["exchange", "remove", "feed"], home).exit_code == 0
    assert json.loads(invoke(["exchange", "list", "--json"], home).stdout) == []


def test_a_failed_fetch_is_exit_1_with_one_line(home: Path, list_server: LocalServer) -> None:
    assert invoke(["bank", "create", "shared"], home).exit_code == 0
    url = list_server.url("/list.txt")
    assert invoke(["exchange", "add", "feed", "--kind", "url", "--bank", "shared", "--url", url], home).exit_code == 0
    failed = invoke(["exchange", "fetch", "feed"], home)
    assert failed.exit_code == 1
    assert failed.stderr.strip().splitlines() == [
        f"childsafe: error: GET {url}: HTTP 401: the credentials were refused; check them"
    ]
