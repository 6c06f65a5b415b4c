"""Helpers shared by both layers of tests (tests/unit and tests/e2e): the
command line in-process (``invoke``) and as a real process (``run_cli``), the
service as a real process (``Server``), and small generators.

A plain module, not conftest.py: a test imports it by name (``from support
import invoke``), which stays unambiguous however many conftest.py files
pytest loads (pyproject's ``pythonpath`` puts tests/ on ``sys.path``).
"""

from __future__ import annotations

import http.server
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from typer.testing import CliRunner, Result

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"


def random_hex(rng: random.Random, digits: int) -> str:
    """``digits`` random hex digits (a digest or a PDQ hash) from ``rng``."""
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


def cli_environment(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without its CHILDSAFE_* settings, with ``home`` as CHILDSAFE_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHILDSAFE_")}
    env["CHILDSAFE_HOME"] = str(home)
    return env | dict(extra or {})


def invoke(args: list[str], home: Path, env: Mapping[str, str] | None = None, stdin: str | None = None) -> Result:
    """Run a ``childsafe`` command in this process, through Typer's ``CliRunner``:
    the app the script runs, with ``home`` as CHILDSAFE_HOME and no other
    CHILDSAFE_* setting of the caller's (``env`` adds some). ``sys.argv`` is
    the command's, as the script would see it (a scan's manifest records it).
    The environment and ``sys.argv`` are put back afterwards."""
    from childsafe.cli import app

    unset: dict[str, str | None] = {name: None for name in os.environ if name.startswith("CHILDSAFE_")}
    overrides = unset | {"CHILDSAFE_HOME": str(home)} | dict(env or {})
    saved_argv = sys.argv
    sys.argv = ["childsafe", *args]
    try:
        return CliRunner().invoke(app, args, env=overrides, input=stdin)
    finally:
        sys.argv = saved_argv


def run_cli(
    args: list[str], env: dict[str, str], stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real ``childsafe`` command in a new process (tests/e2e only:
    exit codes of the real script, signals, umask, concurrency)."""
    return subprocess.run(
        [sys.executable, "-m", "childsafe", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def serve_in_thread(
    port: int, handler: type[http.server.BaseHTTPRequestHandler]
) -> tuple[http.server.ThreadingHTTPServer, threading.Thread]:
    """A test's HTTP server on 127.0.0.1:``port``, serving in a daemon thread
    (stop it with ``server.shutdown()``); request threads are daemons too, so
    a request a test leaves hanging does not hold the run."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def seconds_until_seen(client: httpx.Client, value: str, present: bool, seconds: float = 1.0) -> float:
    """Seconds until the service of ``client`` answers the md5 ``value`` as
    matched (or, ``present`` false, as not); fails after ``seconds``."""
    start = time.monotonic()
    while True:
        answer = client.get("/v1/match", params={"signal": "md5", "value": value})
        assert answer.status_code == 200, answer.text
        elapsed = time.monotonic() - start
        if bool(answer.json()["matches"]) == present:
            return elapsed
        assert elapsed < seconds, f"not {'matched' if present else 'gone'} after {elapsed:.2f} s"
        time.sleep(0.02)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``childsafe serve`` in its own process, and keys for each role."""

    def __init__(self, env: dict[str, str], workers: int = 1, keys: dict[str, str] | None = None) -> None:
        """Start it; ``keys`` (role -> key) of another server on the same database, or new ones."""
        from childsafe.actions.keys import create_api_key
        from childsafe.config import Settings
        from childsafe.store import open_database

        self.env = env
        if keys is not None:
            self.keys = keys
        else:
            engine = open_database(Settings.from_env(env).database_url)
            try:  # made in this process: four CLI processes cost seconds a server
                self.keys = {
                    role: create_api_key(engine, f"{role}-key", role)
                    for role in ("admin", "curator", "matcher", "deter")
                }
            finally:
                engine.dispose()
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
        if not self.log_file.closed:
            self.log_file.close()
        return self.log_path.read_text()


def deter_counters(engine: sa.Engine) -> dict[tuple[str, str, str], int]:
    """Today's counters, read straight from the database (the stats hide counts under 10)."""
    from childsafe.store.models import DeterCount

    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(DeterCount.region, DeterCount.list_name, DeterCount.outcome, DeterCount.count)
        )
        return {(region, name, outcome): number for region, name, outcome, number in rows}


def redirect_of(base: str, path: str, params: dict[str, str] | None = None) -> tuple[int, str | None]:
    """Status and Location of a request, not followed (httpx cannot even read a ``tel:`` redirect)."""
    from http.client import HTTPConnection
    from urllib.parse import urlencode, urlsplit

    where = urlsplit(base)
    connection = HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=30)
    try:
        connection.request("GET", path + (("&" if "?" in path else "?") + urlencode(params) if params else ""))
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("location")
    finally:
        connection.close()


class InProcessApp:
    """An ASGI app (the service's FastAPI app) run in this process, its
    start-up and shut-down included, driven through ``httpx.ASGITransport``
    from synchronous tests: the app's event loop runs in a thread of its own,
    so that its background tasks (the webhook loop) go on between requests."""

    def __init__(self, app: Any) -> None:
        import asyncio
        import threading

        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.umask = os.umask(0o077)  # the app's start-up sets the process's umask: put back in close()
        os.umask(self.umask)
        self.lifespan = app.router.lifespan_context(app)
        self._run(self.lifespan.__aenter__())
        transport = httpx.ASGITransport(app=app)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://testserver")

    def _run(self, coroutine: Any) -> Any:
        import asyncio

        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=120)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, answered by the app in this process."""
        return self._run(self.client.request(method, path, **kwargs))  # type: ignore[no-any-return]

    def close(self) -> None:
        self._run(self.client.aclose())
        self._run(self.lifespan.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        os.umask(self.umask)


def error_message(response: httpx.Response, status: int) -> str:
    """The message of a docs/spec.md error body, after checking its status and shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and list(body["error"]) == ["status", "message"]
    assert body["error"]["status"] == status
    return str(body["error"]["message"])


#: Debian's Chromium, for the browser tests (``./run tests`` installs it), and its flags here.
CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def axe_checked(page: Any, shots: Path, name: str) -> None:
    """The page as it is now: axe-core finds nothing serious or critical on
    it, and a screenshot of it is kept as ``shots/NAME.png``."""
    from axe_playwright_python.sync_playwright import Axe

    # Polled from here: the page's CSP (no 'unsafe-eval') stops wait_for_function's polling in the page.
    deadline = time.monotonic() + 90  # previews are rendered on demand; a busy machine is slow
    while not page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"):
        assert time.monotonic() < deadline, (
            f"{name}: its pictures did not load: "
            f"{page.evaluate('Array.from(document.images).map(i => [i.src, i.complete, i.naturalWidth])')}"
        )
        time.sleep(0.1)
    results = Axe().run(page).response
    assert len(results["passes"]) > 10, f"{name}: axe-core ran no rules"  # it ran on this page
    serious = [
        f"{v['id']} ({v['impact']}): {v['help']}: {[node['target'] for node in v['nodes']]}"
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], f"{name} ({page.url}): {serious}"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    assert (shots / f"{name}.png").stat().st_size > 5_000
