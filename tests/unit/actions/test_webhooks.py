"""Webhooks: a required secret, a signature over timestamp and body that the
receiver's verifier checks, and the guard that keeps deliveries away from
loopback, private and other non-public addresses (at creation and at every
delivery), with a real HTTP receiver on loopback."""

from __future__ import annotations

import http.server
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from support import free_port, serve_in_thread

from childsafe.actions.on_match import act_on_matches
from childsafe.actions.webhooks import check_webhook_url, deliver_due, sign, verify_webhook
from childsafe.banks import BankAction, create_bank, set_webhook
from childsafe.errors import UsageError
from childsafe.index import Match
from childsafe.signals import FileHashes
from childsafe.store import audit_events
from childsafe.store.models import Bank, WebhookEvent

SECRET = "0123456789abcdef-receiver-secret"


class Receiver:
    """A webhook receiver on loopback: records every request; ``/moved``
    answers a redirect to ``/hook``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        requests = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server name)
                body = self.rfile.read(int(self.headers["content-length"]))
                requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if self.path == "/moved":
                    self.send_response(307)
                    self.send_header("location", "/hook")
                else:
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server, self.thread = serve_in_thread(self.port, Handler)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.stop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, follow_redirects=False) as http_client:
        yield http_client


def _match(engine: Engine, bank: str) -> None:
    """A match in ``bank``, as the service records it: an event in the outbox."""
    hashes = FileHashes("upload.jpg", 3, "image", "image/jpeg", "a" * 32, "b" * 40, "c" * 64, None, None, None)
    match = Match(bank, "1", None, "sha256", "c" * 64, 0, "A", "original")
    act_on_matches(engine, Path("unused"), [match], hashes, None, "platform-key")


def _events(engine: Engine) -> list[sa.Row[Any]]:
    with engine.connect() as connection:
        return list(connection.execute(sa.select(WebhookEvent).order_by(WebhookEvent.id)).all())


def test_the_verifier_accepts_a_fresh_genuine_delivery_only() -> None:
    body = b'{"event_id": "e1", "type": "match"}'
    now = 1_700_000_000
    signature = sign(SECRET, now, body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify_webhook(SECRET, str(now), signature, body, now=now + 299)
    assert verify_webhook(SECRET, str(now), signature, body, now=now - 299)  # a receiver's clock a little behind
    assert not verify_webhook(SECRET, str(now), signature, body + b" ", now=now)  # tampered body
    assert not verify_webhook(SECRET, str(now), signature, body.replace(b"e1", b"e2"), now=now)
    assert not verify_webhook(SECRET, str(now), signature, body, now=now + 301)  # replayed later
    assert not verify_webhook(SECRET, str(now), signature, body, now=now - 301)  # from the future
    assert not verify_webhook(SECRET + "x", str(now), signature, body, now=now)  # wrong secret
    assert not verify_webhook(SECRET, str(now + 1), signature, body, now=now)  # timestamp changed
    assert not verify_webhook(SECRET, None, signature, body, now=now)
    assert not verify_webhook(SECRET, str(now), None, body, now=now)
    assert not verify_webhook(SECRET, "17e8", signature, body, now=now)
    assert not verify_webhook(SECRET, str(now), signature.upper(), body, now=now)
    assert not verify_webhook("", str(now), sign("", now, body), body, now=now)  # no secret, no trust
    assert verify_webhook(SECRET, str(now), signature, body, now=now + 500, tolerance=600)
    fresh = int(time.time())  # the default clock
    assert verify_webhook(SECRET, str(fresh), sign(SECRET, fresh, body), body)
    assert not verify_webhook(SECRET, str(fresh - 400), sign(SECRET, fresh - 400, body), body)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "https://172.16.0.1/hook",
        "http://192.168.1.10/hook",
        "http://[fd12:3456::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/hook",
        "http://224.0.0.1/hook",
        "http://0.0.0.0/hook",
        "http://100.64.0.1/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[64:ff9b::a00:1]/hook",
        "http://[2002:a00:1::]/hook",
        "http://2130706433/hook",  # 127.0.0.1 written as one number
    ],
)
def test_non_public_destinations_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(UsageError, match="CHILDSAFE_WEBHOOK_ALLOW_PRIVATE=1") as refused:
        check_webhook_url(url, allow_private=False)
    assert "\n" not in str(refused.value)
    check_webhook_url(url, allow_private=True)


def test_public_and_malformed_destinations() -> None:
    check_webhook_url("https://8.8.8.8/hook", allow_private=False)  # checked only: nothing is sent
    for bad in (None, "", "ftp://8.8.8.8/", "8.8.8.8/hook", "https:///hook", "http://[::1/"):
        with pytest.raises(UsageError, match="needs webhook_url http"):
            check_webhook_url(bad, allow_private=True)


def test_a_webhook_needs_a_secret_and_a_public_destination(engine: Engine) -> None:
    url = "http://127.0.0.1:9/hook"
    for secret in (None, "", "short-secret"):
        with pytest.raises(UsageError, match="needs webhook_secret of at least 16 characters"):
            create_bank(engine, "hook", action=BankAction("webhook", url, secret, allow_private=True))
    with pytest.raises(UsageError, match="loopback"):
        create_bank(engine, "hook", action=BankAction("webhook", url, SECRET))
    with pytest.raises(UsageError, match="link-local"):
        create_bank(engine, "hook", action=BankAction("webhook", "http://169.254.169.254/", SECRET))
    with engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(Bank)) == 0
    create_bank(engine, "hook", action=BankAction("webhook", url, SECRET, allow_private=True))


def test_deliveries_are_signed_pinned_and_verifiable(engine: Engine, receiver: Receiver, client: httpx.Client) -> None:
    # "localhost" is resolved and checked by the sender, which connects to the
    # checked address itself and sends the name as the Host header.
    url = f"http://localhost:{receiver.port}/hook"
    create_bank(engine, "hotline", action=BankAction("webhook", url, SECRET, allow_private=True))
    _match(engine, "hotline")
    assert deliver_due(engine, client, 0.01, allow_private=True) == 1
    [(path, headers, body)] = receiver.requests
    assert path == "/hook" and headers["host"] == f"localhost:{receiver.port}"
    timestamp, signature = headers["x-childsafe-timestamp"], headers["x-childsafe-signature"]
    assert abs(int(timestamp) - time.time()) < 60
    assert verify_webhook(SECRET, timestamp, signature, body)
    assert not verify_webhook(SECRET, timestamp, signature, body.replace(b"hotline", b"hotlinf"))
    assert not verify_webhook("another-secret-of-length", timestamp, signature, body)
    assert not verify_webhook(SECRET, timestamp, signature, body, now=int(timestamp) + 301)
    event = json.loads(body)
    assert headers["x-childsafe-event-id"] == event["event_id"]
    assert event["bank"] == "hotline" and event["key"] == "platform-key" and event["content"]["sha256"] == "c" * 64
    [row] = _events(engine)
    assert row.delivered_at is not None and row.attempts == 1
    assert deliver_due(engine, client, 0.01, allow_private=True) == 0  # delivered once


def test_the_connection_goes_to_the_checked_address(engine: Engine) -> None:
    """What the sender hands the HTTP client: the checked address as the place
    to connect, the name as Host and TLS server name (so the certificate is
    still checked for the name, and a second DNS answer is never asked for)."""
    seen: list[httpx.Request] = []

    def transport(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    action = BankAction("webhook", "https://localhost:8443/in", SECRET, allow_private=True)
    create_bank(engine, "hotline", action=action)
    _match(engine, "hotline")
    with httpx.Client(transport=httpx.MockTransport(transport)) as recording:
        assert deliver_due(engine, recording, 0.01, allow_private=True) == 1
    [request] = seen
    assert request.url.host in ("127.0.0.1", "::1") and request.url.port == 8443 and request.url.path == "/in"
    assert request.headers["host"] == "localhost:8443" and request.extensions["sni_hostname"] == "localhost"
    assert request.headers["connection"] == "close"


def _private_hotline_with_a_match(engine: Engine, receiver: Receiver) -> None:
    """A webhook bank on loopback (made while the admin allowed it) with one match waiting."""
    create_bank(
        engine, "hotline",
        action=BankAction("webhook", f"http://127.0.0.1:{receiver.port}/hook", SECRET, allow_private=True),
    )  # fmt: skip
    _match(engine, "hotline")


def test_a_private_destination_is_refused_at_delivery(
    engine: Engine, receiver: Receiver, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    # Made while the admin allowed private destinations, delivered after the
    # setting was taken away (or a name that now resolves to a private address).
    _private_hotline_with_a_match(engine, receiver)
    with caplog.at_level(logging.WARNING, logger="childsafe.service.webhooks"):
        assert deliver_due(engine, client, 0.01, allow_private=False) == 0
    assert receiver.requests == []
    [row] = _events(engine)
    assert row.delivered_at is None and row.attempts == 1 and "loopback" in row.last_error
    assert "loopback" in caplog.text
    time.sleep(0.05)  # past the retry delay
    assert deliver_due(engine, client, 0.01, allow_private=True) == 1
    assert len(receiver.requests) == 1


def test_the_setting_is_read_from_the_environment(
    engine: Engine, receiver: Receiver, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    _private_hotline_with_a_match(engine, receiver)
    monkeypatch.delenv("CHILDSAFE_WEBHOOK_ALLOW_PRIVATE", raising=False)
    assert deliver_due(engine, client, 0.01) == 0 and receiver.requests == []
    time.sleep(0.05)
    monkeypatch.setenv("CHILDSAFE_WEBHOOK_ALLOW_PRIVATE", "1")
    assert deliver_due(engine, client, 0.01) == 1 and len(receiver.requests) == 1


def test_redirects_are_not_followed(engine: Engine, receiver: Receiver, client: httpx.Client) -> None:
    url = f"http://127.0.0.1:{receiver.port}/moved"
    create_bank(engine, "hotline", action=BankAction("webhook", url, SECRET, allow_private=True))
    _match(engine, "hotline")
    assert deliver_due(engine, client, 0.01, allow_private=True) == 0
    assert [path for path, _, _ in receiver.requests] == ["/moved"]
    [row] = _events(engine)
    assert row.delivered_at is None and row.last_error == "receiver answered 307"


def test_events_without_a_secret_wait_until_the_bank_gets_one(
    engine: Engine, receiver: Receiver, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{receiver.port}/hook"
    create_bank(engine, "old", action=BankAction("webhook", url, SECRET, allow_private=True))
    with engine.begin() as connection:  # a bank made before secrets were required
        connection.execute(sa.update(Bank).where(Bank.name == "old").values(webhook_secret=None))
    _match(engine, "old")
    _match(engine, "old")
    with caplog.at_level(logging.WARNING, logger="childsafe.service.webhooks"):
        assert deliver_due(engine, client, 0.01, allow_private=True) == 0
    assert receiver.requests == []
    assert "childsafe bank set-webhook old --webhook-secret" in caplog.text
    assert caplog.text.count("bank old has no webhook secret") == 1  # once a round, not once an event
    for row in _events(engine):
        assert row.attempts == 0 and row.dead_at is None and "set-webhook" in row.last_error
    assert deliver_due(engine, client, 0.01, allow_private=True) == 0  # held, not retried at once

    with pytest.raises(UsageError, match="webhook_secret of at least"):
        set_webhook(engine, "old", "short", allow_private=True)
    with pytest.raises(UsageError, match="loopback"):
        set_webhook(engine, "old", SECRET)
    assert set_webhook(engine, "old", SECRET, allow_private=True, actor="admin") == 2
    assert deliver_due(engine, client, 0.01, allow_private=True) == 2
    for _, headers, body in receiver.requests:
        assert verify_webhook(SECRET, headers["x-childsafe-timestamp"], headers["x-childsafe-signature"], body)
    [audited] = [e for e in audit_events(engine) if e.action == "bank.webhook"]
    assert audited.actor == "admin" and SECRET not in json.dumps(audited.detail)
    assert audited.detail == {"bank": "old", "action": "webhook", "webhook_host": "127.0.0.1", "waiting_events": 2}
