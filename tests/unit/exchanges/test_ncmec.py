"""NCMEC's hash-sharing API, implemented by a loopback server as its
documentation describes it (``/v2/entries`` by time range, XML pages linked
by ``<paging><next>``, Basic credentials): paging, updates and deletions,
refused credentials, malformed XML, a connection dropped mid-fetch and
resumed, and a fetched deletion reaching matching within a second."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import bank_entries, md5s
from servers import LocalServer, Reply, Request

from childsafe.banks import create_bank
from childsafe.config import HttpSettings
from childsafe.errors import InputFormatError, RemoteError, UsageError
from childsafe.exchanges import add_exchange, fetch_exchange, list_exchanges
from childsafe.index.matcher import Matcher
from childsafe.store import open_database

USER, PASSWORD = "esp-reader", "ncmec-Pa55"
NS = "https://hashsharing.ncmec.org/hashsharing/v2"


def _image(entry_id: str, md5: str, classification: str = "A1", deleted: bool = False) -> str:
    if deleted:
        return f'<deletedImage><id>{entry_id}</id><member id="7">Member</member></deletedImage>'
    return (
        f'<image><id>{entry_id}</id><member id="7">Member</member><classification>{classification}</classification>'
        f"<fingerprints><md5>{md5}</md5><pdna>{'0' * 20}</pdna></fingerprints></image>"
    )


class HashSharing:
    """The API's ``/v2/entries``: the updates given, ``size`` a page, for any
    time range (the test controls what each fetch sees)."""

    def __init__(self, size: int = 4) -> None:
        self.updates: list[str] = []
        self.size = size
        self.drop_page: int | None = None  # drop every connection asking for this page
        self.server = LocalServer(self.reply)

    def reply(self, request: Request) -> Reply:
        if request.basic_auth() != f"{USER}:{PASSWORD}":
            return Reply(401, b"<error>unauthorized</error>")
        url = urllib.parse.urlsplit(request.path)
        if url.path != "/v2/entries":
            return Reply(404)
        query = urllib.parse.parse_qs(url.query)
        start = int(query.get("start", ["0"])[0])
        if start // self.size == self.drop_page:
            return Reply(drop=True)
        chosen = self.updates[start : start + self.size]
        paging = ""
        if start + self.size < len(self.updates):
            link = (
                f"/v2/entries?from={query['from'][0]}&to={query['to'][0]}&start={start + self.size}"
                f"&size={self.size}&max={len(self.updates) - 1}"
            )
            paging = f"<paging><next>{link.replace('&', '&amp;')}</next></paging>"
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><queryResult xmlns="{NS}">'
            f'<images count="{len(chosen)}" maxTimestamp="2025-12-01T10:00:00Z">{"".join(chosen)}</images>'
            f"{paging}</queryResult>"
        )
        return Reply(200, body.encode(), {"Content-Type": "application/xml"})


@pytest.fixture
def api() -> Iterator[HashSharing]:
    api = HashSharing()
    yield api
    api.server.close()


def _add(engine: sa.Engine, api: HashSharing, tmp_path: Path, password: str = PASSWORD) -> None:
    credentials = tmp_path / "ncmec.credentials"
    credentials.write_text(f"{USER}:{password}")
    credentials.chmod(0o600)
    url = api.server.url("")
    add_exchange(engine, "ncmec", "ncmec", "shared", {"url": url}, credentials_file=credentials)


def test_pages_updates_and_deletions(
    bank_engine: sa.Engine, api: HashSharing, http: HttpSettings, tmp_path: Path
) -> None:
    values = md5s(10, 20)
    api.updates = [_image(f"e{i}", v) for i, v in enumerate(values)]
    _add(bank_engine, api, tmp_path)
    result = fetch_exchange(bank_engine, "ncmec", http)
    assert (result.pages, result.counts.added) == (3, 10)
    assert ("md5:" + values[0], "A1", "ncmec:7:e0") in bank_entries(bank_engine)
    first = urllib.parse.parse_qs(urllib.parse.urlsplit(api.server.requests[0].path).query)
    assert first["from"] == ["1970-01-01T00:00:00Z"] and first["to"][0].endswith("Z")
    # The next fetch starts where this one's range ended: e1 reclassified, e2 has new hashes, e3 withdrawn.
    new = md5s(1, 21)[0]
    api.updates = [_image("e1", values[1], "B2"), _image("e2", new), _image("e3", "", deleted=True)]
    result = fetch_exchange(bank_engine, "ncmec", http)
    assert (result.counts.added, result.counts.updated, result.counts.removed) == (1, 1, 2)
    later = urllib.parse.parse_qs(urllib.parse.urlsplit(api.server.requests[-1].path).query)
    assert later["from"] == first["to"]
    entries = bank_entries(bank_engine)
    assert ("md5:" + values[1], "B2", "ncmec:7:e1") in entries and ("md5:" + new, "A1", "ncmec:7:e2") in entries
    assert not {e for e in entries if e[2] in ("ncmec:7:e3",) or e[0] == "md5:" + values[2]}
    assert len(entries) == 9


def test_refused_credentials_and_malformed_xml(
    bank_engine: sa.Engine, api: HashSharing, http: HttpSettings, tmp_path: Path
) -> None:
    api.updates = [_image("e0", md5s(1, 22)[0])]
    _add(bank_engine, api, tmp_path, password="wrong")
    with pytest.raises(RemoteError, match="HTTP 401: the credentials were refused") as refused:
        fetch_exchange(bank_engine, "ncmec", http)
    assert "wrong" not in str(refused.value)
    (tmp_path / "ncmec.credentials").write_text(f"{USER}:{PASSWORD}")
    api.updates = ["<image><id>e9</id>"]  # cut short
    with pytest.raises(InputFormatError, match="not well-formed XML .*nothing was changed"):
        fetch_exchange(bank_engine, "ncmec", http)
    assert bank_entries(bank_engine) == set()
    assert list_exchanges(bank_engine)[0].last_outcome == "failed"


def test_the_api_needs_credentials(bank_engine: sa.Engine) -> None:
    with pytest.raises(UsageError, match="needs credentials"):
        add_exchange(bank_engine, "ncmec", "ncmec", "shared", {})


def test_a_connection_dropped_mid_fetch_resumes_at_that_page(
    bank_engine: sa.Engine, api: HashSharing, http: HttpSettings, tmp_path: Path
) -> None:
    values = md5s(14, 23)
    api.updates = [_image(f"e{i}", v) for i, v in enumerate(values)] + [_image("e0", "", deleted=True)]
    _add(bank_engine, api, tmp_path)
    api.drop_page = 2
    with pytest.raises(RemoteError, match="connection failed"):
        fetch_exchange(bank_engine, "ncmec", http)
    assert len(bank_entries(bank_engine)) == 8  # pages 0 and 1 were written
    api.drop_page = None
    asked = len(api.server.requests)
    resumed = fetch_exchange(bank_engine, "ncmec", http)
    assert resumed.resumed and resumed.pages == 2
    assert "start=8" in api.server.requests[asked].path  # it carried on at the page it had not written
    other = open_database(f"sqlite:///{tmp_path / 'other.db'}")
    create_bank(other, "shared", "ncmec")
    _add(other, api, tmp_path)
    fetch_exchange(other, "ncmec", http)
    assert bank_entries(other) == bank_entries(bank_engine) and len(bank_entries(other)) == 13
    other.dispose()


def test_a_fetched_deletion_reaches_matching_within_a_second(
    bank_engine: sa.Engine, api: HashSharing, http: HttpSettings, tmp_path: Path
) -> None:
    values = md5s(6, 24)
    api.updates = [_image(f"e{i}", v) for i, v in enumerate(values)]
    _add(bank_engine, api, tmp_path)
    fetch_exchange(bank_engine, "ncmec", http)
    matcher = Matcher(bank_engine, tmp_path / "index")
    try:
        matcher.sync()
        assert matcher.lookup([("md5", values[3])])[0]
        api.updates = [_image("e3", "", deleted=True)]
        fetch_exchange(bank_engine, "ncmec", http)
        finished = time.monotonic()
        matcher.sync()  # what the service does before a lookup (every 10 ms at most: SYNC_SECONDS)
        assert matcher.lookup([("md5", values[3])]) == [[]]
        assert time.monotonic() - finished < 1.0
        assert matcher.lookup([("md5", values[4])])[0]
    finally:
        matcher.close()
