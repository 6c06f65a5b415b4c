"""Settings read from the environment, passed explicitly (no global state).

This is the only module that reads ``os.environ`` (tests/test_package.py
checks it): everything else is given a ``Settings`` or ``ServiceOptions``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from childsafe.errors import UsageError
from childsafe.media.budgets import ScanBudgets
from childsafe.media.limits import MediaLimits, number_setting

__all__ = [
    "Settings",
    "ServiceOptions",
    "HttpSettings",
    "ReferralSettings",
    "MATCH_DETAILS_LEVELS",
    "environment_secret",
]

#: The values of ``CHILDSAFE_MATCH_DETAILS``: which roles each one lets see a match's
#: bank hash is ``childsafe.service.context.MATCH_DETAILS``.
MATCH_DETAILS_LEVELS = ("curator", "all", "none")


@dataclass(frozen=True)
class HttpSettings:
    """How childsafe talks to outside services (hash exchanges, referrals):
    ``childsafe/http_client.py`` makes every client from these.

    Proxies come from the usual ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``
    variables (httpx reads them); ``ca_bundle`` replaces the system's
    certificate authorities (a private PKI, a TLS-inspecting proxy)."""

    #: ``CHILDSAFE_HTTP_CONNECT_TIMEOUT``: seconds to open a connection.
    connect_timeout: float = 10.0
    #: ``CHILDSAFE_HTTP_READ_TIMEOUT``: seconds without a byte from the server before a request fails.
    read_timeout: float = 60.0
    #: ``CHILDSAFE_HTTP_REQUEST_SECONDS``: the longest one request (a page, a file) may take in all,
    #: even when bytes keep trickling in: the progress guarantee of a fetch.
    request_seconds: float = 900.0
    #: ``CHILDSAFE_HTTP_RETRIES``: further tries of an idempotent request after a 5xx, 429 or timeout.
    retries: int = 3
    #: ``CHILDSAFE_HTTP_BACKOFF_SECONDS``: the first wait before a retry (doubled each time).
    backoff_seconds: float = 1.0
    #: ``CHILDSAFE_HTTP_CA_BUNDLE``: a PEM file of certificate authorities to trust instead of the system's.
    ca_bundle: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> HttpSettings:
        """The settings from ``CHILDSAFE_HTTP_*``; a bad value is a ``UsageError`` naming it."""
        default = cls()
        retries = env.get("CHILDSAFE_HTTP_RETRIES", "").strip()
        if retries and not retries.isdigit():
            raise UsageError(f"CHILDSAFE_HTTP_RETRIES must be a whole number of 0 or more, not {retries!r:.40}")
        return cls(
            connect_timeout=number_setting(env, "CHILDSAFE_HTTP_CONNECT_TIMEOUT", default.connect_timeout),
            read_timeout=number_setting(env, "CHILDSAFE_HTTP_READ_TIMEOUT", default.read_timeout),
            request_seconds=number_setting(env, "CHILDSAFE_HTTP_REQUEST_SECONDS", default.request_seconds),
            retries=int(retries) if retries else default.retries,
            backoff_seconds=number_setting(env, "CHILDSAFE_HTTP_BACKOFF_SECONDS", default.backoff_seconds),
            ca_bundle=_path(env.get("CHILDSAFE_HTTP_CA_BUNDLE")),
        )


@dataclass(frozen=True)
class ReferralSettings:
    """Who reports and where (``childsafe/referrals``). No address has a
    default: a report goes to a real service only when the operator names it.
    The NCMEC credentials are not here: ``childsafe.referrals.ncmec`` reads
    them when it sends (``CHILDSAFE_NCMEC_USER``/``CHILDSAFE_NCMEC_PASSWORD``
    or the owner-only ``ncmec_credentials_file``), so no settings object, log
    line or traceback ever holds them."""

    #: ``CHILDSAFE_NCMEC_URL``: the CyberTipline Reporting API's base address (NCMEC's test or production one).
    ncmec_url: str | None = None
    #: ``CHILDSAFE_NCMEC_CREDENTIALS_FILE``: a file (chmod 600) holding ``user:password``.
    ncmec_credentials_file: Path | None = None
    #: ``CHILDSAFE_NCMEC_XSD``: NCMEC's own report schema (from its ``/xsd``), used instead of ours.
    ncmec_xsd: Path | None = None
    #: ``CHILDSAFE_REPORTER_NAME``: the person reports are made by ("First Last").
    reporter_name: str | None = None
    #: ``CHILDSAFE_REPORTER_EMAIL``: their e-mail address (NCMEC requires one).
    reporter_email: str | None = None
    #: ``CHILDSAFE_REPORTER_ORGANISATION``: the platform's name, as registered with NCMEC or the NCA.
    reporter_organisation: str | None = None
    #: ``CHILDSAFE_REFERRAL_GPS``: put an image's EXIF GPS position into the report's EXIF summary.
    exif_gps: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ReferralSettings:
        """The settings from ``CHILDSAFE_NCMEC_*``, ``CHILDSAFE_REPORTER_*`` and ``CHILDSAFE_REFERRAL_GPS``."""
        return cls(
            ncmec_url=(env.get("CHILDSAFE_NCMEC_URL") or "").strip() or None,
            ncmec_credentials_file=_path(env.get("CHILDSAFE_NCMEC_CREDENTIALS_FILE")),
            ncmec_xsd=_path(env.get("CHILDSAFE_NCMEC_XSD")),
            reporter_name=(env.get("CHILDSAFE_REPORTER_NAME") or "").strip() or None,
            reporter_email=(env.get("CHILDSAFE_REPORTER_EMAIL") or "").strip() or None,
            reporter_organisation=(env.get("CHILDSAFE_REPORTER_ORGANISATION") or "").strip() or None,
            exif_gps=env.get("CHILDSAFE_REFERRAL_GPS", "").strip().lower() in ("1", "yes", "true", "on"),
        )


def environment_secret(name: str) -> str | None:
    """The value of the environment variable ``name`` (a credential an
    exchange was told to take from there), ``None`` when unset or empty."""
    return os.environ.get(name) or None


@dataclass(frozen=True)
class Settings:
    """Where childsafe keeps its state and how it reads media.

    ``home`` holds the default SQLite database and, later, saved indexes.
    ``database_url`` is a SQLAlchemy URL; PostgreSQL is
    ``postgresql+psycopg://user@host/db``.
    ``webhook_allow_private`` (``CHILDSAFE_WEBHOOK_ALLOW_PRIVATE=1``, an admin
    setting) lets webhooks go to loopback, private and other non-public
    addresses, which are refused otherwise (server-side request forgery).
    """

    home: Path
    database_url: str
    limits: MediaLimits = field(default_factory=MediaLimits)
    budgets: ScanBudgets = field(default_factory=ScanBudgets)
    webhook_allow_private: bool = False
    #: ``CHILDSAFE_HELP_RESOURCES``: a JSON file of help services over the packaged ones.
    help_resources: Path | None = None
    #: ``CHILDSAFE_WARNING_TEXTS``: a folder of ``warning-<lang>.json`` texts over the packaged ones.
    warning_texts: Path | None = None
    #: ``CHILDSAFE_INDEX_SNAPSHOT``: a folder of saved indexes (``childsafe index snapshot``) to start from.
    index_snapshot: Path | None = None
    #: ``CHILDSAFE_REVIEW_BREAK_MINUTES``: minutes of reviewing after which the review app suggests a break.
    review_break_minutes: float = 45.0
    #: Timeouts, retries and TLS of outside services (``CHILDSAFE_HTTP_*``).
    http: HttpSettings = field(default_factory=HttpSettings)
    #: ``CHILDSAFE_INDEX_SHARD=K/N``: this process's index holds only the entries whose id is K modulo N
    #: (``(K, N)``); ``None``: all of them.
    index_shard: tuple[int, int] | None = None
    #: ``CHILDSAFE_INDEX_SHARDS``: the base URLs of the shards 0/N..N-1/N, in order; when given,
    #: this process searches through them (a *front*) instead of holding the hashes itself.
    index_shards: tuple[str, ...] = ()
    #: ``CHILDSAFE_INDEX_SHARDS_KEY``: the curator (or admin) API key a front sends to its shards.
    index_shards_key: str | None = field(default=None, repr=False)
    #: Who reports matches and where (``CHILDSAFE_NCMEC_*``, ``CHILDSAFE_REPORTER_*``).
    referrals: ReferralSettings = field(default_factory=ReferralSettings)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Settings from ``CHILDSAFE_HOME``, ``CHILDSAFE_DATABASE_URL`` and the other ``CHILDSAFE_*`` variables."""
        env = os.environ if environ is None else environ
        home = Path(env.get("CHILDSAFE_HOME") or platformdirs.user_data_dir("childsafe"))
        url = env.get("CHILDSAFE_DATABASE_URL") or f"sqlite:///{home / 'childsafe.db'}"
        allow_private = env.get("CHILDSAFE_WEBHOOK_ALLOW_PRIVATE", "").strip().lower() in ("1", "yes", "true", "on")
        return cls(
            home=home, database_url=url, limits=MediaLimits.from_env(env), budgets=ScanBudgets.from_env(env),
            webhook_allow_private=allow_private, help_resources=_path(env.get("CHILDSAFE_HELP_RESOURCES")),
            warning_texts=_path(env.get("CHILDSAFE_WARNING_TEXTS")),
            index_snapshot=_path(env.get("CHILDSAFE_INDEX_SNAPSHOT")),
            review_break_minutes=number_setting(env, "CHILDSAFE_REVIEW_BREAK_MINUTES", cls.review_break_minutes),
            index_shard=_shard(env.get("CHILDSAFE_INDEX_SHARD", "")), index_shards=_shard_urls(env),
            index_shards_key=env.get("CHILDSAFE_INDEX_SHARDS_KEY", "").strip() or None,
            http=HttpSettings.from_env(env), referrals=ReferralSettings.from_env(env),
        )  # fmt: skip


