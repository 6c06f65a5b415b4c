"""Webhook delivery: signing, the receiver's verifier, and the destination guard.

A webhook event (written to the outbox by ``childsafe.actions.on_match``) is
POSTed as JSON with these headers::

    X-Childsafe-Event-Id:  <the payload's event_id>
    X-Childsafe-Timestamp: <unix seconds when this attempt was signed>
    X-Childsafe-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}." + body)>

The signature covers the timestamp and the exact body bytes, so a receiver
that checks it with ``verify_webhook`` rejects an edited body and a captured
delivery replayed more than five minutes later. Each attempt is signed again
with a fresh timestamp.

Destinations are guarded against server-side request forgery: an address
that is not globally routable (loopback, private, link-local such as the
cloud metadata address 169.254.169.254, multicast, unspecified, reserved) is
refused when the webhook is set (``check_webhook_url``) and again at every
delivery, where the host is resolved, every address checked, and the
connection made to the checked address (so a DNS answer that changes between
the check and the connection cannot redirect it). Only the admin setting
``CHILDSAFE_WEBHOOK_ALLOW_PRIVATE=1`` lifts the guard. Redirects are never
followed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, select, update

from childsafe.config import Settings
from childsafe.errors import UsageError
from childsafe.store.models import Bank, WebhookEvent, utc_now

__all__ = [
    "verify_webhook",
    "sign",
    "check_webhook_url",
    "check_webhook_secret",
    "resolve_destination",
    "DestinationRefused",
    "deliver_due",
    "MAX_ATTEMPTS",
    "MIN_SECRET_LENGTH",
    "TOLERANCE_SECONDS",
    "TIMESTAMP_HEADER",
    "SIGNATURE_HEADER",
    "EVENT_ID_HEADER",
]

TIMESTAMP_HEADER = "X-Childsafe-Timestamp"
SIGNATURE_HEADER = "X-Childsafe-Signature"
EVENT_ID_HEADER = "X-Childsafe-Event-Id"

#: How far a delivery's timestamp may be from the receiver's clock (either way).
TOLERANCE_SECONDS = 300
#: A shorter shared secret could be guessed offline from one captured delivery.
MIN_SECRET_LENGTH = 16
#: Deliveries tried before an event is dead-lettered (about a day with the default delays).
MAX_ATTEMPTS = 12
#: How often an event held for want of a secret is looked at again.
NO_SECRET_RECHECK_SECONDS = 300

# Named as before the move: the service log shows deliveries under this name.
log = logging.getLogger("childsafe.service.webhooks")

# NAT64 (RFC 6052) addresses reach the IPv4 address in their last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationRefused(Exception):
    """A webhook destination that is not globally routable (and not allowed by the admin)."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Childsafe-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_webhook(
    secret: str,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> bool:
    """For receivers: True if a delivery is genuine and fresh.

    ``timestamp_header`` and ``signature_header`` are the values of
    ``X-Childsafe-Timestamp`` and ``X-Childsafe-Signature``; ``body`` the raw
    request body, byte for byte (not re-serialised JSON). False if the
    signature does not match (compared in constant time), or the timestamp is
    more than ``tolerance`` seconds before or after ``now`` (default: the
    clock), so a captured delivery cannot be replayed later. A receiver
    should still ignore an ``event_id`` it has seen (delivery is at least
    once).
    """
    if not secret or not timestamp_header or not signature_header:
        return False
    stamp = timestamp_header.strip()
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        return False
    timestamp = int(stamp)
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(expected.encode(), signature_header.strip().encode("utf-8", "replace"))


def check_webhook_secret(secret: str | None) -> None:
    """``UsageError`` unless ``secret`` is long enough to sign webhook events."""
    if not secret or len(secret) < MIN_SECRET_LENGTH:
        raise UsageError(
            f"a webhook needs {{field}} of at least {MIN_SECRET_LENGTH} characters (e.g. from `openssl rand -hex 32`)",
            field="webhook_secret",
        )


