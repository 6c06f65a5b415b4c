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
from support import Server, free_port, run_cli

from childsafe.service.context import SYNC_SECONDS

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
    # A matcher is not shown the bank's exact hash or the supplier's id (an oracle for evasion); a curator is.
    pdq_query = {"signal": "pdq", "value": hashed["pdq"]}
    (withheld,) = matcher.get("/v1/match", params=pdq_query).json()["matches"]
    (shown,) = curator.get("/v1/match", params=pdq_query).json()["matches"]
    assert (withheld["value"], withheld["source_id"]) == (None, None) and withheld["category"] == "A"
    assert (shown["value"], shown["source_id"]) == (hashed["pdq"], "vic-1")
    assert [(m["value"], m["source_id"]) for m in matched["matches"]] == [(None, None)]
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
        # A batch costs one request a query: 20 queries leave this key (2 a second) waiting about 9 s.
        curator = server.client("curator")
        batch = {"queries": [{"signal": "md5", "value": f"{n:032x}"} for n in range(20)]}
        assert curator.post("/v1/match/batch", json=batch).status_code == 200
        after = curator.get("/v1/match", params={"signal": "md5", "value": "0" * 32})
        assert "rate limit" in _error(after, 429) and int(after.headers["retry-after"]) >= 5
    finally:
        server.stop()


def test_rate_limits_are_shared_by_processes(database_url: str) -> None:
    from childsafe.service.limits import SharedRateLimiter, limiter_engine
    from childsafe.store import open_database

    open_database(database_url).dispose()
    # Two limiters with their own engines: two worker processes, or two machines.
    first, second = (SharedRateLimiter(limiter_engine(database_url), rate=1, burst=3) for _ in range(2))
    try:
        assert [first.take("key:a"), second.take("key:a"), first.take("key:a")] == [0, 0, 0]
        assert second.take("key:a") >= 1 and first.take("key:a") >= 1  # the burst of 3 is spent, in both
        assert first.take("key:b", cost=10) == 0  # a batch bigger than what is left goes through ...
        assert second.take("key:b") >= 8  # ... and leaves a debt every process waits out
        leasing, other = (SharedRateLimiter(limiter_engine(database_url), 0.1, 100, lease=10) for _ in range(2))
        assert [leasing.take("key:c") for _ in range(95)] == [0] * 95  # 10 leases of 10 taken from the bucket
        assert other.take("key:c") >= 1  # so the other process finds it empty, with 5 left in the lease
        assert [leasing.take("key:c") for _ in range(6)] == [0] * 5 + [10]
    finally:
        for limiter in (first, second, leasing, other):
            limiter.engine.dispose()


