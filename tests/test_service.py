"""The HTTP service, tested against a real uvicorn server on loopback, on
SQLite and on the real PostgreSQL: every route, the error statuses, and
freshness across worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Server, free_port, run_cli

ORIGINAL = "dih/bridge-1-original.jpg"
ROTATED = "dih/bridge-2-rotate-90.jpg"


@pytest.fixture
def service_env(cli_env: dict[str, str], database_url: str) -> dict[str, str]:
    return {**cli_env, "CHILDSAFE_DATABASE_URL": database_url}


@pytest.fixture
def server(service_env: dict[str, str]) -> Iterator[Server]:
    running = Server({**service_env, "CHILDSAFE_MAX_UPLOAD_BYTES": "2000000"})
    yield running
    running.stop()


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and list(body["error"]) == ["status", "message"]
    assert body["error"]["status"] == status
    return str(body["error"]["message"])


@pytest.mark.slow
def test_every_route_and_its_errors(server: Server, reference_dir: Path) -> None:
    admin, curator, matcher, deter, anonymous = (
        server.client(r) for r in ("admin", "curator", "matcher", "deter", None)
    )
    original = (reference_dir / ORIGINAL).read_bytes()

    health = anonymous.get("/v1/health").json()
    assert health["status"] == "ok" and isinstance(health["index"], dict)
    assert anonymous.get("/openapi.json").json()["info"]["title"] == "childsafe"
    assert anonymous.get("/docs").status_code == 200

    # Authentication and roles.
    _error(anonymous.post("/v1/hash", files={"file": ("a.jpg", original)}), 401)
    bad = server.client(None, key="cs_not-a-key")
    _error(bad.get("/v1/banks"), 401)
    _error(matcher.get("/v1/banks"), 403)
    _error(deter.post("/v1/hash", files={"file": ("a.jpg", original)}), 403)

    # Banks.
    created = curator.post("/v1/banks", json={"name": "police", "scheme": "uk", "pdq_threshold": 31})
    assert created.status_code == 201 and created.json()["name"] == "police"
    _error(curator.post("/v1/banks", json={"name": "police"}), 409)
    _error(curator.post("/v1/banks", json={"name": "x", "scheme": "eu"}), 422)
    _error(curator.post("/v1/banks", json={"name": "x", "pdq_threshold": 99}), 422)
    hashed = matcher.post("/v1/hash", files={"file": ("bridge.jpg", original)}).json()
    assert hashed["mime"] == "image/jpeg" and hashed["pdq_quality"] == 100
    added = curator.post(
        "/v1/banks/police/entries",
        json={"entries": [{"signal": "pdq", "value": hashed["pdq"], "category": "A", "source_id": "vic-1"},
                          {"signal": "md5", "value": hashed["md5"].upper(), "category": "A"}]},
    ).json()  # fmt: skip
    assert added["added"] == 2 and len(added["ids"]) == 2
    _error(curator.post("/v1/banks/police/entries", json={"entries": [{"signal": "md5", "value": "xyz"}]}), 422)
    _error(curator.post("/v1/banks/nobody/entries", json={"entries": [{"signal": "md5", "value": "0" * 32}]}), 404)
    assert curator.get("/v1/banks/police").json()["entries"] == 2
    assert [b["name"] for b in curator.get("/v1/banks").json()] == ["police"]
    _error(curator.get("/v1/banks/nobody"), 404)

    # Matching: at once, by upload (rotated copy), by hash, in a batch.
    matched = matcher.post("/v1/match", files={"file": ("r.jpg", (reference_dir / ROTATED).read_bytes())}).json()
    assert [(m["bank"], m["signal"], m["transform"], m["category"]) for m in matched["matches"]] == [
        ("police", "pdq", "rot270", "A")
    ]
    assert matched["hash"]["path"] == "r.jpg"
    by_hash = matcher.get("/v1/match", params={"signal": "md5", "value": hashed["md5"]}).json()
    assert by_hash["matches"][0]["entry_id"] == added["ids"][1]
    _error(matcher.get("/v1/match", params={"signal": "md5", "value": "00"}), 422)
    _error(matcher.get("/v1/match", params={"signal": "phash", "value": "00"}), 422)
    _error(matcher.get("/v1/match"), 422)
    batch = matcher.post(
        "/v1/match/batch",
        json={"queries": [{"signal": "md5", "value": "0" * 32}, {"signal": "pdq", "value": hashed["pdq"]}]},
    ).json()
    assert [len(r["matches"]) for r in batch["results"]] == [0, 1]
    _error(matcher.post("/v1/match/batch", json={"queries": [{"signal": "md5"}]}), 422)
    _error(matcher.post("/v1/match/batch", content=b"{not json", headers={"content-type": "application/json"}), 422)

    # Uploads: limit, shape, content sniffing.
    _error(matcher.post("/v1/hash", files={"file": ("big.jpg", b"\xff\xd8\xff" + bytes(3_000_000))}), 413)
    _error(matcher.post("/v1/hash", files={"other": ("a.jpg", original)}), 422)
    _error(matcher.post("/v1/hash", content=original, headers={"content-type": "image/jpeg"}), 422)
    text = matcher.post("/v1/hash", files={"file": ("photo.jpg", b"just text")}).json()
    assert text["media_type"] == "other" and text["error"]

    # Import a file, delete an entry, delete the bank.
    imported = curator.post(
        "/v1/banks/police/import",
        files={"file": ("list.txt", f"sha1 {hashed['sha1']} B\n".encode())},
        data={"format": "text"},
    )
    assert imported.json() == {"bank": "police", "added": 1, "updated": 0, "removed": 0, "rejected": 0}
    failed = curator.post("/v1/banks/police/import", files={"file": ("bad.txt", b"nonsense\n")})
    assert "bad.txt: line 1" in _error(failed, 422)
    assert curator.delete(f"/v1/banks/police/entries/{added['ids'][1]}").json()["deleted"] is True
    assert matcher.get("/v1/match", params={"signal": "md5", "value": hashed["md5"]}).json()["matches"] == []
    _error(curator.delete("/v1/banks/police/entries/999999"), 404)
    assert admin.delete("/v1/banks/police").json() == {"bank": "police", "deleted": True}
    assert matcher.get("/v1/match", params={"signal": "sha1", "value": hashed["sha1"]}).json()["matches"] == []

    # A revoked key stops working within a second (keys are cached that long).
    assert run_cli(["apikey", "revoke", "matcher-key"], server.env).returncode == 0
    time.sleep(1.2)
    _error(matcher.get("/v1/match", params={"signal": "md5", "value": "0" * 32}), 401)
    log = server.stop()
    assert "key=curator-key route=POST /v1/banks status=201" in log
    assert hashed["md5"] not in log and hashed["pdq"] not in log  # no hashes in the request log

    # Every change made through the service is audited with the key that made it.
    lines = run_cli(["audit", "list", "--json"], server.env).stdout.splitlines()
    changes = [(e["action"], e["actor"]) for e in map(json.loads, lines) if e["action"].startswith("bank.")]
    assert changes == [("bank.create", "api:curator-key"), ("bank.add", "api:curator-key"),
                       ("bank.import", "api:curator-key"), ("bank.remove", "api:curator-key"),
                       ("bank.delete", "api:admin-key")]  # fmt: skip


def test_rate_limit_gives_429_with_retry_after(service_env: dict[str, str]) -> None:
    server = Server({**service_env, "CHILDSAFE_RATE_PER_SECOND": "2"})
    try:
        client = server.client("matcher")
        statuses = [client.get("/v1/match", params={"signal": "md5", "value": "0" * 32}) for _ in range(8)]
        limited = [r for r in statuses if r.status_code == 429]
        assert limited and statuses[0].status_code == 200
        assert int(limited[0].headers["retry-after"]) >= 1
        assert "rate limit" in _error(limited[0], 429)
    finally:
        server.stop()


@pytest.mark.slow
def test_changes_are_matched_at_once_by_every_worker(service_env: dict[str, str], tmp_path: Path) -> None:
    server = Server(service_env, workers=2)
    try:
        curator, matcher = server.client("curator"), server.client("matcher")
        curator.post("/v1/banks", json={"name": "fresh"})
        for number in range(6):
            value = f"{number:032x}"
            curator.post("/v1/banks/fresh/entries", json={"entries": [{"signal": "md5", "value": value}]})
            # Several requests in a row land on both workers; each must see the entry.
            for _ in range(6):
                found = matcher.get("/v1/match", params={"signal": "md5", "value": value}).json()["matches"]
                assert len(found) == 1
        listing = tmp_path / "list.txt"
        listing.write_text("md5 " + "ab" * 16 + "\n")
        assert run_cli(["bank", "import", "fresh", str(listing)], server.env).returncode == 0  # a change from the CLI
        for _ in range(6):
            assert len(matcher.get("/v1/match", params={"signal": "md5", "value": "ab" * 16}).json()["matches"]) == 1
    finally:
        server.stop()


def test_apikey_commands(cli_env: dict[str, str]) -> None:
    created = json.loads(run_cli(["apikey", "create", "platform-1", "--role", "matcher", "--json"], cli_env).stdout)
    assert created["name"] == "platform-1" and created["role"] == "matcher" and created["key"].startswith("cs_")
    listed = json.loads(run_cli(["apikey", "list", "--json"], cli_env).stdout)
    assert [(k["name"], k["role"], k["revoked"]) for k in listed] == [("platform-1", "matcher", False)]
    assert created["key"] not in json.dumps(listed)
    again = run_cli(["apikey", "create", "platform-1", "--role", "matcher"], cli_env)
    assert again.returncode == 2 and "already exists" in again.stderr
    wrong = run_cli(["apikey", "create", "x", "--role", "root"], cli_env)
    assert wrong.returncode == 2 and "role must be one of" in wrong.stderr
    assert run_cli(["apikey", "revoke", "platform-1"], cli_env).returncode == 0
    assert json.loads(run_cli(["apikey", "list", "--json"], cli_env).stdout)[0]["revoked"] is True
    assert run_cli(["apikey", "revoke", "platform-1"], cli_env).returncode == 2
    events = [json.loads(line) for line in run_cli(["audit", "list", "--json"], cli_env).stdout.splitlines()]
    assert [(e["action"], e["detail"]) for e in events] == [
        ("apikey.create", {"name": "platform-1", "role": "matcher"}),
        ("apikey.revoke", {"name": "platform-1", "role": "matcher"}),
    ]
    assert created["key"] not in json.dumps(events)
    assert os.environ.get("CHILDSAFE_HOME") != cli_env["CHILDSAFE_HOME"]


class _Receiver:
    """A webhook receiver on loopback that can be started late (down, then up)."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.port = free_port()
        self.events: list[tuple[dict[str, str], bytes]] = []
        received = self.events

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server name)
                body = self.rfile.read(int(self.headers["content-length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server_class = http.server.ThreadingHTTPServer
        self._handler = Handler
        self._threading = threading
        self.server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> None:
        self.server = self._server_class(("127.0.0.1", self.port), self._handler)
        self._threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


@pytest.mark.slow
def test_webhook_events_survive_a_receiver_that_is_down(service_env: dict[str, str], reference_dir: Path) -> None:
    from childsafe.service.webhooks import verify_webhook

    receiver = _Receiver()
    secret = "s3cret-of-enough-length"
    server = Server(
        {**service_env, "CHILDSAFE_WEBHOOK_POLL_SECONDS": "0.2", "CHILDSAFE_WEBHOOK_BACKOFF_SECONDS": "0.2",
         "CHILDSAFE_WEBHOOK_ALLOW_PRIVATE": "1"}  # the receiver is on loopback
    )  # fmt: skip
    try:
        curator = server.client("curator")
        url = f"http://127.0.0.1:{receiver.port}/hook"
        made = curator.post(
            "/v1/banks", json={"name": "hotline", "action": "webhook", "webhook_url": url, "webhook_secret": secret}
        )
        assert made.status_code == 201 and made.json()["action"] == "webhook" and secret not in made.text
        original = (reference_dir / ORIGINAL).read_bytes()
        pdq = curator.post("/v1/hash", files={"file": ("o.jpg", original)}).json()["pdq"]
        curator.post("/v1/banks/hotline/entries", json={"entries": [{"signal": "pdq", "value": pdq}]})
        matched = curator.post(
            "/v1/match", files={"file": ("upload.jpg", (reference_dir / ROTATED).read_bytes())}
        ).json()
        assert len(matched["matches"]) == 1
        time.sleep(2)  # the receiver is down: deliveries fail and are retried
        assert receiver.events == []
        receiver.start()
        deadline = time.monotonic() + 30
        while not receiver.events and time.monotonic() < deadline:
            time.sleep(0.1)
        assert receiver.events, "the event was lost"
        headers, body = receiver.events[0]
        assert verify_webhook(secret, headers["x-childsafe-timestamp"], headers["x-childsafe-signature"], body)
        event = json.loads(body)
        assert event["bank"] == "hotline" and event["type"] == "match" and event["key"] == "curator-key"
        assert event["matches"][0]["transform"] == "rot270" and event["content"]["sha256"] == matched["hash"]["sha256"]
        assert {json.loads(b)["event_id"] for _, b in receiver.events} == {
            event["event_id"]
        }  # one event (at least once)
    finally:
        server.stop()
        receiver.stop()


def test_preserved_uploads_equal_what_was_sent_and_expire(service_env: dict[str, str], reference_dir: Path) -> None:
    import hashlib
    import stat

    import sqlalchemy as sa

    from childsafe.service.actions import preserved_path, purge_expired
    from childsafe.store import open_database

    server = Server(service_env)
    try:
        curator = server.client("curator")
        assert (
            curator.post("/v1/banks", json={"name": "keep", "action": "preserve", "preserve_days": 30}).status_code
            == 201
        )
        _error(curator.post("/v1/banks", json={"name": "bad", "action": "webhook"}), 422)
        loopback = {"name": "bad", "action": "webhook", "webhook_url": "http://127.0.0.1:9/", "webhook_secret": "s" * 20}
        assert "CHILDSAFE_WEBHOOK_ALLOW_PRIVATE" in _error(curator.post("/v1/banks", json=loopback), 422)
        no_secret = {"name": "bad", "action": "webhook", "webhook_url": "https://8.8.8.8/"}
        assert "--webhook-secret" in _error(curator.post("/v1/banks", json=no_secret), 422)
        upload = (reference_dir / ORIGINAL).read_bytes()
        sha256 = hashlib.sha256(upload).hexdigest()
        curator.post("/v1/banks/keep/entries", json={"entries": [{"signal": "sha256", "value": sha256}]})
        unmatched = (reference_dir / "misc" / "wee.jpg").read_bytes()
        curator.post("/v1/match", files={"file": ("other.jpg", unmatched)})
        assert len(curator.post("/v1/match", files={"file": ("upload.jpg", upload)}).json()["matches"]) == 1
    finally:
        server.stop()
    home = Path(service_env["CHILDSAFE_HOME"])
    kept = preserved_path(home, sha256)
    assert kept.read_bytes() == upload
    assert stat.S_IMODE(kept.stat().st_mode) == 0o400
    assert not preserved_path(home, hashlib.sha256(unmatched).hexdigest()).exists()  # only matches are kept
    audit = [
        json.loads(line)
        for line in run_cli(["audit", "list", "--action", "preserve", "--json"], service_env).stdout.splitlines()
    ]
    assert audit[0]["detail"]["sha256"] == sha256 and audit[0]["actor"] == "api:curator-key"
    engine = open_database(service_env["CHILDSAFE_DATABASE_URL"])
    try:
        assert purge_expired(engine, home) == 0 and kept.exists()  # not yet expired
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE preserved_items SET expires_at = '2000-01-01 00:00:00+00:00'"))
        assert purge_expired(engine, home) == 1 and not kept.exists()
    finally:
        engine.dispose()


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors(cli_env: dict[str, str]) -> None:
    server = Server(cli_env)
    try:
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "st"), "run", f"{server.url}/openapi.json",
                "-H", f"Authorization: Bearer {server.keys['admin']}",
                "--checks", "not_a_server_error", "--max-examples", "25", "--generation-deterministic",
            ],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-3000:]
        assert "passed" in result.stdout
    finally:
        server.stop()


