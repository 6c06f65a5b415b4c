"""Several ``childsafe serve`` replicas on one PostgreSQL, as on several
machines (each its own CHILDSAFE_HOME): a replica started from an index
snapshot loads it instead of building from the database, every replica sees
a bank change within a second, and readiness says "not ready" while the
database cannot be reached (through a loopback proxy the test cuts)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from support import Server, invoke, seconds_until_seen

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _replica_env(cli_env: dict[str, str], postgres_url: str, home: Path, **extra: str) -> dict[str, str]:
    return {**cli_env, "CHILDSAFE_HOME": str(home), "CHILDSAFE_DATABASE_URL": postgres_url, **extra}


def test_replicas_start_from_a_snapshot_and_each_sees_a_change_within_a_second(
    cli_env: dict[str, str], postgres_url: str, tmp_path: Path
) -> None:
    first = Server(_replica_env(cli_env, postgres_url, tmp_path / "machine-1"))
    replicas = [first]
    try:
        curator = first.client("curator")
        assert curator.post("/v1/banks", json={"name": "shared", "scheme": "uk"}).status_code in (200, 201)
        entries = [{"signal": "md5", "value": f"{number:032x}", "category": "B"} for number in range(1, 2001)]
        assert curator.post("/v1/banks/shared/entries", json={"entries": entries}).json()["added"] == 2000
        snapshot = tmp_path / "snapshot"
        admin_env = _replica_env(cli_env, postgres_url, tmp_path / "admin-machine")
        written = invoke(["index", "snapshot", str(snapshot), "--json"], Path(admin_env["CHILDSAFE_HOME"]), admin_env)
        assert written.exit_code == 0, written.output
        assert list(snapshot.glob("bank-*@*"))
        second = Server(
            _replica_env(cli_env, postgres_url, tmp_path / "machine-2", CHILDSAFE_INDEX_SNAPSHOT=str(snapshot)),
            keys=first.keys,
        )
        replicas.append(second)
        ready = [httpx.get(f"{replica.url}/v1/ready", timeout=10).json() for replica in replicas]
        assert [answer["status"] for answer in ready] == ["ready", "ready"]
        assert ready[1]["index"]["loaded_from"] == {"snapshot": 1}  # not built from the database
        assert not list((tmp_path / "machine-2").glob("index/*/bank-*"))  # and not copied: read where it is
        assert ready[0]["index"]["loaded_from"] == {}  # it started before the bank: the change log built it

        matchers = [replica.client("matcher") for replica in replicas]
        for client in matchers:  # what the snapshot held, and what the first replica built
            assert client.get("/v1/match", params={"signal": "md5", "value": f"{2000:032x}"}).json()["matches"]
        # A change through either replica, or from another process, reaches both within a second.
        for number, through in ((5001, first), (5002, second)):
            value = f"{number:032x}"
            through.client("curator").post(
                "/v1/banks/shared/entries", json={"entries": [{"signal": "md5", "value": value}]}
            )
            for client in matchers:
                assert seconds_until_seen(client, value, True) < 1.0
        gone = f"{7:032x}"
        (known,) = matchers[0].get("/v1/match", params={"signal": "md5", "value": gone}).json()["matches"]
        removed = second.client("curator").delete(f"/v1/banks/shared/entries/{known['entry_id']}")
        assert removed.status_code in (200, 204)
        for client in matchers:
            assert seconds_until_seen(client, gone, False) < 1.0
    finally:
        for replica in replicas:
            replica.stop()


class _CuttableProxy:
    """A TCP proxy on loopback to PostgreSQL that the test can cut (every
    connection closed, new ones refused) and restore: a database that stops answering."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self.connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()

    def cut(self) -> None:
        self.open = False
        for connection in self.connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()
        self.connections.clear()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[tuple[_CuttableProxy, str]]:
    parts = urlsplit(postgres_url)
    running = _CuttableProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    netloc = f"{parts.username}@127.0.0.1:{running.port}" if parts.username else f"127.0.0.1:{running.port}"
    yield running, urlunsplit(parts._replace(netloc=netloc))
    running.close()


def test_ready_says_not_ready_while_the_database_cannot_be_reached(
    cli_env: dict[str, str], proxy: tuple[_CuttableProxy, str], tmp_path: Path
) -> None:
    cut, url = proxy
    replica = Server(_replica_env(cli_env, url, tmp_path / "machine"))
    try:
        ready_url = f"{replica.url}/v1/ready"
        assert httpx.get(ready_url, timeout=10).status_code == 200
        cut.cut()
        deadline = time.monotonic() + 10
        answer = httpx.get(ready_url, timeout=10)
        while answer.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
            answer = httpx.get(ready_url, timeout=10)
        assert answer.status_code == 503, answer.text
        assert answer.json()["status"] == "not ready" and answer.headers["retry-after"] == "1"
        # Matching says so too, rather than answering from an index that may be stale.
        matcher = replica.client("matcher")
        assert matcher.get("/v1/match", params={"signal": "md5", "value": "0" * 32}).status_code >= 500
        cut.restore()
        deadline = time.monotonic() + 15
        while httpx.get(ready_url, timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "not ready again after the database came back"
            time.sleep(0.2)
    finally:
        replica.stop()
