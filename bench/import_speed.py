"""Benchmark: importing a 1M-line PDQ hash list into SQLite, by command and by HTTP.

Claims (issue 16):

* ``childsafe bank import NAME LIST --signal pdq`` of a 1M-line text list of
  bare PDQ hashes into a new SQLite database: at least 100,000 entries/s,
  whole command (a fresh process: Python, imports, opening and migrating
  the database, the import, its commit);
* the same list through ``POST /v1/banks/{name}/import`` (multipart, field
  ``signal=pdq``) to a running ``childsafe serve`` on its own new database:
  within 1.2x of the command's time (from the request's first byte to the
  response; the server's start is not counted, it is already running).

How it works:

* The list is bench/index_speed.py's 1M bank as text
  (``bench/.cache/index_speed-v1/pdq-1000000.txt``, generated from a fixed
  seed; nothing is downloaded or committed).
* Each round imports it into fresh databases (under
  ``bench/.cache/import_speed-v1/``): first by the command, then by HTTP (a
  server started for the round with its body limits raised to fit the
  list, stopped after it, so that nothing it does afterwards runs
  during the next measurement). ``--before TREE`` also runs the command of
  another checkout (for example the code before issue 16) in each round,
  with the same Python.
* Best (shortest) of ``--rounds`` rounds for each (the machine may be
  shared); the ratio is of the best times. CPU seconds (user + system: of
  the command's process; of the server's processes during the request) are
  shown beside them: on a shared machine they move less than wall-clock.

Run from the repository root with the project's venv::

    .venv/bin/python bench/import_speed.py
    .venv/bin/python bench/import_speed.py --before /path/to/older/checkout --json out.json

Exit status: 0 if both targets are met, 1 if not, 2 on a setup error.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from _common import BENCH_DIR, REPO_ROOT, load_average, print_table, run_header, setup_error
from index_speed import ensure_bank, log, text_list

SCRIPT = "import_speed"
CACHE = BENCH_DIR / ".cache" / "import_speed-v1"
TARGET_RATE = 100_000.0  # entries/s, whole command
TARGET_API_RATIO = 1.2  # HTTP time / command time, at most


def command_env(tree: Path, home: Path) -> dict[str, str]:
    """The environment of a ``childsafe`` run from ``tree`` on the home ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHILDSAFE_")}
    env["CHILDSAFE_HOME"] = str(home)
    env["PYTHONPATH"] = str(tree)
    return env


def fresh_home(name: str) -> Path:
    home = CACHE / name
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    return home