def test_a_locked_sqlite_database_does_not_stall_rate_limits(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from childsafe.service.limits import SharedRateLimiter, limiter_engine
    from childsafe.store import open_database

    url = f"sqlite:///{tmp_path / 'childsafe.db'}"
    importer = open_database(url)
    limiter = SharedRateLimiter(limiter_engine(url), rate=1, burst=2)
    try:
        # A writer holds the lock, as a long bank import does.
        with importer.connect().execution_options(sqlite_immediate=True) as connection, connection.begin():
            assert [limiter.take("key:a") for _ in range(3)][:2] == [0, 0]  # counted in this process meanwhile
            assert limiter.take("key:a") >= 1
        with importer.connect() as connection:
            assert connection.scalar(sa.text("SELECT count(*) FROM rate_limits")) == 0
    finally:
        limiter.engine.dispose()
        importer.dispose()


def test_match_details_are_withheld_by_role() -> None:
    from childsafe.config import MATCH_DETAILS_LEVELS, ServiceOptions
    from childsafe.errors import UsageError
    from childsafe.index import Match
    from childsafe.service.context import MATCH_DETAILS, shown_matches

    match = Match("police", "7", "vic-1", "pdq", "ab" * 32, 4, "A", "none")
    assert [(m["value"], m["source_id"], m["category"]) for m in shown_matches([match], "matcher")] == [
        (None, None, "A")
    ]
    assert shown_matches([match], "curator")[0]["value"] == "ab" * 32
    assert shown_matches([match], "matcher", "all")[0]["source_id"] == "vic-1"
    assert shown_matches([match], "admin", "none")[0]["value"] is None
    assert ServiceOptions.from_env({"CHILDSAFE_MATCH_DETAILS": "ALL"}).match_details == "all"
    with pytest.raises(UsageError, match="CHILDSAFE_MATCH_DETAILS must be one of"):
        ServiceOptions.from_env({"CHILDSAFE_MATCH_DETAILS": "matcher"})
    with pytest.raises(UsageError, match="CHILDSAFE_MAX_JSON_BYTES must be a number"):
        ServiceOptions.from_env({"CHILDSAFE_MAX_JSON_BYTES": "8M"})
    assert tuple(MATCH_DETAILS) == MATCH_DETAILS_LEVELS  # every accepted value says who sees details


def test_service_settings_of_the_webhook_loop_and_decoding_are_checked() -> None:
    from childsafe.config import ServiceOptions
    from childsafe.errors import UsageError

    options = ServiceOptions.from_env(
        {
            "CHILDSAFE_WEBHOOK_POLL_SECONDS": "0.2",
            "CHILDSAFE_WEBHOOK_BACKOFF_SECONDS": "5",
            "CHILDSAFE_DECODE_PROCESSES": "3",
        }
    )
    assert (options.webhook_poll_seconds, options.webhook_backoff_seconds, options.decode_processes) == (0.2, 5.0, 3)
    assert ServiceOptions.from_env({}).decode_processes == 1
    with pytest.raises(UsageError, match="CHILDSAFE_WEBHOOK_POLL_SECONDS must be a number"):
        ServiceOptions.from_env({"CHILDSAFE_WEBHOOK_POLL_SECONDS": "soon"})
    with pytest.raises(UsageError, match="CHILDSAFE_DECODE_PROCESSES must be a number"):
        ServiceOptions.from_env({"CHILDSAFE_DECODE_PROCESSES": "1.5"})
    with pytest.raises(UsageError, match="CHILDSAFE_WEBHOOK_BACKOFF_SECONDS must be above 0"):
        ServiceOptions.from_env({"CHILDSAFE_WEBHOOK_BACKOFF_SECONDS": "0"})


def _post_raw(port: int, path: str, headers: dict[str, str], size: int, chunked: bool) -> int:
    """POST a ``size``-byte JSON-looking body over a raw socket (declared, or
    chunked with no length); the status of the answer. The whole body is sent
    even when the answer comes first, as an attacker would."""
    import select
    import socket

    piece = b'{"signal": "md5", "value": "00000000000000000000000000000000"}, ' * 16_384  # 1 MiB
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}")
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            for start in range(0, size, len(piece)):
                part = piece[: size - start]
                sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n" if chunked else part)
                while b"\r\n\r\n" not in answer and select.select([sock], [], [], 0)[0]:
                    answer += sock.recv(65536) or b"\r\n\r\n"
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server may close the connection once it has answered
            pass
        while b"\r\n\r\n" not in answer:
            received = sock.recv(65536)
            if not received:
                break
            answer += received
    return int(answer.split(b" ", 2)[1])


def _peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


