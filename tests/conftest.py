"""Shared fixtures: real databases (SQLite file and the local PostgreSQL),
the public PDQ reference images, and a way to run the real CLI."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO.parent / "shared" / "datasets" / "pdq-reference"
POSTGRES_URL = os.environ.get("CHILDSAFE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The PDQ reference images (read in place, never copied)."""
    if not (REFERENCE / "expected.csv").is_file():
        pytest.skip(f"PDQ reference images not found at {REFERENCE}")
    return REFERENCE


def _postgres_available() -> str | None:
    try:
        engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure means: skip, with the reason
        return f"PostgreSQL at {POSTGRES_URL} does not answer: {str(exc).splitlines()[0]}"
    return None


@pytest.fixture(scope="session")
def postgres_problem() -> str | None:
    return _postgres_available()


@pytest.fixture
def postgres_url(postgres_problem: str | None) -> Iterator[str]:
    """A URL for a fresh, empty schema in the local PostgreSQL, dropped afterwards."""
    if postgres_problem:
        pytest.skip(postgres_problem)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage test runs on a real SQLite file and on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'childsafe.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    """The project database on ``database_url`` (SQLite and PostgreSQL), disposed after the test."""
    from childsafe.store import open_database

    engine = open_database(database_url)
    yield engine
    engine.dispose()


def random_hex(rng: random.Random, digits: int) -> str:
    """``digits`` random hex digits (a digest or a PDQ hash) from ``rng``."""
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a CLI run with its own CHILDSAFE_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHILDSAFE_")}
    env["CHILDSAFE_HOME"] = str(tmp_path / "home")
    return env


def run_cli(
    args: list[str], env: dict[str, str], stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real ``childsafe`` command in a new process."""
    return subprocess.run(
        [sys.executable, "-m", "childsafe", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``childsafe serve`` in its own process, and keys for each role."""

    def __init__(self, env: dict[str, str], workers: int = 1) -> None:
        self.env = env
        self.keys = {
            role: run_cli(["apikey", "create", f"{role}-key", "--role", role], env).stdout.strip()
            for role in ("admin", "curator", "matcher", "deter")
        }
        self.clients: list[httpx.Client] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The request log goes to a file: a pipe nobody reads would fill and stall the server.
        self.log_path = Path(env["CHILDSAFE_HOME"]) / f"serve-{self.port}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_file = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "childsafe", "serve", "--port", str(self.port), "--workers", str(workers)],
            env=env, stdout=subprocess.DEVNULL, stderr=self.log_file, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        log = self.stop()
        raise RuntimeError(f"the server did not start:\n{log[-2000:]}")

    def client(self, role: str | None, key: str | None = None) -> httpx.Client:
        key = key or (self.keys[role] if role else None)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=60)
        self.clients.append(client)
        return client

    def stop(self) -> str:
        for client in self.clients:
            client.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log_file.close()
        return self.log_path.read_text()