def childsafe(tree: Path, home: Path, words: list[str]) -> tuple[float, float, str]:
    """Run ``python -m childsafe WORDS`` from ``tree`` as a fresh process; its
    wall-clock seconds, CPU seconds (user + system) and stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "childsafe", *words], stdout=out, stderr=err, env=command_env(tree, home), cwd=CACHE
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            sys.stderr.write(err.read().decode(errors="replace")[-3000:])
            setup_error(SCRIPT, f"childsafe {' '.join(words)} failed (exit {process.returncode})")
        return seconds, usage.ru_utime + usage.ru_stime, out.read().decode()


def time_command(tree: Path, pdq_list: Path, lines: int) -> dict[str, Any]:
    home = fresh_home("command")
    seconds, cpu, out = childsafe(tree, home, ["bank", "import", "big", str(pdq_list), "--signal", "pdq", "--json"])
    added = json.loads(out)["added"]
    if added != lines:
        setup_error(SCRIPT, f"the command added {added} entries of {lines}")
    return {"seconds": seconds, "cpu_seconds": cpu, "added": added, "entries_per_second": added / seconds}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def multipart(fields: dict[str, str], file_name: str, data: bytes) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with ``fields`` and the file ``data``; and its content type."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
        "Content-Type: text/plain\r\n\r\n".encode()
    )
    return b"".join([*parts, data, f"\r\n--{boundary}--\r\n".encode()]), f"multipart/form-data; boundary={boundary}"


def time_http(pdq_list: Path, lines: int, body: bytes, content_type: str) -> dict[str, Any]:
    """Start a server on a fresh database, time one import request, stop the server."""
    home = fresh_home("http")
    _, _, key = childsafe(REPO_ROOT, home, ["apikey", "create", "importer", "--role", "curator"])
    port = free_port()
    env = command_env(REPO_ROOT, home)
    env["CHILDSAFE_MAX_UPLOAD_BYTES"] = str(len(body) + 1_000_000)
    # The JSON cap too: with FastAPI 0.165 the request guard does not see the
    # routes of included routers, so it caps every body, uploads included, at
    # CHILDSAFE_MAX_JSON_BYTES (routes added to the app directly do not have this).
    env["CHILDSAFE_MAX_JSON_BYTES"] = env["CHILDSAFE_MAX_UPLOAD_BYTES"]
    server = subprocess.Popen(
        [sys.executable, "-m", "childsafe", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        cwd=CACHE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_up(port, server)
        wait_until_idle(server)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        headers = {"Authorization": f"Bearer {key.strip()}", "Content-Type": content_type}
        cpu = tree_cpu_seconds(server.pid)
        start = time.perf_counter()
        connection.request("POST", "/v1/banks/big/import", body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        seconds = time.perf_counter() - start
        cpu = tree_cpu_seconds(server.pid) - cpu
        if response.status != 200:
            setup_error(SCRIPT, f"the import request answered {response.status}: {answer[:500]!r}")
        added = json.loads(answer)["added"]
        if added != lines:
            setup_error(SCRIPT, f"the request added {added} entries of {lines}")
    finally:
        server.terminate()
        server.wait(timeout=60)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "added": added,
        "entries_per_second": added / seconds,
        "body_bytes": len(body),
    }


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of process ``root`` and all its descendants so far (from /proc)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(times.get(pid, 0.0) for pid in tree)


def wait_until_idle(server: subprocess.Popen[bytes]) -> None:
    """Wait (at most 60 s) until the server's processes use under 5% of a CPU
    over half a second: its start (worker processes, imports) must not run
    during the measured import."""
    deadline = time.monotonic() + 60
    before = tree_cpu_seconds(server.pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = tree_cpu_seconds(server.pid)
        if now - before < 0.025:
            return
        before = now


def wait_until_up(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            assert server.stderr is not None
            sys.stderr.write(server.stderr.read().decode(errors="replace")[-3000:])
            setup_error(SCRIPT, "the server exited")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/v1/health")
            if connection.getresponse().status < 500:
                return
        except OSError:
            pass
        time.sleep(0.2)
    setup_error(SCRIPT, "the server did not start within 120 s")


def run(args: argparse.Namespace) -> dict[str, Any]:
    bank = ensure_bank("1m")
    pdq_list = text_list(f"pdq-{bank.shape[0]}.txt", np.asarray(bank))
    lines = bank.shape[0]
    body, content_type = multipart({"signal": "pdq"}, pdq_list.name, pdq_list.read_bytes())
    rounds: list[dict[str, Any]] = []
    for number in range(1, args.rounds + 1):
        timing: dict[str, Any] = {}
        if args.before:
            log(f"round {number}/{args.rounds}: command, --before tree")
            timing["before"] = time_command(Path(args.before).resolve(), pdq_list, lines)
        log(f"round {number}/{args.rounds}: command")
        timing["command"] = time_command(REPO_ROOT, pdq_list, lines)
        log(f"round {number}/{args.rounds}: POST /v1/banks/big/import")
        timing["http"] = time_http(pdq_list, lines, body, content_type)
        rounds.append(timing)
    shutil.rmtree(CACHE / "command", ignore_errors=True)
    shutil.rmtree(CACHE / "http", ignore_errors=True)
    best = {name: min(r[name]["seconds"] for r in rounds) for name in rounds[0]}
    rate = lines / best["command"]
    ratio = best["http"] / best["command"]
    return {
        "lines": lines,
        "list": str(pdq_list.relative_to(REPO_ROOT)),
        "rounds": rounds,
        "best_seconds": best,
        "command_entries_per_second": rate,
        "before_entries_per_second": lines / best["before"] if "before" in best else None,
        "http_over_command": ratio,
        "targets": [
            {
                "target": f"bank import of a 1M-line PDQ list into SQLite >= {TARGET_RATE:,.0f} entries/s",
                "measured": f"{rate:,.0f} entries/s",
                "ok": rate >= TARGET_RATE,
            },
            {
                "target": f"POST /v1/banks/NAME/import within {TARGET_API_RATIO}x of the command",
                "measured": f"{ratio:.2f}x",
                "ok": ratio <= TARGET_API_RATIO,
            },
        ],
    }


def report(result: dict[str, Any]) -> None:
    best = result["best_seconds"]
    labels = {
        "before": "childsafe bank import, --before tree",
        "command": "childsafe bank import, this tree",
        "http": "POST /v1/banks/big/import, this tree",
    }
    cpu = {name: min(r[name]["cpu_seconds"] for r in result["rounds"]) for name in best}
    rows = [
        [
            labels[name],
            f"{best[name]:.2f}",
            f"{result['lines'] / best[name]:,.0f}",
            f"{best[name] / best['command']:.2f}x",
            f"{cpu[name]:.2f}",
        ]
        for name in ("before", "command", "http")
        if name in best
    ]
    print()
    print_table(
        ["1M-line PDQ list into SQLite (best of rounds)", "seconds", "entries/s", "vs command", "CPU seconds"], rows
    )
    print(
        "\n  per round (seconds): "
        + "; ".join(", ".join(f"{name} {r[name]['seconds']:.2f}" for name in r) for r in result["rounds"])
    )
    for target in result["targets"]:
        print(f"  {target['target']}: {target['measured']}  {'MET' if target['ok'] else 'NOT MET'}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="bank import speed, command and HTTP, 1M-line PDQ list, SQLite")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; the best of each is kept (default 2)")
    parser.add_argument("--before", metavar="TREE", help="also time the command of this checkout")
    parser.add_argument("--json", metavar="OUT", help="also write the raw figures to OUT")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    header = run_header(__file__, argv, ("childsafe", "numpy", "sqlalchemy", "fastapi", "uvicorn"))
    print(f"Reproduce: {header['command']}", flush=True)
    result = {**header, **run(args), "load_average_end": load_average()}
    print(f"\n{result['date']}, load average {result['load_average_start']} -> {result['load_average_end']}")
    report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"raw figures written to {args.json}")
    return 0 if all(t["ok"] for t in result["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