@pytest.mark.slow
def test_bodies_are_capped_and_keys_checked_before_reading(cli_env: dict[str, str]) -> None:
    server = Server(cli_env)
    try:
        pid = server.process.pid
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak resident size starts again from now
        before = _peak_rss_mib(pid)
        huge = 256 * 1024 * 1024
        key = {"Authorization": f"Bearer {server.keys['matcher']}"}
        # No key, or a wrong one: 401 before one byte of the body is read, declared or chunked.
        assert _post_raw(server.port, "/v1/match/batch", {}, huge, chunked=False) in (401, 413)
        assert _post_raw(server.port, "/v1/match/batch", {}, huge, chunked=True) == 401
        assert _post_raw(server.port, "/v1/banks", {"Authorization": "Bearer cs_wrong"}, huge, chunked=True) == 401
        # A valid key: 413 from the declared length at once, or while a chunked body streams past the cap.
        assert _post_raw(server.port, "/v1/match/batch", key, huge, chunked=False) == 413
        assert _post_raw(server.port, "/v1/match/batch", key, huge, chunked=True) == 413
        grown = _peak_rss_mib(pid) - before
        assert grown < 150, f"the server grew by {grown:.0f} MiB"
        # A 10,000-query batch fits the JSON cap.
        matcher = server.client("matcher")
        batch = {"queries": [{"signal": "pdq", "value": f"{n:064x}"} for n in range(10_000)]}
        assert len(matcher.post("/v1/match/batch", json=batch).json()["results"]) == 10_000

        # Failed keys are limited per client address (10 a minute by default), then 429 with Retry-After
        # for every request of that address that needs a key.
        wrong = server.client(None, key="cs_guessed")
        statuses = [wrong.get("/v1/banks").status_code for _ in range(12)]
        # cs_wrong above was the first failure (one more may have been earned back since: 1 every 6 s)
        assert statuses[:9] == [401] * 9 and statuses.count(401) <= 10 and statuses[-2:] == [429, 429]
        refused = wrong.get("/v1/banks")
        assert "failed API key attempts" in _error(refused, 429) and int(refused.headers["retry-after"]) >= 1
        assert server.client("admin").get("/v1/banks").status_code == 429
        assert server.client(None).get("/v1/health").status_code == 200  # public routes need no key
        log = server.stop()
        assert "route=GET /v1/banks status=429" in log and "route=POST /v1/match/batch status=413" in log
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
            time.sleep(2 * SYNC_SECONDS)  # each worker follows the change log at most this often
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


def test_get_match_answered_by_the_guard_is_the_routes_answer(server: Server) -> None:
    """``GET /v1/match`` in its plain form is answered by the request guard
    (``match_hash_directly``); with an extra parameter FastAPI's route answers
    it. Both answers must be the same, and everything else the route's."""
    curator, matcher, deter = server.client("curator"), server.client("matcher"), server.client("deter")
    curator.post("/v1/banks", json={"name": "police", "scheme": "uk"})
    pdq = "f" * 48 + "0" * 16
    entries = [
        {"signal": "md5", "value": "ab" * 16, "category": "A", "source_id": "vic-1"},
        {"signal": "pdq", "value": pdq, "category": "B", "source_id": "vic-2"},
    ]
    assert curator.post("/v1/banks/police/entries", json={"entries": entries}).status_code < 300
    time.sleep(2 * SYNC_SECONDS)
    for client in (matcher, curator):
        for signal, value in (("md5", "ab" * 16), ("pdq", pdq[:-1] + "1"), ("md5", "cd" * 16), ("MD5", "AB" * 16)):
            direct = client.get("/v1/match", params={"signal": signal, "value": value})
            routed = client.get("/v1/match", params={"signal": signal, "value": value, "via": "fastapi"})
            assert direct.status_code == routed.status_code == 200
            assert direct.json() == routed.json()
            assert direct.headers["content-type"] == routed.headers["content-type"] == "application/json"
            assert direct.headers["content-length"] == str(len(direct.content))
    found = matcher.get("/v1/match", params={"signal": "md5", "value": "ab" * 16}).json()["matches"]
    assert [(m["category"], m["value"], m["source_id"]) for m in found] == [("A", None, None)]  # hidden from matchers
    found = curator.get("/v1/match", params={"signal": "md5", "value": "ab" * 16}).json()["matches"]
    assert [(m["category"], m["value"], m["source_id"]) for m in found] == [("A", "ab" * 16, "vic-1")]
    # What the guard declines, the route answers: its errors, and repeated parameters (the last one counts).
    assert "value" in _error(matcher.get("/v1/match", params={"signal": "md5"}), 422)
    _error(matcher.get("/v1/match", params={"signal": "md5", "value": "xyz"}), 422)
    _error(matcher.get("/v1/match", params={"signal": "nope", "value": "ab" * 16}), 422)
    _error(deter.get("/v1/match", params={"signal": "md5", "value": "ab" * 16}), 403)
    _error(server.client(None).get("/v1/match", params={"signal": "md5", "value": "ab" * 16}), 401)
    repeated = matcher.get("/v1/match?signal=md5&value=" + "00" * 16 + "&value=" + "ab" * 16)
    assert len(repeated.json()["matches"]) == 1


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
    from childsafe.actions.webhooks import verify_webhook

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

    from childsafe.actions.preservation import preserved_path, purge_expired
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
        assert "webhook_secret of at least 16 characters" in _error(curator.post("/v1/banks", json=no_secret), 422)
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
