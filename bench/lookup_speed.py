"""Benchmark: ``childsafe lookup`` of 10,000 PDQ queries against a 1M-hash bank (SQLite).

Claim (issue 16): the whole command, start-up excluded, looks up at least
10x as many PDQ queries a second as faiss ``IndexBinaryFlat`` queried one at
a time, measured in the same run.

How it works:

* The bank and the queries are bench/index_speed.py's (generated from a fixed
  seed into ``bench/.cache/index_speed-v1/``): 1M random PDQ hashes, and the
  first ``--queries`` of its timing set, copies of bank hashes with 0-40 bits
  flipped (so about three in four have a match: each match's details are
  read from the database).
* The bank is imported once with ``childsafe bank import`` into a SQLite
  database under ``bench/.cache/lookup_speed-v1/`` (its CHILDSAFE_HOME), and
  a first ``childsafe lookup`` builds and saves its index; later runs reuse
  both.
* Each round runs ``childsafe lookup --json`` as a fresh process twice, with
  the queries on stdin: with one query, and with all of them. The difference
  is the time of the queries after the first, with the start-up (Python,
  imports, opening the database, loading the index, the first query) taken
  out: lookups/s = (queries - 1) / (T_all - T_one), from the shortest of
  each over the rounds (wall clock). The same from CPU seconds (user +
  system) is shown beside it, against faiss's one-thread CPU seconds: on a
  shared machine it moves less.
* In the same round faiss ``IndexBinaryFlat(256)`` (``range_search``, radius
  32, i.e. distance <= 31) answers the first ``--faiss-count`` of the same
  queries one call each, in its own process and venv
  (``bench/_index_baseline_worker.py``), with its default threads and with
  one (on a quarter of them: on a busy machine its threads are slow); the
  faster is the baseline. An exhaustive scan costs the same for every
  query, so a prefix gives its rate.
* ``--before TREE`` also times the command of another checkout (for example
  the code before issue 16) in the same rounds, run with the same Python.
* Checked: for the queries faiss answered, the command's matches (value,
  distance) are exactly faiss's.

Best of ``--rounds`` rounds for each side (the machine may be shared)::

    .venv/bin/python bench/lookup_speed.py
    .venv/bin/python bench/lookup_speed.py --before /path/to/older/checkout --json out.json

Exit status: 0 if the target is met, 1 if not, 2 on a setup error.
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
    ensure_baseline_venv,
    load_average,
    print_table,
    run_header,
    setup_error,
)
from index_speed import Baseline, bank_path, ensure_bank, ensure_queries, log, text_list

SCRIPT = "lookup_speed"
# Bump the version in this name whenever what is cached here changes.
CACHE = BENCH_DIR / ".cache" / "lookup_speed-v1"
BANK_NAME = "lookup"
TARGET_VS_FAISS = 10.0


def command_env(tree: Path) -> dict[str, str]:
    """The environment of a ``childsafe`` command run from ``tree``, on the bench's home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHILDSAFE_")}
    env["CHILDSAFE_HOME"] = str(CACHE / "home")
    env["PYTHONPATH"] = str(tree)
    return env


def childsafe(tree: Path, words: list[str], stdin: Path | None = None) -> tuple[float, float, str]:
    """Run ``python -m childsafe WORDS`` from ``tree`` as a fresh process;
    its wall-clock seconds, its CPU seconds (user + system) and its stdout."""
    with (
        open(stdin if stdin else os.devnull, "rb") as source,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "childsafe", *words],
            stdin=source,
            stdout=out,
            stderr=err,
            env=command_env(tree),
            cwd=CACHE,
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


def query_file(name: str, rows: np.ndarray) -> Path:
    """``rows`` as a ``childsafe lookup`` input, one ``pdq:HEX`` a line."""
    path = CACHE / name
    path.write_text("".join(f"pdq:{row.tobytes().hex()}\n" for row in rows))
    return path


