"""Benchmark: a PDQ bank split into index shards (``CHILDSAFE_INDEX_SHARD``)
behind a front (``CHILDSAFE_INDEX_SHARDS``), against the same bank in one
unsharded index, in one run.

For a bank of N random PDQ hashes (fixed seed) split in S shards by entry id:

* build: ``PdqIndex.build`` of each part from arrays in a fresh process
  (what ``BankIndex.build`` does once the rows are read; the database read is
  not timed), then the snapshot write (``BankIndex.save``), and the build's
  peak memory;
* load: a fresh process's ``Matcher`` starting from that snapshot
  (``CHILDSAFE_INDEX_SNAPSHOT``; checked to be loaded, not built), then
  1,000 single-query searches and one batch (``Matcher.shard_search``); its
  peak memory is the memory of a serving shard, and per 10M hashes;
* HTTP: real ``childsafe serve`` processes on one SQLite database, each
  starting from the snapshot: the unsharded one, the S shards and a front.
  Lookups/s of ``POST /v1/match/batch`` (1,000 queries a request) through the
  front and through the unsharded service, of ``POST /v1/shard/search`` at
  each shard, and of single ``GET /v1/match`` requests one after another; the
  front's answers are checked to be the unsharded service's. Each serve
  process's memory (VmRSS) once loaded.

The database holds the bank and the rows of the entries the queries find
(their details are read for each match), not the millions of others: the
index comes from the snapshot, so their rows are never read.

Run from the repository root with the project's venv::

    .venv/bin/python bench/index_shards.py --size 10m --shards 2
    .venv/bin/python bench/index_shards.py --size 30m --shards 2 --json out.json

Exit status: 0 when the front's answers equal the unsharded service's, 1 if
not, 2 on a setup error. Memory is reported, not judged: a shard's index
has fixed bucket tables (~130 MiB in the large layout), so its memory per
10M hashes is the unsharded figure only for shards of 10M hashes or more.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    BENCH_DIR,
    REPO_ROOT,
    load_average,
    machine_info,
    print_table,
    reproduce_command,
    run_measuring_peak_rss,
)

SIZES = {"1m": 1_000_000, "3m": 3_000_000, "10m": 10_000_000, "30m": 30_000_000, "100m": 100_000_000}
THRESHOLD = 31
SINGLE_QUERIES = 1_000
BATCH = 1_000
HTTP_ROUNDS = 5


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the data ----------------------------------------------------------------


def make_bank(n: int, folder: Path) -> tuple[Path, Path, list[int]]:
    """N random PDQ hashes as (n, 4) uint64 words (entry ids 1..N), 2,000
    queries: bank hashes with 0-12 bits flipped (most match one entry) and
    random ones, and the ids of the entries the queries were made from."""
    rng = np.random.default_rng(21)
    words = rng.integers(0, 2**64, size=(n, 4), dtype=np.uint64)
    rows = rng.integers(0, n, size=1_600)
    picked = words[rows].copy()
    for row in picked:
        for bit in rng.choice(256, size=int(rng.integers(0, 13)), replace=False):
            row[bit // 64] ^= np.uint64(1) << np.uint64(bit % 64)
    queries = np.concatenate([picked, rng.integers(0, 2**64, size=(400, 4), dtype=np.uint64)])
    rng.shuffle(queries)
    np.save(folder / "words.npy", words)
    np.save(folder / "queries.npy", queries)
    return folder / "words.npy", folder / "queries.npy", sorted({int(row) + 1 for row in rows})


def hex_of(words: np.ndarray) -> list[str]:
    raw = words.astype(">u8").tobytes().hex()
    return [raw[i : i + 64] for i in range(0, len(raw), 64)]


# -- fresh worker processes ------------------------------------------------------


def worker_main(argv: list[str]) -> int:
    """``build URL WORDS SNAPSHOT K S`` or ``load URL SNAPSHOT K S QUERIES HOME``: one JSON line."""
    mode, url = argv[0], argv[1]
    from childsafe.banks.catalogue import read_banks
    from childsafe.banks.changes import latest_seq
    from childsafe.index import BankIndex, Matcher, PdqIndex
    from childsafe.index.shards import IndexPart
    from childsafe.store import open_database

    engine = open_database(url)
    out: dict[str, Any] = {"mode": mode}
    if mode == "build":
        words_path, snapshot, number, count = Path(argv[2]), Path(argv[3]), int(argv[4]), int(argv[5])
        part = IndexPart(number, count)
        all_words = np.load(words_path, mmap_mode="r")
        ids = np.arange(1, all_words.shape[0] + 1, dtype=np.int64)
        mine = ids % count == number if count > 1 else slice(None)
        words, part_ids = np.ascontiguousarray(all_words[mine]), ids[mine]
        del all_words, ids
        with engine.connect() as connection:
            (bank,) = read_banks(connection)
            seq = latest_seq(connection)
        index = BankIndex.empty(bank, seq, part)
        start = time.perf_counter()
        index.pdq = PdqIndex.build(words, part_ids)
        out["build_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        index.save(snapshot)
        out["save_seconds"] = time.perf_counter() - start
        out["hashes"] = len(index.pdq)
    else:
        snapshot, number, count = Path(argv[2]), int(argv[3]), int(argv[4])
        queries, home = np.load(argv[5]), Path(argv[6])
        # The process without the index: imports, the database, the search kernels compiled (on a tiny index).
        warm = PdqIndex.build(queries[:100].copy(), np.arange(100, dtype=np.int64))
        warm.search_many(queries[:10].copy(), THRESHOLD)
        del warm
        out["base_rss_mib"] = vm_rss_mib(os.getpid())
        start = time.perf_counter()
        matcher = Matcher(engine, home, snapshot, IndexPart(number, count))
        matcher.sync()
        out["load_seconds"] = time.perf_counter() - start
        out["loaded_from"] = matcher.follower.loaded_from
        values = [("pdq", value) for value in hex_of(queries)]
        start = time.perf_counter()
        hits = 0
        for query in values[:SINGLE_QUERIES]:
            hits += len(matcher.shard_search([query]).results[0])
        out["single_per_second"] = SINGLE_QUERIES / (time.perf_counter() - start)
        start = time.perf_counter()
        matcher.shard_search(values)
        out["batch_per_second"] = len(values) / (time.perf_counter() - start)
        out["hits_of_single_queries"] = hits
    print(json.dumps(out))
    return 0


def vm_rss_mib(pid: int) -> float:
    """A process's resident memory now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def index_mib(loaded: dict[str, Any]) -> float:
    """What the index itself takes: the loaded process's peak less its memory before the load."""
    return float(loaded["peak_rss_mib"] - loaded["base_rss_mib"])