@dataclass(frozen=True)
class ServiceOptions:
    """The service's limits, from ``CHILDSAFE_*`` settings (see docs/cli.md)."""

    max_upload_bytes: int = 50 * 1024 * 1024
    max_json_bytes: int = 8 * 1024 * 1024
    rate_per_second: float = 500.0
    auth_failures_per_minute: float = 10.0
    match_details: str = "curator"
    #: ``CHILDSAFE_DECODE_PROCESSES``: upload worker processes of each service worker.
    decode_processes: int = 1
    #: ``CHILDSAFE_WEBHOOK_POLL_SECONDS``: how often the webhook outbox is checked.
    webhook_poll_seconds: float = 2.0
    #: ``CHILDSAFE_WEBHOOK_BACKOFF_SECONDS``: the first delay before a failed delivery is retried.
    webhook_backoff_seconds: float = 30.0
    #: ``CHILDSAFE_MATCH_COUNT_SECONDS``: how often the dashboard's match counts are saved.
    match_count_seconds: float = 5.0
    #: ``CHILDSAFE_EXCHANGE_POLL_SECONDS``: how often the service looks for exchanges due a fetch (0: never).
    exchange_poll_seconds: float = 60.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceOptions:
        """Options from the environment; a bad value is a ``UsageError`` naming the setting."""
        env = os.environ if environ is None else environ
        default = cls()

        details = env.get("CHILDSAFE_MATCH_DETAILS", "").strip().lower() or default.match_details
        if details not in MATCH_DETAILS_LEVELS:
            raise UsageError(
                f"CHILDSAFE_MATCH_DETAILS must be one of {', '.join(MATCH_DETAILS_LEVELS)}, got {details!r:.40}"
            )
        return cls(
            # Sizes read as floats, as they always were ("8e6" is a size), then whole bytes.
            max_upload_bytes=int(number_setting(env, "CHILDSAFE_MAX_UPLOAD_BYTES", float(default.max_upload_bytes))),
            max_json_bytes=int(number_setting(env, "CHILDSAFE_MAX_JSON_BYTES", float(default.max_json_bytes))),
            rate_per_second=number_setting(env, "CHILDSAFE_RATE_PER_SECOND", default.rate_per_second),
            auth_failures_per_minute=number_setting(
                env, "CHILDSAFE_AUTH_FAILURES_PER_MINUTE", default.auth_failures_per_minute
            ),
            match_details=details,
            decode_processes=number_setting(env, "CHILDSAFE_DECODE_PROCESSES", default.decode_processes),
            webhook_poll_seconds=number_setting(env, "CHILDSAFE_WEBHOOK_POLL_SECONDS", default.webhook_poll_seconds),
            webhook_backoff_seconds=number_setting(
                env, "CHILDSAFE_WEBHOOK_BACKOFF_SECONDS", default.webhook_backoff_seconds
            ),
            match_count_seconds=number_setting(env, "CHILDSAFE_MATCH_COUNT_SECONDS", default.match_count_seconds),
            exchange_poll_seconds=_off_or_number(env, "CHILDSAFE_EXCHANGE_POLL_SECONDS", default.exchange_poll_seconds),
        )


