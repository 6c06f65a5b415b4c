"""Benchmark: how a new service replica gets its index on PostgreSQL.

Claim (issue 21, replicated matchers): a new or restarted replica loads its
index from a snapshot (``childsafe index snapshot``,
``CHILDSAFE_INDEX_SNAPSHOT``) instead of building it from the database, so
it is ready sooner and the database is spared a full read. Measured here: the
time of a fresh process's first ``Matcher.sync()`` (the index a worker needs
before its first request), then of its first query (compiling the search
kernels, the same either way), and its peak memory, building from the database
(the baseline: what a replica with an empty CHILDSAFE_HOME did before) against
loading the snapshot, interleaved, on the same bank of random PDQ hashes.

    .venv/bin/python bench/replica_start.py                      # 1M PDQ hashes, 2 rounds
    .venv/bin/python bench/replica_start.py --entries 200000 --rounds 1

Needs the local PostgreSQL (``CHILDSAFE_TEST_POSTGRES_URL`` or
postgresql+psycopg://postgres@127.0.0.1:5432/test); works in a schema of its
own, dropped at the end. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from _common import REPO_ROOT, machine_info, print_table, reproduce_command, run_measuring_peak_rss, setup_error

SCRIPT = "replica_start"
POSTGRES_URL = os.environ.get("CHILDSAFE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

# The measured process: open the database, make a matcher (from the snapshot
# or not) on an empty CHILDSAFE_HOME, sync once, answer one query; print seconds.
_WORKER = """
import json, sys, time
from pathlib import Path
from childsafe.index import Matcher
from childsafe.store import open_database
url, root, snapshot, probe = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
engine = open_database(url)
start = time.perf_counter()
matcher = Matcher(engine, root, Path(snapshot) if snapshot else None)
matcher.sync()
synced = time.perf_counter()
found = matcher.lookup([("pdq", probe)])[0]
print(json.dumps({"seconds": synced - start, "first_query": time.perf_counter() - synced,
                  "loaded_from": matcher.follower.loaded_from, "found": len(found)}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO_ROOT))
    from childsafe.banks import create_bank, import_bank_file
    from childsafe.index import Matcher
    from childsafe.store import open_database

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    except sa.exc.OperationalError as exc:
        setup_error(SCRIPT, f"cannot reach PostgreSQL at {POSTGRES_URL}: {exc.orig}")
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    results: dict[str, list[dict[str, float]]] = {"build": [], "snapshot": []}
    try:
        with tempfile.TemporaryDirectory(prefix="replica-start-") as scratch:
            folder = Path(scratch)
            engine = open_database(url)
            rng = np.random.default_rng(20261201)
            hashes = rng.integers(0, 256, size=(args.entries, 32), dtype=np.uint8)
            listing = folder / "bank.txt"
            with listing.open("w") as out:
                for row in hashes:
                    out.write(f"pdq {row.tobytes().hex()}\n")
            create_bank(engine, "big", scheme="uk")
            start = time.perf_counter()
            import_bank_file(engine, "big", listing)
            print(f"imported {args.entries:,} PDQ hashes in {time.perf_counter() - start:.1f} s")
            snapshot = folder / "snapshot"
            start = time.perf_counter()
            Matcher(engine, folder / "writer").write_snapshot(snapshot)
            snapshot_seconds = time.perf_counter() - start
            print(f"snapshot written in {snapshot_seconds:.1f} s")
            engine.dispose()
            probe = hashes[len(hashes) // 2].tobytes().hex()
            for round_number in range(args.rounds):
                for mode in ("build", "snapshot"):
                    root = folder / f"home-{mode}-{round_number}"
                    command = [
                        sys.executable,
                        "-c",
                        _WORKER,
                        url,
                        str(root),
                        str(snapshot) if mode == "snapshot" else "",
                        probe,
                    ]
                    done, report = run_measuring_peak_rss(command, REPO_ROOT)
                    if report is None or report["exit"] != 0:
                        setup_error(SCRIPT, f"the {mode} process failed:\n{done.stderr[-2000:]}")
                    answer = json.loads(report["stdout"].strip().splitlines()[-1])
                    assert answer["found"] == 1, answer
                    expected = {"snapshot": 1} if mode == "snapshot" else {"built": 1}
                    assert answer["loaded_from"] == expected, answer
                    peak = report["children_maxrss_kib"] / 1024
                    results[mode].append(
                        {"seconds": answer["seconds"], "first_query": answer["first_query"], "peak_mib": peak}
                    )
                    print(f"round {round_number + 1}, {mode}: index {answer['seconds']:.2f} s, "
                          f"first query {answer['first_query']:.2f} s, peak {peak:,.0f} MiB")  # fmt: skip
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()

    best = {mode: min(run["seconds"] for run in runs) for mode, runs in results.items()}
    ratio = best["build"] / best["snapshot"]
    print_table(
        ["start-up of a replica", "index: best s", "median s", "first query s", "peak MiB"],
        [
            [mode, f"{best[mode]:.2f}", f"{statistics.median(r['seconds'] for r in runs):.2f}",
             f"{min(r['first_query'] for r in runs):.2f}", f"{max(r['peak_mib'] for r in runs):,.0f}"]
            for mode, runs in results.items()
        ],
    )  # fmt: skip
    print(
        f"the index from a snapshot is ready {ratio:.1f}x sooner than built from the database ({args.entries:,} PDQ hashes)"
    )
    print("reproduce:", reproduce_command(__file__, sys.argv[1:]))
    if args.json:
        report = {"machine": machine_info(), "entries": args.entries, "snapshot_write_seconds": snapshot_seconds,
                  "runs": results, "build_over_snapshot": ratio}  # fmt: skip
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
