"""Benchmark: a 1M-entry hash list fetched from a URL exchange into a bank,
interrupted (the fetching process killed) and resumed.

Checks (issue 22): the resumed fetch ends with the same bank as one
uninterrupted fetch (same entries, by their keys and categories). Timed
against the baseline ``import_bank_file`` (what ``childsafe bank import``
runs) of the same file into a fresh database, in the same run.

How it works: a 1M-line list of random MD5 values (fixed seed, under
``bench/.cache/exchange_fetch-v1/``, nothing downloaded) is served by a
standard-library HTTP server on loopback. Three fresh SQLite databases:
the baseline import; one uninterrupted ``fetch_exchange``; and one where a
child process fetching is killed (SIGKILL) once its checkpoint says at least
400,000 entries are written, then the fetch is resumed in this process.

Run from the repository root with the project's venv::

    .venv/bin/python bench/exchange_fetch.py
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from childsafe.banks import create_bank, import_bank_file  # noqa: E402
from childsafe.config import HttpSettings  # noqa: E402
from childsafe.exchanges import add_exchange, fetch_exchange  # noqa: E402
from childsafe.store import open_database  # noqa: E402

CACHE = REPO / "bench" / ".cache" / "exchange_fetch-v1"
COUNT = 1_000_000
KILL_AFTER = 400_000

CHILD = """
import sys
from childsafe.config import HttpSettings
from childsafe.exchanges import fetch_exchange
from childsafe.store import open_database
fetch_exchange(open_database(sys.argv[1]), "feed", HttpSettings())
"""


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def make_list() -> Path:
    path = CACHE / f"md5-{COUNT}.txt"
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        rng = random.Random(22)
        path.write_text("".join(f"{rng.getrandbits(128):032x}\n" for _ in range(COUNT)))
    return path


def bank_digest(engine: sa.Engine) -> tuple[int, str]:
    """How many entries, and a SHA-256 of their keys and categories in key order."""
    digest = hashlib.sha256()
    count = 0
    with engine.connect() as connection:
        for key, category in connection.execute(
            sa.text("SELECT entry_key, category FROM bank_entries ORDER BY entry_key")
        ):
            digest.update(f"{key}:{category}\n".encode())
            count += 1
    return count, digest.hexdigest()


def fresh(name: str, url: str | None) -> tuple[str, sa.Engine]:
    database = CACHE / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    engine = open_database(f"sqlite:///{database}")
    create_bank(engine, "shared")
    if url:
        add_exchange(engine, "feed", "url", "shared", {"url": url})
    return f"sqlite:///{database}", engine


def done_entries(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        checkpoint = connection.execute(sa.text("SELECT checkpoint FROM exchanges")).scalar()
    if not checkpoint:
        return 0
    import json

    return int((json.loads(checkpoint) if isinstance(checkpoint, str) else checkpoint).get("done", 0))


def main() -> int:
    path = make_list()
    handler = functools.partial(Quiet, directory=str(path.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{path.name}"
    http_settings = HttpSettings()

    _, baseline = fresh("baseline", None)
    started = time.perf_counter()
    import_bank_file(baseline, "shared", path)
    baseline_seconds = time.perf_counter() - started

    _, whole = fresh("whole", url)
    started = time.perf_counter()
    result = fetch_exchange(whole, "feed", http_settings)
    whole_seconds = time.perf_counter() - started
    assert result.counts.added == COUNT, result

    database, interrupted = fresh("interrupted", url)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, database], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    while done_entries(interrupted) < KILL_AFTER and child.poll() is None:
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    killed_at = done_entries(interrupted)
    with interrupted.begin() as connection:  # the killed process's lease would hold until it ran out
        connection.execute(sa.text("UPDATE exchanges SET lease_until = NULL, lease_owner = NULL"))
    started = time.perf_counter()
    resumed = fetch_exchange(interrupted, "feed", http_settings)
    resume_seconds = time.perf_counter() - started

    same = bank_digest(interrupted) == bank_digest(whole) == bank_digest(baseline)
    print(f"list: {COUNT:,} MD5 lines, {path.stat().st_size / 1e6:.1f} MB, served on loopback")
    print(f"baseline import_bank_file (bank import):   {baseline_seconds:6.1f} s")
    print(
        f"exchange fetch, uninterrupted:             {whole_seconds:6.1f} s  ({whole_seconds / baseline_seconds:.1f}x)"
    )
    print(
        f"killed at {killed_at:,} entries; resumed fetch: {resume_seconds:6.1f} s  (resumed={resumed.resumed}, pages={resumed.pages}, added={resumed.counts.added:,})"
    )
    print(f"resumed bank == uninterrupted bank == imported bank: {same}")
    server.shutdown()
    for engine in (baseline, whole, interrupted):
        engine.dispose()
    return 0 if same and resumed.resumed else 1


if __name__ == "__main__":
    sys.exit(main())