def _off_or_number(env: Mapping[str, str], setting: str, default: float) -> float:
    """A positive number, or 0 (``0``, ``off``) for "turned off"."""
    if env.get(setting, "").strip().lower() in ("0", "off", "no", "false"):
        return 0.0
    return number_setting(env, setting, default)


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _shard(text: str) -> tuple[int, int] | None:
    """``CHILDSAFE_INDEX_SHARD``'s ``K/N`` as ``(K, N)``; ``None`` when unset."""
    text = text.strip()
    if not text:
        return None
    number, _, count = text.partition("/")
    if not (number.strip().isdigit() and count.strip().isdigit()) or not 0 <= int(number) < int(count):
        raise UsageError(f"CHILDSAFE_INDEX_SHARD must be K/N with 0 <= K < N (like 0/4), got {text!r:.40}")
    return int(number), int(count)


def _shard_urls(env: Mapping[str, str]) -> tuple[str, ...]:
    """``CHILDSAFE_INDEX_SHARDS``' URLs, checked against the settings that go with them."""
    urls = tuple(url.strip().rstrip("/") for url in env.get("CHILDSAFE_INDEX_SHARDS", "").split(",") if url.strip())
    if not urls:
        return ()
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"CHILDSAFE_INDEX_SHARDS must be http(s) URLs separated by commas, got {url!r:.60}")
    if env.get("CHILDSAFE_INDEX_SHARD", "").strip():
        raise UsageError("set CHILDSAFE_INDEX_SHARD (a shard) or CHILDSAFE_INDEX_SHARDS (a front), not both")
    if not env.get("CHILDSAFE_INDEX_SHARDS_KEY", "").strip():
        raise UsageError("CHILDSAFE_INDEX_SHARDS needs CHILDSAFE_INDEX_SHARDS_KEY, a curator API key for its shards")
    return urls