def _refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not receive webhooks, or None if it is globally routable."""
    if isinstance(address, ipaddress.IPv6Address):
        # Addresses that carry an IPv4 address which the network may reach.
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and (reason := _refusal(embedded)):
            return reason
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "not globally routable"
    return None


def resolve_destination(host: str, port: int, allow_private: bool) -> list[IPAddress]:
    """Every address ``host`` resolves to, each checked; ``DestinationRefused``
    if any of them is not globally routable (unless ``allow_private``).
    ``socket.gaierror`` if the name does not resolve."""
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = []
        for info in infos:
            # Drop an IPv6 zone ("fe80::1%eth0"): the address decides.
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if address not in addresses:
                addresses.append(address)
    if not allow_private:
        for address in addresses:
            if reason := _refusal(address):
                raise DestinationRefused(
                    f"webhook host {host} is a {reason} address ({address}); destinations must be public"
                    " (an admin can allow others with CHILDSAFE_WEBHOOK_ALLOW_PRIVATE=1)"
                )
    return addresses


def check_webhook_url(url: str | None, allow_private: bool) -> None:
    """``UsageError`` unless ``url`` is an http(s) URL whose host is a public
    address (or the admin allows private ones). A name that does not resolve
    now is accepted: every delivery resolves and checks it again."""
    try:
        parsed = httpx.URL(url or "")
    except httpx.InvalidURL:
        parsed = httpx.URL()
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise UsageError("a webhook action needs {field} http(s)://HOST/...", field="webhook_url")
    if allow_private:
        return
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        resolve_destination(parsed.raw_host.decode("ascii"), port, allow_private)
    except DestinationRefused as refused:
        raise UsageError(str(refused)) from None
    except (OSError, UnicodeError):
        pass


def _post_pinned(
    client: httpx.Client, url: str, body: bytes, headers: dict[str, str], allow_private: bool
) -> httpx.Response:
    """POST to ``url`` after checking where its host resolves, connecting to a
    checked address (the first that answers) with the original Host header
    and TLS server name, so that the certificate is still checked for the
    host name."""
    target = httpx.URL(url)
    host = target.raw_host.decode("ascii")
    port = target.port or (443 if target.scheme == "https" else 80)
    addresses = resolve_destination(host, port, allow_private)
    # "connection: close": a pooled connection is keyed by address only and
    # must not carry a request for another host name.
    headers = {**headers, "host": target.netloc.decode("ascii"), "connection": "close"}
    extensions = {"sni_hostname": host} if target.scheme == "https" else {}
    failure: httpx.ConnectError | None = None
    for address in addresses:
        try:
            return client.post(
                target.copy_with(host=str(address)), content=body, headers=headers, extensions=extensions,
                follow_redirects=False,
            )  # fmt: skip
        except httpx.ConnectError as exc:
            failure = exc
    assert failure is not None  # resolve_destination returns at least one address
    raise failure


def deliver_due(
    engine: Engine, client: httpx.Client, backoff_seconds: float, batch: int = 50, allow_private: bool | None = None
) -> int:
    """Deliver the webhook events that are due; returns how many succeeded.

    Each event is claimed before it is sent (its next attempt moved into the
    future), so several processes can deliver at once without sending one
    event twice in the normal course. Delivery is at least once: a receiver
    should ignore an ``event_id`` it has seen. ``allow_private`` defaults to
    the ``CHILDSAFE_WEBHOOK_ALLOW_PRIVATE`` setting. An event without a secret
    (made before secrets were required) is held, not sent, until
    ``childsafe bank set-webhook`` gives its bank one.
    """
    if allow_private is None:
        allow_private = Settings.from_env().webhook_allow_private
    now = utc_now()
    with engine.connect() as connection:
        due = connection.execute(
            select(WebhookEvent.id, WebhookEvent.next_attempt_at)
            .where(
                WebhookEvent.delivered_at.is_(None), WebhookEvent.dead_at.is_(None), WebhookEvent.next_attempt_at <= now
            )
            .order_by(WebhookEvent.id)
            .limit(batch)
        ).all()
    delivered = 0
    held: set[str] = set()
    for event_id, planned in due:
        with engine.begin() as connection:
            claimed = connection.execute(
                update(WebhookEvent)
                .where(
                    WebhookEvent.id == event_id,
                    WebhookEvent.next_attempt_at == planned,
                    WebhookEvent.delivered_at.is_(None),
                )
                .values(next_attempt_at=now + timedelta(seconds=60))
            ).rowcount
            event = connection.execute(select(WebhookEvent).where(WebhookEvent.id == event_id)).one()
            bank_exists = connection.scalar(select(Bank.id).where(Bank.name == event.bank)) is not None
        if not claimed:
            continue
        if not event.secret:
            _hold_unsigned(engine, event_id, event.bank, bank_exists, held)
            continue
        body = json.dumps(event.payload, sort_keys=True).encode()
        timestamp = int(time.time())
        error: str | None = None
        try:
            response = _post_pinned(
                client, event.url, body,
                {
                    "content-type": "application/json",
                    TIMESTAMP_HEADER: str(timestamp),
                    SIGNATURE_HEADER: sign(event.secret, timestamp, body),
                    EVENT_ID_HEADER: str(event.payload.get("event_id")),
                },
                allow_private,
            )  # fmt: skip
            if response.status_code >= 300:
                error = f"receiver answered {response.status_code}"
        except DestinationRefused as refused:
            error = f"refused: {refused}"
            log.warning("webhook event %s of bank %s not sent: %s", event_id, event.bank, refused)
        except OSError as exc:  # the name did not resolve
            error = f"cannot resolve the webhook host: {exc}"[:300]
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        attempts = event.attempts + 1
        with engine.begin() as connection:
            if error is None:
                values: dict[str, Any] = {"attempts": attempts, "delivered_at": utc_now(), "last_error": None}
                delivered += 1
            elif attempts >= MAX_ATTEMPTS:
                values = {"attempts": attempts, "dead_at": utc_now(), "last_error": error}
            else:
                delay = backoff_seconds * 2 ** (attempts - 1)
                values = {
                    "attempts": attempts,
                    "next_attempt_at": utc_now() + timedelta(seconds=delay),
                    "last_error": error,
                }
            connection.execute(update(WebhookEvent).where(WebhookEvent.id == event_id).values(**values))
    return delivered


def _hold_unsigned(engine: Engine, event_id: int, bank: str, bank_exists: bool, logged: set[str]) -> None:
    """An event with no secret is never sent unsigned: it waits for its bank
    to get a secret (not counted as an attempt), or, if the bank is gone, is
    dead-lettered. Logged once a round per bank."""
    if bank_exists:
        reason = f"bank {bank} has no webhook secret; set one: `childsafe bank set-webhook {bank} --webhook-secret S`"
        values: dict[str, Any] = {
            "next_attempt_at": utc_now() + timedelta(seconds=NO_SECRET_RECHECK_SECONDS),
            "last_error": reason,
        }
    else:
        reason = f"bank {bank} was deleted and the event has no webhook secret"
        values = {"dead_at": utc_now(), "last_error": reason}
    if bank not in logged:
        logged.add(bank)
        log.warning("webhook events held: %s", reason)
    with engine.begin() as connection:
        connection.execute(update(WebhookEvent).where(WebhookEvent.id == event_id).values(**values))