def prepare(bank: np.ndarray) -> None:
    """Import the bank into the bench's SQLite database and build its index, once."""
    ready = CACHE / "home" / "ready"
    if ready.exists():
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    pdq_list = text_list(f"pdq-{bank.shape[0]}.txt", np.asarray(bank))
    log(f"importing the {bank.shape[0]:,}-hash bank into {CACHE.relative_to(REPO_ROOT)}/home (once)")
    childsafe(REPO_ROOT, ["bank", "import", BANK_NAME, str(pdq_list), "--signal", "pdq"])
    log("first lookup: builds and saves the index (once)")
    childsafe(REPO_ROOT, ["lookup", f"pdq:{bank[0].tobytes().hex()}"])
    ready.write_text("ok\n")


def matches_of(output: str) -> list[set[tuple[str, int]]]:
    """Per query of ``lookup --json`` output, its matches as (value, distance)."""
    return [{(m["value"], m["distance"]) for m in json.loads(line)["matches"]} for line in output.splitlines()]


def run(args: argparse.Namespace) -> dict[str, Any]:
    python = ensure_baseline_venv(SCRIPT, log)
    bank = ensure_bank("1m")
    _, _, timing_path = ensure_queries("1m", bank)
    queries = np.load(timing_path)[: args.queries]
    if len(queries) < args.queries:
        setup_error(SCRIPT, f"the timing set has only {len(queries)} queries")
    prepare(bank)
    all_queries = query_file("queries.txt", queries)
    one_query = query_file("one-query.txt", queries[:1])
    trees = {"childsafe": REPO_ROOT}
    if args.before:
        trees["before"] = Path(args.before).resolve()

    log("starting the faiss IndexBinaryFlat worker")
    faiss = Baseline(python, "faiss", bank_path("1m"), None)
    assert faiss.ready is not None
    rounds: list[dict[str, Any]] = []
    outputs: dict[str, str] = {}
    try:
        for number in range(1, args.rounds + 1):
            log(f"round {number}/{args.rounds}")
            timing: dict[str, Any] = {}
            for threads in (0, 1):
                # With its default threads faiss is slow on a busy 2-core machine (OpenMP threads
                # wait for each other): a quarter of the queries give its rate as well.
                count = args.faiss_count if threads == 1 else max(1, args.faiss_count // 4)
                answer = faiss.ask(op="time", queries=str(timing_path), count=count, threads=threads)
                timing[f"faiss_{'default' if threads == 0 else '1'}_threads"] = {
                    "queries": answer["count"],
                    "seconds": answer["seconds"],
                    "per_second": answer["count"] / answer["seconds"],
                    "threads": answer["threads"],
                }
                timing[f"faiss_{'default' if threads == 0 else '1'}_threads"]["cpu_seconds"] = answer["cpu_seconds"]
            for name, tree in trees.items():
                one, one_cpu, _ = childsafe(tree, ["lookup", "--json"], one_query)
                every, every_cpu, outputs[name] = childsafe(tree, ["lookup", "--json"], all_queries)
                timing[name] = {
                    "one_query_seconds": one,
                    "all_queries_seconds": every,
                    "one_query_cpu_seconds": one_cpu,
                    "all_queries_cpu_seconds": every_cpu,
                }
            rounds.append(timing)
        expected = [
            {(bank[position].tobytes().hex(), distance) for position, distance in found}
            for found in faiss.ask(op="results", queries=str(timing_path), count=args.faiss_count)["results"]
        ]
    finally:
        faiss.close()

    checks = {}
    for name, output in outputs.items():
        got = matches_of(output)
        if len(got) != len(queries):
            setup_error(SCRIPT, f"{name}: {len(got)} answers for {len(queries)} queries")
        checks[name] = {
            "compared_queries": len(expected),
            "same_as_faiss": sum(g == e for g, e in zip(got, expected, strict=False)),
            "queries_with_a_match": sum(bool(g) for g in got),
        }
    best: dict[str, float] = {}
    best_cpu: dict[str, float] = {}
    for name in ("faiss_default_threads", "faiss_1_threads"):
        best[name] = max(r[name]["per_second"] for r in rounds)
        best_cpu[name] = max(r[name]["queries"] / r[name]["cpu_seconds"] for r in rounds)
    for name in trees:
        # Start-up out: the shortest run of all the queries less the shortest of one.
        for figures, suffix in ((best, "seconds"), (best_cpu, "cpu_seconds")):
            every = min(r[name][f"all_queries_{suffix}"] for r in rounds)
            one = min(r[name][f"one_query_{suffix}"] for r in rounds)
            figures[name] = (len(queries) - 1) / (every - one) if every > one else float("nan")
    faiss_best = max(best["faiss_default_threads"], best["faiss_1_threads"])
    ratio = best["childsafe"] / faiss_best
    exact = all(c["same_as_faiss"] == c["compared_queries"] for c in checks.values())
    return {
        "queries": len(queries),
        "faiss_count": args.faiss_count,
        "rounds": rounds,
        "best_per_second": best,
        "best_per_cpu_second": best_cpu,
        "ratio_vs_faiss": ratio,
        "cpu_ratio_vs_faiss_1_thread": best_cpu["childsafe"] / best_cpu["faiss_1_threads"],
        "ratio_before_vs_faiss": best["before"] / faiss_best if "before" in best else None,
        "checks": checks,
        "target": f"childsafe lookup (whole command, start-up excluded) >= {TARGET_VS_FAISS:g}x faiss IndexBinaryFlat",
        "met": ratio >= TARGET_VS_FAISS and exact,
        "baseline_versions": faiss.ready["versions"],
    }


def report(result: dict[str, Any]) -> None:
    best = result["best_per_second"]
    faiss_best = max(best["faiss_default_threads"], best["faiss_1_threads"])
    rows = [
        [
            f"faiss IndexBinaryFlat, default threads ({result['faiss_count'] // 4:,} queries)",
            f"{best['faiss_default_threads']:,.0f}",
            "",
        ],
        [f"faiss IndexBinaryFlat, 1 thread ({result['faiss_count']:,} queries)", f"{best['faiss_1_threads']:,.0f}", ""],
    ]
    cpu = result["best_per_cpu_second"]
    rows[0].append(f"{cpu['faiss_default_threads']:,.0f}")
    rows[1].append(f"{cpu['faiss_1_threads']:,.0f}")
    rows[0].append("")
    rows[1].append("")
    for name, label in (("before", "childsafe lookup, --before tree"), ("childsafe", "childsafe lookup, this tree")):
        if name in best:
            rows.append(
                [
                    f"{label} ({result['queries']:,} queries)",
                    f"{best[name]:,.0f}",
                    f"{best[name] / faiss_best:.1f}x",
                    f"{cpu[name]:,.0f}",
                    f"{cpu[name] / cpu['faiss_1_threads']:.1f}x",
                ]
            )
    print()
    print_table(["best of rounds", "lookups/s (wall)", "vs faiss", "per CPU second", "vs faiss 1 thread (CPU)"], rows)
    print("\n  per round (seconds):")
    for number, timing in enumerate(result["rounds"], 1):
        parts = [f"faiss {timing['faiss_default_threads']['seconds']:.2f}/{timing['faiss_1_threads']['seconds']:.2f}"]
        for name in ("before", "childsafe"):
            if name in timing:
                parts.append(
                    f"{name} one {timing[name]['one_query_seconds']:.2f} all {timing[name]['all_queries_seconds']:.2f}"
                )
        print(f"    {number}: " + ", ".join(parts))
    for name, check in result["checks"].items():
        print(
            f"  {name}: {check['same_as_faiss']}/{check['compared_queries']} answers the same as faiss's;"
            f" {check['queries_with_a_match']:,} of {result['queries']:,} queries matched"
        )
    verdict = "MET" if result["met"] else "NOT MET"
    print(f"\n  {result['target']}: {result['ratio_vs_faiss']:.1f}x  {verdict}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="childsafe lookup against faiss IndexBinaryFlat, 1M bank")
    parser.add_argument("--queries", type=int, default=10_000, help="queries per command (default 10,000)")
    parser.add_argument(
        "--faiss-count", type=int, default=2_000, help="queries faiss answers one at a time per round (default 2,000)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best of each side is kept (default 3)")
    parser.add_argument("--before", metavar="TREE", help="also time the command of this checkout")
    parser.add_argument("--json", metavar="OUT", help="also write the raw figures to OUT")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    header = run_header(__file__, argv, ("childsafe", "numpy", "numba", "sqlalchemy"))
    print(f"Reproduce: {header['command']}", flush=True)
    result = {**header, **run(args), "load_average_end": load_average()}
    print(f"\n{result['date']}, load average {result['load_average_start']} -> {result['load_average_end']}")
    report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"raw figures written to {args.json}")
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