def fresh(args: list[str]) -> dict[str, Any]:
    done, launched = run_measuring_peak_rss(
        [sys.executable, str(Path(__file__).resolve()), "--worker", *args], cwd=REPO_ROOT
    )
    if launched is None or launched["exit"] != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(2)
    result: dict[str, Any] = json.loads(launched["stdout"].strip().splitlines()[-1])
    result["peak_rss_mib"] = launched["children_maxrss_kib"] / 1024
    return result


# -- real services -------------------------------------------------------------------


class Serve:
    """``childsafe serve`` (one worker) on a free port."""

    def __init__(self, env: dict[str, str], home: Path) -> None:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        home.mkdir(parents=True, exist_ok=True)
        self.log = open(home / "serve.log", "w")  # noqa: SIM115 - closed in stop()
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "childsafe", "serve", "--port", str(self.port)],
            env={**env, "CHILDSAFE_HOME": str(home)}, stdout=subprocess.DEVNULL, stderr=self.log, cwd=REPO_ROOT,
        )  # fmt: skip
        import httpx

        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"a serve did not start: see {home / 'serve.log'}")
            try:
                if httpx.get(f"{self.url}/v1/ready", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.start_seconds = time.perf_counter() - started

    def rss_mib(self) -> float:
        return vm_rss_mib(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def http_rates(url: str, key: str, queries: list[str], path: str) -> tuple[float, float, list[Any]]:
    """Batched lookups/s (best of rounds), single GET /v1/match lookups/s (or 0 for a shard), and the answers."""
    import httpx

    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
        batches = [queries[start : start + BATCH] for start in range(0, len(queries), BATCH)]
        answers: list[Any] = []
        rates = []
        for round_number in range(HTTP_ROUNDS):
            start = time.perf_counter()
            for batch in batches:
                body = {"queries": [{"signal": "pdq", "value": value} for value in batch]}
                answer = client.post(path, json=body)
                answer.raise_for_status()
                if round_number == 0:
                    answers.extend(answer.json()["results"])
            rates.append(len(queries) / (time.perf_counter() - start))
        single = 0.0
        if path == "/v1/match/batch":
            start = time.perf_counter()
            for value in queries[:500]:
                client.get("/v1/match", params={"signal": "pdq", "value": value}).raise_for_status()
            single = 500 / (time.perf_counter() - start)
    return max(rates), single, answers


# -- the run --------------------------------------------------------------------------


def run(size: str, shards: int, scratch: Path) -> dict[str, Any]:
    from sqlalchemy import insert

    from childsafe.actions.keys import create_api_key
    from childsafe.banks import create_bank
    from childsafe.banks.catalogue import read_banks
    from childsafe.store import open_database
    from childsafe.store.models import BankEntry

    n = SIZES[size]
    log(f"generating {n:,} hashes")
    words_path, queries_path, found_ids = make_bank(n, scratch)
    url = f"sqlite:///{scratch / 'bench.db'}"
    engine = open_database(url)
    create_bank(engine, "big", scheme="uk")
    with engine.connect() as connection:
        (bank,) = read_banks(connection)
    key = create_api_key(engine, "bench", "curator")
    # The rows of the entries the queries find (their details are read for every match), not the other millions.
    with engine.begin() as connection:
        connection.execute(
            insert(BankEntry),
            [{"id": i, "bank_id": bank.id, "entry_key": f"{i:040x}", "category": "A"} for i in found_ids],
        )
    engine.dispose()

    report: dict[str, Any] = {"size": n, "shards": shards, "parts": {}}
    parts = [("unsharded", 0, 1)] + [(f"shard {k}/{shards}", k, shards) for k in range(shards)]
    snapshot = scratch / "snapshot"
    for name, number, count in parts:
        log(f"{name}: build and snapshot")
        built = fresh(["build", url, str(words_path), str(snapshot), str(number), str(count)])
        log(f"{name}: load and search")
        loaded = fresh(["load", url, str(snapshot), str(number), str(count), str(queries_path), str(scratch / name)])
        assert loaded["loaded_from"] == {"snapshot": 1}, loaded
        report["parts"][name] = {"build": built, "load": loaded}

    log("starting the services")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHILDSAFE_")}
    env.update(
        CHILDSAFE_DATABASE_URL=url, CHILDSAFE_INDEX_SNAPSHOT=str(snapshot), CHILDSAFE_RATE_PER_SECOND="1e9"
    )  # fmt: skip
    services: list[Serve] = []
    try:
        whole = Serve(env, scratch / "serve-whole")
        services.append(whole)
        shard_services = []
        for number in range(shards):
            shard_services.append(Serve({**env, "CHILDSAFE_INDEX_SHARD": f"{number}/{shards}"}, scratch / f"s{number}"))
        services += shard_services
        front_env = {**env, "CHILDSAFE_INDEX_SHARDS": ",".join(s.url for s in shard_services)}
        front = Serve({**front_env, "CHILDSAFE_INDEX_SHARDS_KEY": key}, scratch / "serve-front")
        services.append(front)
        queries = hex_of(np.load(queries_path))
        log("HTTP: unsharded")
        whole_batch, whole_single, expected = http_rates(whole.url, key, queries, "/v1/match/batch")
        log("HTTP: front")
        front_batch, front_single, got = http_rates(front.url, key, queries, "/v1/match/batch")
        shard_rates = []
        for number, service in enumerate(shard_services):
            log(f"HTTP: shard {number}")
            shard_rates.append(http_rates(service.url, key, queries, "/v1/shard/search")[0])
        report["http"] = {
            "unsharded": {
                "batch_per_second": whole_batch, "single_per_second": whole_single, "rss_mib": whole.rss_mib(),
                "start_seconds": whole.start_seconds,
            },
            "front": {
                "batch_per_second": front_batch, "single_per_second": front_single, "rss_mib": front.rss_mib(),
                "start_seconds": front.start_seconds,
            },
            "shards": [
                {"batch_per_second": rate, "rss_mib": service.rss_mib(), "start_seconds": service.start_seconds}
                for rate, service in zip(shard_rates, shard_services, strict=True)
            ],
            "same_answers": got == expected,
            "matched_queries": sum(1 for result in expected if result["matches"]),
        }  # fmt: skip
    finally:
        for service in services:
            service.stop()
    return report


def print_report(report: dict[str, Any]) -> None:
    n, shards = report["size"], report["shards"]
    rows = []
    for name, part in report["parts"].items():
        built, loaded = part["build"], part["load"]
        hashes = built["hashes"]
        rows.append([
            name, f"{hashes:,}", f"{built['build_seconds']:.1f} s", f"{built['save_seconds']:.1f} s",
            f"{loaded['load_seconds']:.1f} s", f"{loaded['peak_rss_mib']:,.0f} MiB",
            f"{loaded['peak_rss_mib'] * 10_000_000 / hashes / 1024:.2f} GiB",
            f"{index_mib(loaded):,.0f} MiB", f"{index_mib(loaded) * 10_000_000 / hashes / 1024:.2f} GiB",
            f"{loaded['single_per_second']:,.0f}", f"{loaded['batch_per_second']:,.0f}",
        ])  # fmt: skip
    print(f"\n{n:,} PDQ hashes, {shards} shards by entry id")
    print_table(
        ["index", "hashes", "build", "snapshot write", "snapshot load", "process peak", "per 10M",
         "index alone", "per 10M", "lookups/s single", "lookups/s batch"],
        rows,
    )  # fmt: skip
    http = report["http"]
    rows = [
        ["unsharded serve", f"{http['unsharded']['batch_per_second']:,.0f}",
         f"{http['unsharded']['single_per_second']:,.0f}", f"{http['unsharded']['rss_mib']:,.0f} MiB"],
        ["front over the shards", f"{http['front']['batch_per_second']:,.0f}",
         f"{http['front']['single_per_second']:,.0f}", f"{http['front']['rss_mib']:,.0f} MiB"],
    ] + [
        [f"shard {k}/{shards} (/v1/shard/search)", f"{shard['batch_per_second']:,.0f}", "-",
         f"{shard['rss_mib']:,.0f} MiB"]
        for k, shard in enumerate(http["shards"])
    ]  # fmt: skip
    print("\nThrough HTTP (real serve processes; batches of 1,000 queries; single: GET /v1/match one after another)")
    print_table(["service", "lookups/s batched", "lookups/s single", "VmRSS"], rows)
    print(f"  front's answers equal the unsharded service's: {http['same_answers']}"
          f" ({http['matched_queries']:,} of 2,000 queries matched)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        return worker_main(argv[1:])
    parser = argparse.ArgumentParser(description="a sharded PDQ index against an unsharded one")
    parser.add_argument("--size", choices=sorted(SIZES), default="10m")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--json", metavar="OUT", help="also write the raw figures to OUT")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    (BENCH_DIR / ".cache").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="index_shards-", dir=BENCH_DIR / ".cache") as scratch:
        report = run(args.size, args.shards, Path(scratch))
    report["seconds"] = time.perf_counter() - started
    report["machine"] = machine_info(memory=True)
    report["load_average_after"] = load_average()
    report["command"] = reproduce_command(__file__, argv)
    print_report(report)
    print(f"\n  {report['seconds']:.0f} s; load average after {report['load_average_after']}; {report['command']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    ok = bool(report["http"]["same_answers"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