def test_deter_routes(service_env: dict[str, str], tmp_path: Path) -> None:
    terms = tmp_path / "terms.txt"
    terms.write_text("purple umbrella\n")
    assert run_cli(["deter", "terms", "import", str(terms), "--list", "kw"], service_env).returncode == 0
    server = Server(service_env)
    try:
        deter, matcher = server.client("deter"), server.client("matcher")
        _error(matcher.post("/v1/deter/check", json={"text": "purple umbrella"}), 403)
        answer = deter.post("/v1/deter/check", json={"text": "pürple umbrela", "region": "NL"}).json()
        assert answer["intercept"] is True and answer["matched"] == {"kind": "term", "list": "kw"}
        assert [r["phone"] for r in answer["warning"]["resources"]] == ["0800 266 64 36"]
        assert deter.post("/v1/deter/check", json={"text": "tulips"}).json()["intercept"] is False
        terms.write_text("velvet lantern\n")  # a list changed while the service runs
        assert run_cli(["deter", "terms", "import", str(terms), "--list", "kw"], service_env).returncode == 0
        assert deter.post("/v1/deter/check", json={"text": "VELVET LANTERN"}).json()["intercept"] is True
        stats = deter.get("/v1/deter/stats").json()
        assert stats == [
            {"day": stats[0]["day"], "region": "GB", "list": "kw", "outcome": "shown", "count": "<10"},
            {"day": stats[0]["day"], "region": "NL", "list": "kw", "outcome": "shown", "count": "<10"},
        ]
        log = server.stop()
        assert "umbrella" not in log and "lantern" not in log  # no query text in the request log
    finally:
        server.stop()
