"""A hash list at a URL fetched into a bank, against a real HTTP server on
loopback: ETag and 304, a changed list's deletions (only the exchange's own
entries), 5xx then success, timeouts and stalls, malformed lists, an
interrupted fetch resumed, and credentials kept out of everything."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import audit_text, bank_entries, md5s
from servers import LocalServer, Reply, Request

from childsafe.banks import create_bank, import_bank_stream
from childsafe.config import HttpSettings
from childsafe.errors import ConflictError, InputFormatError, RemoteError, UsageError
from childsafe.exchanges import FetchResult, add_exchange, fetch_exchange, list_exchanges, url_list
from childsafe.exchanges.catalogue import claim_lease, get_exchange, process_owner
from childsafe.store import open_database


class ListSite:
    """A site publishing one hash list, with an ETag; ``failures`` replies come first."""

    def __init__(self) -> None:
        self.body = b""
        self.failures: list[Reply] = []
        self.server = LocalServer(self.reply)

    def publish(self, values: list[str]) -> None:
        self.body = "".join(f"{value}\n" for value in values).encode()

    def etag(self) -> str:
        return f'"{hash(self.body) & 0xFFFFFFFF:x}"'

    def reply(self, request: Request) -> Reply:
        if self.failures:
            return self.failures.pop(0)
        if request.headers.get("if-none-match") == self.etag():
            return Reply(304)
        return Reply(200, self.body, {"ETag": self.etag(), "Last-Modified": "Mon, 01 Dec 2025 10:00:00 GMT"})


@pytest.fixture
def site() -> Iterator[ListSite]:
    site = ListSite()
    yield site
    site.server.close()


def _add(engine: sa.Engine, site: ListSite, **options: object) -> None:
    add_exchange(engine, "feed", "url", "shared", {"url": site.server.url("/list.txt")}, **options)  # type: ignore[arg-type]


def test_a_list_is_fetched_then_304_changes_nothing(bank_engine: sa.Engine, site: ListSite, http: HttpSettings) -> None:
    values = md5s(50, 1)
    site.publish(values)
    _add(bank_engine, site)
    first = fetch_exchange(bank_engine, "feed", http)
    assert (first.outcome, first.counts.added, first.resumed) == ("ok", 50, False)
    assert bank_entries(bank_engine) == {(f"md5:{v}", None, None) for v in values}
    again = fetch_exchange(bank_engine, "feed", http)
    assert (again.outcome, again.counts.added, again.pages) == ("unchanged", 0, 0)
    assert site.server.requests[-1].headers["if-none-match"] == site.etag()
    assert site.server.requests[-1].headers["if-modified-since"] == "Mon, 01 Dec 2025 10:00:00 GMT"
    assert "childsafe/" in site.server.requests[-1].headers["user-agent"]
    (info,) = list_exchanges(bank_engine)
    assert (info.last_outcome, info.checkpoint and info.checkpoint["etag"]) == ("unchanged", site.etag())


def test_a_changed_list_deletes_only_the_exchanges_own_entries(
    bank_engine: sa.Engine, site: ListSite, http: HttpSettings
) -> None:
    values = md5s(30, 2)
    # Someone imported two of the list's hashes and one other before the exchange came.
    own = "\n".join([values[0], values[1], "0" * 32]).encode()
    import_bank_stream(bank_engine, "shared", io.BytesIO(own), "mine.txt")
    site.publish(values)
    _add(bank_engine, site)
    assert fetch_exchange(bank_engine, "feed", http).counts.added == 28
    site.publish(values[10:] + md5s(5, 3))  # ten gone (two of them imported by hand), five new
    result = fetch_exchange(bank_engine, "feed", http)
    assert (result.counts.added, result.counts.removed) == (5, 8)
    expected = {f"md5:{v}" for v in values[10:] + md5s(5, 3) + values[:2] + ["0" * 32]}
    assert {signals for signals, _, _ in bank_entries(bank_engine)} == expected


def test_server_errors_are_retried_and_a_timeout_is_a_clear_error(
    bank_engine: sa.Engine, site: ListSite, http: HttpSettings
) -> None:
    site.publish(md5s(5, 4))
    _add(bank_engine, site)
    site.failures = [Reply(503), Reply(502)]
    assert fetch_exchange(bank_engine, "feed", http).counts.added == 5
    site.publish(md5s(6, 5))
    site.failures = [Reply(200, site.body, delay=1.5)] * 3  # past the 1 s read timeout, every try
    with pytest.raises(RemoteError, match=r"GET http://127\.0\.0\.1:\d+/list\.txt: timed out after 3 tries; try again"):
        fetch_exchange(bank_engine, "feed", http)
    (info,) = list_exchanges(bank_engine)
    assert info.last_outcome == "failed" and "timed out" in (info.last_error or "")
    assert len(bank_entries(bank_engine)) == 5
    assert "'outcome': 'failed'" in audit_text(bank_engine)


def test_a_stalling_server_ends_the_fetch_with_a_clear_error(
    bank_engine: sa.Engine, site: ListSite, http: HttpSettings
) -> None:
    site.publish(md5s(20, 6))
    _add(bank_engine, site)
    # A byte every 0.2 s never trips the read timeout; the total time per request does.
    site.failures = [Reply(200, site.body, trickle=0.2)]
    quick = HttpSettings(read_timeout=1, request_seconds=1.5, retries=0, backoff_seconds=0.01)
    with pytest.raises(RemoteError, match="not complete after 1.5 seconds"):
        fetch_exchange(bank_engine, "feed", quick)
    assert fetch_exchange(bank_engine, "feed", quick).counts.added == 20  # the next fetch resumes


def test_a_malformed_list_changes_nothing(bank_engine: sa.Engine, site: ListSite, http: HttpSettings) -> None:
    values = md5s(10, 7)
    site.publish(values)
    _add(bank_engine, site)
    fetch_exchange(bank_engine, "feed", http)
    before = bank_entries(bank_engine)
    site.body = site.body + b"not a hash at all\n" + "".join(f"{v}\n" for v in md5s(3, 8)).encode()
    with pytest.raises(InputFormatError, match=r"/list\.txt: line 11: .*nothing was changed"):
        fetch_exchange(bank_engine, "feed", http)
    site.body = b""
    with pytest.raises(InputFormatError, match="holds no entries; nothing was changed"):
        fetch_exchange(bank_engine, "feed", http)
    assert bank_entries(bank_engine) == before


def test_refused_credentials_are_a_clear_error(bank_engine: sa.Engine, site: ListSite, http: HttpSettings) -> None:
    site.publish(md5s(3, 9))
    _add(bank_engine, site)
    site.failures = [Reply(401)]
    with pytest.raises(RemoteError, match="HTTP 401: the credentials were refused; check them"):
        fetch_exchange(bank_engine, "feed", http)


class Interrupted(Exception):
    """Stands for a process killed between two pages."""


def test_an_interrupted_fetch_resumes_to_the_same_bank(
    bank_engine: sa.Engine, site: ListSite, http: HttpSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(url_list, "PAGE", 7)
    old, new = md5s(40, 10), md5s(30, 11)
    site.publish(old)
    _add(bank_engine, site)
    fetch_exchange(bank_engine, "feed", http)
    site.publish(old[15:] + new)  # 15 deleted, 30 added: 55 entries, 8 pages

    def stop_after_three(result: FetchResult) -> None:
        if result.pages == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        fetch_exchange(bank_engine, "feed", http, on_page=stop_after_three)
    (info,) = list_exchanges(bank_engine)
    assert info.fetching and info.checkpoint and info.checkpoint["done"] == 21
    resumed = fetch_exchange(bank_engine, "feed", http)
    assert (resumed.resumed, resumed.pages, resumed.counts.removed) == (True, 5, 15)
    assert bank_entries(bank_engine) == {(f"md5:{v}", None, None) for v in old[15:] + new}
    # The bank of one uninterrupted fetch of the same list, in another database:
    other = open_database(f"sqlite:///{tmp_path / 'other.db'}")
    create_bank(other, "shared", "ncmec")
    _add(other, site)
    fetch_exchange(other, "feed", http)
    assert bank_entries(other) == bank_entries(bank_engine)
    other.dispose()


def test_one_process_at_a_time_fetches_an_exchange(bank_engine: sa.Engine, site: ListSite, http: HttpSettings) -> None:
    site.publish(md5s(3, 12))
    _add(bank_engine, site)
    with bank_engine.connect() as connection:
        exchange_id = get_exchange(connection, "feed").id
    assert claim_lease(bank_engine, exchange_id, "replica-a", 60)
    assert not claim_lease(bank_engine, exchange_id, "replica-b", 60)
    with pytest.raises(ConflictError, match="being fetched by another process"):
        fetch_exchange(bank_engine, "feed", http, owner="replica-b")
    assert fetch_exchange(bank_engine, "feed", http, owner="replica-a").counts.added == 3


def test_the_lease_of_a_killed_fetcher_on_this_machine_is_taken_at_once(
    bank_engine: sa.Engine, site: ListSite, http: HttpSettings
) -> None:
    site.publish(md5s(3, 12))
    _add(bank_engine, site)
    with bank_engine.connect() as connection:
        exchange_id = get_exchange(connection, "feed").id
    # A process of this machine that took the lease for an hour and was killed before giving it back.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    alive_owner = process_owner().replace(f":{os.getpid()}:", f":{child.pid}:", 1)
    assert claim_lease(bank_engine, exchange_id, alive_owner, 3600)
    assert not claim_lease(bank_engine, exchange_id, "replica-b", 60)  # running: its lease holds
    child.kill()
    child.wait()
    assert fetch_exchange(bank_engine, "feed", http).counts.added == 3  # gone: taken over at once
    # A holder on another machine cannot be checked: its lease runs out first.
    assert claim_lease(bank_engine, exchange_id, "elsewhere:1:abcd:pid:[1]", 3600)
    assert not claim_lease(bank_engine, exchange_id, "replica-b", 60)


SECRET = "s3cret-Pa55word-never-shown"


def test_credentials_come_from_an_owner_only_file_and_are_never_shown(
    bank_engine: sa.Engine, site: ListSite, http: HttpSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    credentials = tmp_path / "feed.credentials"
    credentials.write_text(f"reader:{SECRET}\n")
    os.chmod(credentials, 0o644)
    with pytest.raises(UsageError, match=f"may be read by others; run chmod 600 {credentials}"):
        _add(bank_engine, site, credentials_file=credentials)
    os.chmod(credentials, 0o600)
    site.publish(md5s(4, 13))
    _add(bank_engine, site, credentials_file=credentials)
    caplog.set_level(logging.DEBUG)
    fetch_exchange(bank_engine, "feed", http)
    assert site.server.requests[-1].basic_auth() == f"reader:{SECRET}"
    site.failures = [Reply(500)] * 3
    with pytest.raises(RemoteError) as failure:
        fetch_exchange(bank_engine, "feed", http)
    os.chmod(credentials, 0o640)  # made readable by others after it was added: refused at the next fetch
    with pytest.raises(UsageError, match="chmod 600"):
        fetch_exchange(bank_engine, "feed", http)
    shown = [
        str(failure.value),
        caplog.text,
        audit_text(bank_engine),
        str([i.to_dict() for i in list_exchanges(bank_engine)]),
    ]
    assert not [text for text in shown if SECRET in text]
    assert list_exchanges(bank_engine)[0].credentials == f"file {credentials}"


def test_credentials_from_an_environment_variable(
    bank_engine: sa.Engine, site: ListSite, http: HttpSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.publish(md5s(2, 14))
    _add(bank_engine, site, credentials_env="FEED_TOKEN")
    with pytest.raises(UsageError, match="environment variable FEED_TOKEN .* is not set"):
        fetch_exchange(bank_engine, "feed", http)
    monkeypatch.setenv("FEED_TOKEN", SECRET)
    fetch_exchange(bank_engine, "feed", http)
    assert site.server.requests[-1].headers["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in audit_text(bank_engine)


def test_settings_are_checked_when_an_exchange_is_added(bank_engine: sa.Engine) -> None:
    with pytest.raises(UsageError, match="http:// or https://"):
        add_exchange(bank_engine, "feed", "url", "shared", {"url": "ftp://example.org/list"})
    with pytest.raises(UsageError, match="holds a password"):
        add_exchange(bank_engine, "feed", "url", "shared", {"url": "https://u:p@example.org/list"})
    with pytest.raises(UsageError, match="unknown exchange kind 'gopher'"):
        add_exchange(bank_engine, "feed", "gopher", "shared", {})
    with pytest.raises(UsageError, match="no bank called 'nope'"):
        add_exchange(bank_engine, "feed", "url", "nope", {"url": "https://example.org/list"})
    add_exchange(bank_engine, "feed", "url", "shared", {"url": "https://example.org/list"})
    with pytest.raises(ConflictError, match="exists already"):
        add_exchange(bank_engine, "feed", "url", "shared", {"url": "https://example.org/list"})
