"""Benchmark: childsafe's PDQ match index against faiss and threatexchange.

Banks of 1M and 10M random PDQ hashes (256 bits) with planted queries at
every Hamming distance 0-40. Checked here, in one run, on one machine:

* recall: every bank hash within the threshold (31) is found, with its
  distance, and nothing beyond it is returned, checked against a brute-force
  numpy scan of the whole bank for every query of the recall set;
* single-query lookups/s of ``PdqIndex.search``: at 1M >= 10x faiss
  ``IndexBinaryFlat`` range search run one query at a time, and >= 10x
  threatexchange's ``PDQIndex`` (what Meta's Hasher-Matcher-Actioner uses);
  at 10M >= 20x faiss flat;
* at 10M: peak memory <= 1.5 GB, and load from disk (+ first query) <= 10 s;
* importing a 1M-line text list of md5 hashes into SQLite
  (``childsafe.banks.import_bank_file``) at >= 50,000 entries/s.

Also reported: batch lookups/s (a loop over many queries; and, separately,
``Matcher.lookup`` including the database look-up of each match's
metadata), build time, save time, load time of a whole ``Matcher`` (1M),
and peak memory of build and of load + 1000 queries in fresh processes.

How it works:

* The bank is generated from a fixed seed (``numpy.random.default_rng``)
  and written to ``bench/.cache/index_speed-v1/`` as an (n, 32) uint8 .npy
  file, the bytes of each hash's hex form; both sides read that same file.
  Nothing is downloaded and nothing is committed.
* Planted clusters: ``ANCHORS`` random query hashes, each with 41 bank
  hashes at distances exactly 0, 1, ..., 40 from it (so each such query has
  32 answers inside the threshold and 9 just beyond it). Near queries: a
  random bank hash with exactly d random bits flipped, for every d in
  0..40, several per d.
* The baselines run in their own venv, ``bench/.venv-baseline`` (created on
  first use from ``bench/requirements-baseline.txt``), one long-lived
  process per baseline index (``bench/_index_baseline_worker.py``), so
  rounds of childsafe and the baselines can be interleaved.
* Lookups/s are wall-clock, one query per call, best of ``--rounds`` rounds
  for each side (the machine may be shared); the ratio compares the same
  queries on both sides. faiss is timed with its default OpenMP threads
  and with one thread; the faster of the two is the baseline of record.

Run from the repository root with the project's venv::

    .venv/bin/python bench/index_speed.py                # 1M bank, a few minutes
    .venv/bin/python bench/index_speed.py --size 10m     # 10M bank
    .venv/bin/python bench/index_speed.py --size all --json out.json

Exit status: 0 if every target checked is met, 1 if not, 2 on a setup error.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import functools
import io
import json
import os
import pstats
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    BENCH_DIR,
    ensure_baseline_venv,
    machine_info,
    package_versions,
    print_table,
    reproduce_command,
    run_measuring_peak_rss,
    setup_error,
)

SCRIPT = "index_speed"  # names this script in setup errors
# Bump the version in this name whenever the generated data changes.
CACHE_DIR = BENCH_DIR / ".cache" / "index_speed-v1"
BASELINE_WORKER = BENCH_DIR / "_index_baseline_worker.py"

THRESHOLD = 31  # PDQ match threshold: distance <= 31 is a match
MAX_PLANTED_DISTANCE = 40
ANCHORS = 8  # planted clusters: 41 bank hashes at distances 0..40 from each anchor
SIZES = {"100k": 100_000, "1m": 1_000_000, "10m": 10_000_000}  # 100k: a smoke test, no targets
SEED = 20_260_101

# Per size: near queries per distance in the recall set, how many of the
# recall set each baseline is timed on (None = all), the size of the
# timing set for childsafe's throughput figure.
PLAN = {
    "100k": {"per_distance": 2, "faiss_count": None, "te_count": None, "timing_count": 2_000},
    "1m": {"per_distance": 10, "faiss_count": None, "te_count": None, "timing_count": 20_000},
    "10m": {"per_distance": 5, "faiss_count": 41, "te_count": None, "timing_count": 4_000},
}

TARGET_VS_FAISS = {"1m": 10.0, "10m": 20.0}
TARGET_VS_TE = {"1m": 10.0}
TARGET_PEAK_MEMORY_BYTES = {"10m": 1.5e9}  # 1.5 GB (10^9 bytes, the stricter reading)
TARGET_LOAD_SECONDS = {"10m": 10.0}
TARGET_IMPORT_RATE = 50_000.0  # entries/s
IMPORT_LINES = 1_000_000
LOAD_WORKER_QUERIES = 1_000


def log(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------
# Data: the bank, planted clusters, recall and timing queries (all seeded)


def flip_bits(row: np.ndarray, distance: int, rng: np.random.Generator) -> np.ndarray:
    """A copy of a (32,) uint8 hash with exactly ``distance`` distinct bits flipped."""
    out = row.copy()
    for bit in rng.choice(256, size=distance, replace=False).tolist():
        out[bit >> 3] ^= np.uint8(1 << (bit & 7))
    return out


def bank_path(size: str) -> Path:
    return CACHE_DIR / f"bank-{size}.npy"


def ensure_bank(size: str) -> np.ndarray:
    """The bank of ``size`` as an (n, 32) uint8 array (memory-mapped from the cache)."""
    path = bank_path(size)
    anchors_path = CACHE_DIR / f"anchors-{size}.npy"
    if not (path.exists() and anchors_path.exists()):
        n = SIZES[size]
        log(f"generating the {size} bank ({n:,} random PDQ hashes, {n * 32 / 1e6:.0f} MB)")
        rng = np.random.default_rng([SEED, n])
        bank = np.frombuffer(rng.bytes(n * 32), np.uint8).reshape(n, 32).copy()
        anchors = np.frombuffer(rng.bytes(ANCHORS * 32), np.uint8).reshape(ANCHORS, 32).copy()
        rows = rng.choice(n, size=ANCHORS * (MAX_PLANTED_DISTANCE + 1), replace=False)
        for a in range(ANCHORS):
            for d in range(MAX_PLANTED_DISTANCE + 1):
                bank[rows[a * (MAX_PLANTED_DISTANCE + 1) + d]] = flip_bits(anchors[a], d, rng)
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        np.save(path.with_suffix(".tmp.npy"), bank)
        np.save(anchors_path, anchors)
        os.replace(path.with_suffix(".tmp.npy"), path)
    return np.load(path, mmap_mode="r")


def entry_ids(n: int) -> np.ndarray:
    """The entry id of each bank row: a seeded permutation of 1..n, so a
    mix-up of row numbers and entry ids cannot pass the recall check."""
    return np.random.default_rng([SEED, n, 1]).permutation(n).astype(np.int64) + 1


def ensure_queries(size: str, bank: np.ndarray) -> tuple[Path, dict[str, np.ndarray], Path]:
    """The recall set (anchors first, then near queries round-robin over
    d = 0..40, so any prefix of 41 covers every distance) and the larger
    timing set. Returns their .npy paths and the recall set's labels."""
    plan = PLAN[size]
    recall_path = CACHE_DIR / f"recall-{size}.npy"
    labels_path = CACHE_DIR / f"recall-{size}-labels.npz"
    timing_path = CACHE_DIR / f"timing-{size}.npy"
    if not (recall_path.exists() and labels_path.exists() and timing_path.exists()):
        n = bank.shape[0]
        rng = np.random.default_rng([SEED, n, 2])
        anchors = np.load(CACHE_DIR / f"anchors-{size}.npy")
        queries, kinds, distances = [], [], []
        for anchor in anchors:
            queries.append(anchor)
            kinds.append("anchor")
            distances.append(-1)
        for _ in range(plan["per_distance"]):
            for d in range(MAX_PLANTED_DISTANCE + 1):
                queries.append(flip_bits(np.asarray(bank[int(rng.integers(n))]), d, rng))
                kinds.append("near")
                distances.append(d)
        np.save(recall_path, np.stack(queries))
        np.savez(labels_path, kind=np.array(kinds), distance=np.array(distances))
        timing = [
            flip_bits(np.asarray(bank[int(rng.integers(n))]), i % (MAX_PLANTED_DISTANCE + 1), rng)
            for i in range(plan["timing_count"])
        ]
        np.save(timing_path, np.stack(timing))
    labels = dict(np.load(labels_path))
    return recall_path, labels, timing_path


def text_list(name: str, rows: np.ndarray) -> Path:
    """A text hash list, one lowercase hex value per line (cached)."""
    path = CACHE_DIR / name
    if not path.exists():
        text = rows.tobytes().hex()
        width = rows.shape[1] * 2
        with open(path.with_suffix(".tmp"), "w") as out:
            for start in range(0, len(text), width * 100_000):
                block = text[start : start + width * 100_000]
                out.write("\n".join(block[i : i + width] for i in range(0, len(block), width)) + "\n")
        os.replace(path.with_suffix(".tmp"), path)
    return path


def md5_list() -> Path:
    if (CACHE_DIR / "md5-1m.txt").exists():
        return CACHE_DIR / "md5-1m.txt"
    rng = np.random.default_rng([SEED, 5])
    return text_list("md5-1m.txt", np.frombuffer(rng.bytes(IMPORT_LINES * 16), np.uint8).reshape(-1, 16))


def to_words(rows: np.ndarray) -> np.ndarray:
    """(n, 32) uint8 hashes as childsafe's (n, 4) uint64 words (big-endian, as hex_to_words)."""
    return np.ascontiguousarray(rows).view(">u8").astype(np.uint64).reshape(-1, 4)


# --------------------------------------------------------------------------
# Brute force: the exact answer, by numpy over the whole bank


def brute_force(words: np.ndarray, ids: np.ndarray, query_words: np.ndarray) -> list[set[tuple[int, int]]]:
    """For each query, {(entry id, distance)} of every bank hash within THRESHOLD."""
    answers = []
    block = 1 << 20
    for q in query_words:
        found: set[tuple[int, int]] = set()
        for start in range(0, words.shape[0], block):
            distances = np.bitwise_count(words[start : start + block] ^ q).sum(axis=1, dtype=np.int64)
            rows = np.flatnonzero(distances <= THRESHOLD)
            found.update(zip((ids[start + rows]).tolist(), distances[rows].tolist(), strict=True))
        answers.append(found)
    return answers


def check_brute_force(bank: np.ndarray, words: np.ndarray, queries: np.ndarray) -> None:
    """Cross-check numpy's bitwise_count popcount against np.unpackbits on a slice."""
    rows = np.asarray(bank[:50_000])
    for q in queries[:3]:
        by_bits = np.unpackbits(rows ^ q, axis=1).sum(axis=1)
        by_count = np.bitwise_count(words[:50_000] ^ to_words(q[None])[0]).sum(axis=1)
        if not np.array_equal(by_bits, by_count):
            setup_error(SCRIPT, "brute force self-check failed: bitwise_count disagrees with unpackbits")


def compare(found: list[set[tuple[int, int]]], expected: list[set[tuple[int, int]]]) -> dict[str, int]:
    """Hits expected, found, missed; false = returned but not expected (beyond
    the threshold, wrong distance or wrong entry); beyond = returned with a
    distance over the threshold."""
    total = dict(expected=0, found=0, missed=0, false=0, beyond=0, queries=len(expected))
    for got, want in zip(found, expected, strict=True):
        total["expected"] += len(want)
        total["found"] += len(got & want)
        total["missed"] += len(want - got)
        total["false"] += len(got - want)
        total["beyond"] += sum(1 for _, d in got if d > THRESHOLD)
    return total


def per_distance(
    found: list[set[tuple[int, int]]], expected: list[set[tuple[int, int]]], labels: dict[str, np.ndarray]
) -> list[dict[str, Any]]:
    """The recall check per group of planted distance (anchors are their own group)."""
    groups = [("anchors (41 planted at 0..40)", lambda k, d: k == "anchor")]
    for low, high in ((0, 7), (8, 15), (16, 23), (24, 31), (32, 40)):
        groups.append((f"near, d {low}-{high}", lambda k, d, lo=low, hi=high: k == "near" and lo <= d <= hi))
    out = []
    for name, test in groups:
        picked = [
            i
            for i, (k, d) in enumerate(zip(labels["kind"].tolist(), labels["distance"].tolist(), strict=True))
            if test(k, d)
        ]
        out.append({"group": name, **compare([found[i] for i in picked], [expected[i] for i in picked])})
    return out


# --------------------------------------------------------------------------
# The baseline processes


class Baseline:
    """One baseline index in its own process (see _index_baseline_worker.py)."""

    def __init__(self, python: Path, kind: str, bank: Path, timeout: float | None) -> None:
        self.kind = kind
        self.process = subprocess.Popen(
            [str(python), str(BASELINE_WORKER), kind, str(bank)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=CACHE_DIR,
        )
        self.ready = self._read(timeout)
        if self.ready is None:
            self.close()

    def _read(self, timeout: float | None) -> dict[str, Any] | None:
        assert self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            return None
        line = self.process.stdout.readline()
        if not line:
            setup_error(SCRIPT, f"the {self.kind} baseline worker exited (code {self.process.wait()})")
        return json.loads(line)

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        answer = self._read(None)
        assert answer is not None
        return answer

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.process.stdin.flush()
                self.process.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


# --------------------------------------------------------------------------
# Fresh-process measurements (peak memory, load from disk)


def fresh_process(args: list[str]) -> dict[str, Any]:
    """Run this script's worker mode in a fresh process, with its peak memory
    measured by a launcher (see run_measuring_peak_rss). The worker also
    reports its own VmHWM."""
    done, launched = run_measuring_peak_rss(
        [sys.executable, str(Path(__file__).resolve()), "--worker", *args], cwd=CACHE_DIR
    )
    if launched is None:
        sys.stderr.write(done.stderr)
        setup_error(SCRIPT, f"fresh process {args[0]} failed to start")
    if launched["exit"] != 0:
        sys.stderr.write(done.stderr[-3000:])
        setup_error(SCRIPT, f"worker {args[0]} failed (exit {launched['exit']})")
    result = json.loads(launched["stdout"].strip().splitlines()[-1])
    result["peak_rss_mib"] = launched["children_maxrss_kib"] / 1024
    return result


def own_memory() -> dict[str, float]:
    import resource

    hwm = None
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    return {"ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "vmhwm_mib": hwm}


def evict_from_page_cache(folder: Path) -> None:
    """Drop the files under ``folder`` from the OS page cache (cold load)."""
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def worker_main(argv: list[str]) -> int:
    """Worker modes, each run in a fresh process; print one JSON line."""
    mode = argv[0]
    start = time.perf_counter()
    from childsafe.index.pdq_index import PdqIndex  # noqa: PLC0415 - timed

    import_seconds = time.perf_counter() - start
    out: dict[str, Any] = {"mode": mode, "import_seconds": import_seconds}
    if mode == "build":
        ids = entry_ids(int(np.load(argv[1], mmap_mode="r").shape[0]))
        # The bank file's mapping is gone after this line, so its pages do not
        # count in this process's RSS: only the words and the index do.
        words = to_words(np.load(argv[1], mmap_mode="r"))
        start = time.perf_counter()
        PdqIndex.build(words, ids)
        out["build_seconds"] = time.perf_counter() - start
    elif mode == "load":
        folder, queries, cold = Path(argv[1]), to_words(np.load(argv[2])), argv[3] == "cold"
        if cold:
            evict_from_page_cache(folder)
        start = time.perf_counter()
        index = PdqIndex.load(folder)
        out["load_seconds"] = time.perf_counter() - start
        index.search(queries[0], THRESHOLD)
        out["load_first_query_seconds"] = time.perf_counter() - start
        out["process_to_first_result_seconds"] = out["load_first_query_seconds"] + import_seconds
        start = time.perf_counter()
        for q in queries[1:]:
            index.search(q, THRESHOLD)
        out["next_queries"] = len(queries) - 1
        out["next_queries_seconds"] = time.perf_counter() - start
    elif mode == "stack":
        out.update(stack_worker(argv[1], Path(argv[2]), Path(argv[3]), Path(argv[4])))
    out["memory"] = own_memory()
    print(json.dumps(out))
    return 0


def stack_worker(url: str, root: Path, recall: Path, timing: Path) -> dict[str, Any]:
    """Whole stack in a fresh process: open the database, Matcher.sync()
    (loads the saved index), first lookup, then lookups single and batched."""
    from childsafe.index import Matcher  # noqa: PLC0415
    from childsafe.store import open_database  # noqa: PLC0415

    out: dict[str, Any] = {}
    recall_hex = [row.tobytes().hex() for row in np.load(recall)]
    timing_hex = [row.tobytes().hex() for row in np.load(timing)][:5000]
    start = time.perf_counter()
    engine = open_database(url)
    matcher = Matcher(engine, root)
    matcher.sync()
    out["open_sync_seconds"] = time.perf_counter() - start
    matcher.lookup([("pdq", timing_hex[0])])
    out["open_sync_first_lookup_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    for value in timing_hex[1:1001]:
        matcher.lookup([("pdq", value)])
    out["single_count"] = 1000
    out["single_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    for begin in range(0, len(timing_hex), 1000):
        matcher.lookup([("pdq", value) for value in timing_hex[begin : begin + 1000]])
    out["batch_count"] = len(timing_hex)
    out["batch_size"] = 1000
    out["batch_seconds"] = time.perf_counter() - start
    results = matcher.lookup([("pdq", value) for value in recall_hex])
    out["recall_results"] = [[[m.value, m.distance] for m in matches] for matches in results]
    engine.dispose()
    return out


# --------------------------------------------------------------------------
# childsafe in this process


def time_ours(index: Any, query_words: np.ndarray) -> dict[str, Any]:
    """One query per call; each call timed on its own."""
    index.search(query_words[-1], THRESHOLD)  # warm-up, untimed
    latencies = []
    wall, cpu = time.perf_counter(), time.process_time()
    for q in query_words:
        start = time.perf_counter_ns()
        index.search(q, THRESHOLD)
        latencies.append((time.perf_counter_ns() - start) / 1000)
    return {
        "count": len(query_words),
        "seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
        "latency_us": latencies,
    }


def time_ours_loop(index: Any, query_words: np.ndarray) -> dict[str, Any]:
    """A plain loop over many queries (throughput)."""
    index.search(query_words[-1], THRESHOLD)
    wall, cpu = time.perf_counter(), time.process_time()
    for q in query_words:
        index.search(q, THRESHOLD)
    return {"count": len(query_words), "seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu}


def profile_ours(index: Any, query_words: np.ndarray) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for q in query_words:
        index.search(q, THRESHOLD)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(14)
    return text.getvalue()


def kernel_only(index: Any, query_words: np.ndarray) -> float:
    """Seconds for the compiled search kernel alone over ``query_words`` (no Python wrapping)."""
    from childsafe.index import _kernels as kernels  # noqa: PLC0415

    positions = np.empty(1 << 16, np.int64)
    distances = np.empty(1 << 16, np.int64)
    args = index._kernel_arrays()
    start = time.perf_counter()
    for q in query_words:
        kernels.search(q, THRESHOLD, -1, -1, *args, positions, distances)
    return time.perf_counter() - start


# --------------------------------------------------------------------------
# One bank size


def rate(timing: dict[str, Any], count: int | None = None) -> float:
    """Lookups/s over the whole timed loop; with a smaller ``count``, from
    the first ``count`` per-call latencies."""
    if count is None or count >= timing["count"] or "latency_us" not in timing:
        return timing["count"] / timing["seconds"]
    return count / (sum(timing["latency_us"][:count]) / 1e6)


def best(rounds: list[dict[str, Any]], count: int | None = None) -> dict[str, float]:
    rates = [rate(r, count) for r in rounds]
    return {"best": max(rates), "median": statistics.median(rates), "rounds": rates}


def run_size(size: str, args: argparse.Namespace, python: Path) -> dict[str, Any]:
    from childsafe.index.pdq_index import PdqIndex  # noqa: PLC0415

    n = SIZES[size]
    plan = PLAN[size]
    print(f"\n== {size} bank ({n:,} hashes) ==", flush=True)
    bank = ensure_bank(size)
    recall_path, labels, timing_path = ensure_queries(size, bank)
    recall_rows = np.load(recall_path)
    recall_words = to_words(recall_rows)
    timing_words = to_words(np.load(timing_path))
    faiss_count = plan["faiss_count"] or len(recall_rows)
    te_count = plan["te_count"] or len(recall_rows)
    result: dict[str, Any] = {
        "size": size,
        "bank_hashes": n,
        "recall_queries": len(recall_rows),
        "timing_queries": len(timing_words),
    }

    log("starting the faiss baseline process")
    faiss_worker = Baseline(python, "faiss", bank_path(size), None)
    assert faiss_worker.ready is not None
    result["faiss_build"] = {k: faiss_worker.ready[k] for k in ("build_seconds", "memory", "default_threads")}
    result["baseline_versions"] = faiss_worker.ready["versions"]
    te_worker: Baseline | None = None
    if not args.no_te:
        budget = args.te_budget if size != "1m" else None
        log(
            "starting the threatexchange baseline process (builds PDQIndex)"
            + (f", budget {budget:g} s" if budget else "")
        )
        te_worker = Baseline(python, "te", bank_path(size), budget)
        if te_worker.ready is None:
            result["te_skipped"] = f"threatexchange PDQIndex did not finish building within {budget:g} s; skipped"
            log(result["te_skipped"])
            te_worker = None
        else:
            result["te_build"] = {k: te_worker.ready[k] for k in ("build_seconds", "hex_seconds", "memory")}
    else:
        result["te_skipped"] = "skipped (--no-te)"

    log("building childsafe's PdqIndex")
    words = to_words(bank)
    ids = entry_ids(n)
    start = time.perf_counter()
    index = PdqIndex.build(words, ids)
    result["build_seconds"] = time.perf_counter() - start
    folder = CACHE_DIR / f"index-{size}"
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    index.save(folder)
    result["save_seconds"] = time.perf_counter() - start
    result["index_disk_mb"] = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
    hex_sample = [row.tobytes().hex() for row in np.asarray(bank[:100_000])]
    from childsafe.index.pdq_index import hex_to_words  # noqa: PLC0415

    start = time.perf_counter()
    hex_to_words(hex_sample)
    result["hex_to_words_seconds_per_million"] = (time.perf_counter() - start) * 1e6 / len(hex_sample)

    # Recall: childsafe and both baselines against brute force.
    log(f"recall: brute force over the bank for {len(recall_rows)} queries")
    check_brute_force(bank, words, recall_rows)
    start = time.perf_counter()
    expected = brute_force(words, ids, recall_words)
    result["brute_force_seconds_per_query"] = (time.perf_counter() - start) / len(recall_rows)
    row_of_hex: dict[int, str] = {}
    ours: list[set[tuple[int, int]]] = []
    value_errors = 0
    inverse = np.empty(n + 1, np.int64)
    inverse[ids] = np.arange(n)
    index.search(recall_words[0], THRESHOLD)
    for q in recall_words:
        hits = index.search(q, THRESHOLD)
        ours.append({(h.entry_id, h.distance) for h in hits})
        for h in hits:
            row = int(inverse[h.entry_id])
            row_of_hex.setdefault(row, bytes(bank[row]).hex())
            value_errors += h.value != row_of_hex[row]
    result["recall"] = {"childsafe": {**compare(ours, expected), "wrong_values": value_errors}}
    result["recall_per_distance"] = per_distance(ours, expected, labels)

    def baseline_recall(worker: Baseline, count: int) -> dict[str, int]:
        answer = worker.ask(op="results", queries=str(recall_path), count=count)["results"]
        got = [{(int(ids[p]), int(d)) for p, d in found} for found in answer]
        return compare(got, expected[:count])

    result["recall"]["faiss"] = baseline_recall(faiss_worker, faiss_count)
    if te_worker is not None:
        result["recall"]["te"] = baseline_recall(te_worker, te_count)

    # Timing rounds, interleaved; each side's order flips every round.
    timings: dict[str, list[dict[str, Any]]] = {}
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("ours", functools.partial(time_ours, index, recall_words)),
        (
            "faiss_default",
            functools.partial(faiss_worker.ask, op="time", queries=str(recall_path), count=faiss_count, threads=0),
        ),
        (
            "faiss_1thread",
            functools.partial(faiss_worker.ask, op="time", queries=str(recall_path), count=faiss_count, threads=1),
        ),
    ]
    if te_worker is not None:
        steps.append(
            (
                "te_default",
                functools.partial(te_worker.ask, op="time", queries=str(recall_path), count=te_count, threads=0),
            )
        )
        steps.append(
            (
                "te_1thread",
                functools.partial(te_worker.ask, op="time", queries=str(recall_path), count=te_count, threads=1),
            )
        )
    steps.append(("ours_loop", functools.partial(time_ours_loop, index, timing_words)))
    for r in range(args.rounds):
        log(f"timing round {r + 1}/{args.rounds}")
        for name, step in reversed(steps) if r % 2 else steps:
            timings.setdefault(name, []).append(step())
    timings["faiss_batch"] = [faiss_worker.ask(op="batch", queries=str(recall_path), count=len(recall_rows), threads=0)]
    if te_worker is not None:
        timings["te_batch"] = [te_worker.ask(op="batch", queries=str(recall_path), count=len(recall_rows), threads=0)]

    lookups: dict[str, Any] = {
        "childsafe_single": best(timings["ours"]),
        "childsafe_single_on_faiss_queries": best(timings["ours"], faiss_count),
        "childsafe_single_on_te_queries": best(timings["ours"], te_count),
        "childsafe_loop": best(timings["ours_loop"]),
        "faiss_default_threads": best(timings["faiss_default"]),
        "faiss_1thread": best(timings["faiss_1thread"]),
        "faiss_batch_range_search": best(timings["faiss_batch"]),
    }
    all_latencies = [x for t in timings["ours"] for x in t["latency_us"]]
    lookups["childsafe_latency_us"] = {
        "p50": float(np.percentile(all_latencies, 50)),
        "p99": float(np.percentile(all_latencies, 99)),
        "max": max(all_latencies),
    }
    faiss_best = max(lookups["faiss_default_threads"]["best"], lookups["faiss_1thread"]["best"])
    result["ratio_vs_faiss"] = lookups["childsafe_single_on_faiss_queries"]["best"] / faiss_best
    result["faiss_counts"] = faiss_count
    if te_worker is not None:
        lookups["te_default_threads"] = best(timings["te_default"])
        lookups["te_1thread"] = best(timings["te_1thread"])
        lookups["te_batch"] = best(timings["te_batch"])
        te_best = max(lookups["te_default_threads"]["best"], lookups["te_1thread"]["best"])
        result["ratio_vs_te"] = lookups["childsafe_single_on_te_queries"]["best"] / te_best
        result["te_counts"] = te_count
        result["te_build"]["memory_after"] = te_worker.ask(op="memory")["memory"]
    result["lookups_per_second"] = lookups
    result["cpu_seconds_per_query"] = {
        name: statistics.median(t["cpu_seconds"] / t["count"] for t in runs) for name, runs in timings.items()
    }
    if args.profile:
        result["profile"] = profile_ours(index, timing_words[:2000])
        result["kernel_only_per_second"] = 2000 / kernel_only(index, timing_words[:2000])
    faiss_worker.close()
    if te_worker is not None:
        te_worker.close()
    result["main_process_memory"] = own_memory()
    del index, words

    # Fresh processes: peak memory and load from disk.
    log("fresh process: build only (peak memory)")
    result["fresh_build"] = fresh_process(["build", str(bank_path(size))])
    log("fresh process: cold load (index evicted from page cache) + first query + queries")
    load_queries = CACHE_DIR / f"load-queries-{size}.npy"
    np.save(load_queries, np.load(timing_path)[:LOAD_WORKER_QUERIES])
    result["fresh_load_cold"] = fresh_process(["load", str(folder), str(load_queries), "cold"])
    log("fresh process: warm load (index in page cache) + first query + queries")
    result["fresh_load_warm"] = fresh_process(["load", str(folder), str(load_queries), "warm"])

    if size in ("100k", "1m") and not args.no_stack:
        result["stack"] = run_stack(bank, recall_path, timing_path, expected, inverse)
    return result


def run_stack(
    bank: np.ndarray, recall_path: Path, timing_path: Path, expected: list[set[tuple[int, int]]], inverse: np.ndarray
) -> dict[str, Any]:
    """The whole stack on the 1M bank: import the list into SQLite, first
    Matcher.sync() (builds from the database and saves), then a fresh
    process that loads it and looks up."""
    from childsafe.banks import import_bank_file  # noqa: PLC0415
    from childsafe.index import Matcher  # noqa: PLC0415
    from childsafe.store import open_database  # noqa: PLC0415

    out: dict[str, Any] = {}
    pdq_list = text_list(f"pdq-{bank.shape[0]}.txt", np.asarray(bank))
    with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="stack-") as tmp:
        url = f"sqlite:///{tmp}/childsafe.db"
        root = Path(tmp) / "index"
        engine = open_database(url)
        log(f"whole stack: import_bank_file of the {bank.shape[0]:,}-line PDQ list (signal='pdq')")
        start = time.perf_counter()
        imported = import_bank_file(engine, "big", pdq_list, signal="pdq")
        out["pdq_import_seconds"] = time.perf_counter() - start
        out["pdq_import_added"] = imported.added
        log("whole stack: first Matcher.sync() (builds from the database, saves)")
        start = time.perf_counter()
        Matcher(engine, root).sync()
        out["first_sync_build_save_seconds"] = time.perf_counter() - start
        engine.dispose()
        log("whole stack: fresh process, Matcher.sync() loads the saved index, lookups")
        worker = fresh_process(["stack", url, str(root), str(recall_path), str(timing_path)])
    # Match.entry_id is the database's id: compare (hash value, distance) instead.
    wanted = [{(bytes(bank[int(inverse[e])]).hex(), d) for e, d in want} for want in expected]
    got = [{(value, int(d)) for value, d in matches} for matches in worker.pop("recall_results")]
    out["recall"] = compare(got, wanted)
    out.update(worker)
    return out


def run_import() -> dict[str, Any]:
    """Import speed: a 1M-line md5 list into a fresh SQLite database."""
    from childsafe.banks import import_bank_file  # noqa: PLC0415
    from childsafe.store import open_database  # noqa: PLC0415

    print("\n== import of a 1M-line md5 list into SQLite ==", flush=True)
    path = md5_list()
    with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="import-") as tmp:
        engine = open_database(f"sqlite:///{tmp}/childsafe.db")
        log("import_bank_file(engine, 'speed', md5-1m.txt)")
        start = time.perf_counter()
        imported = import_bank_file(engine, "speed", path)
        seconds = time.perf_counter() - start
        engine.dispose()
        db_mb = Path(f"{tmp}/childsafe.db").stat().st_size / 1e6
    return {
        "lines": IMPORT_LINES,
        "added": imported.added,
        "rejected": imported.rejected,
        "seconds": seconds,
        "entries_per_second": imported.added / seconds,
        "database_mb": db_mb,
    }


# --------------------------------------------------------------------------
# Reporting


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def targets_of(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target checked in this run, with the measured figure."""
    checks = []
    for size, res in report["sizes"].items():
        rec = res["recall"]["childsafe"]
        ok = rec["missed"] == 0 and rec["false"] == 0 and rec["beyond"] == 0 and rec["wrong_values"] == 0
        checks.append(
            {
                "target": f"{size}: recall 100%, 0 false matches",
                "measured": f"{rec['found']}/{rec['expected']} found, {rec['false']} false",
                "ok": ok,
            }
        )
        if size in TARGET_VS_FAISS:
            target = TARGET_VS_FAISS[size]
            checks.append(
                {
                    "target": f"{size}: lookups/s >= {target:g}x faiss flat (one at a time)",
                    "measured": f"{res['ratio_vs_faiss']:.1f}x",
                    "ok": res["ratio_vs_faiss"] >= target,
                }
            )
        if size in TARGET_VS_TE:
            target = TARGET_VS_TE[size]
            if "ratio_vs_te" in res:
                checks.append(
                    {
                        "target": f"{size}: lookups/s >= {target:g}x threatexchange PDQIndex",
                        "measured": f"{res['ratio_vs_te']:.1f}x",
                        "ok": res["ratio_vs_te"] >= target,
                    }
                )
            else:
                checks.append(
                    {
                        "target": f"{size}: lookups/s >= {target:g}x threatexchange PDQIndex",
                        "measured": res.get("te_skipped", "not run"),
                        "ok": False,
                    }
                )
        if size in TARGET_PEAK_MEMORY_BYTES:
            limit_mib = TARGET_PEAK_MEMORY_BYTES[size] / 2**20
            for key, what in (("fresh_load_cold", "load + 1000 queries"), ("fresh_build", "build")):
                mib = res[key]["peak_rss_mib"]
                checks.append(
                    {
                        "target": f"{size}: peak memory, {what} <= 1.5 GB ({limit_mib:.0f} MiB)",
                        "measured": f"{mib:.0f} MiB",
                        "ok": mib <= limit_mib,
                    }
                )
        if size in TARGET_LOAD_SECONDS:
            target = TARGET_LOAD_SECONDS[size]
            seconds = res["fresh_load_cold"]["load_first_query_seconds"]
            checks.append(
                {
                    "target": f"{size}: load from disk + first query <= {target:g} s (cold page cache)",
                    "measured": f"{seconds:.2f} s",
                    "ok": seconds <= target,
                }
            )
    if "import" in report:
        speed = report["import"]["entries_per_second"]
        checks.append(
            {
                "target": f"import 1M-line md5 list into SQLite >= {TARGET_IMPORT_RATE:,.0f} entries/s",
                "measured": f"{speed:,.0f}/s",
                "ok": speed >= TARGET_IMPORT_RATE,
            }
        )
    return checks


def print_report(report: dict[str, Any]) -> None:
    m = report["machine"]
    print("\n" + "=" * 78)
    print(f"Match index speed, {report['date']}")
    print(f"machine: {m['nproc']} CPUs, {m['cpu_model']}, {m['memory']}, {m['platform']}")
    print(f"load average at start {report['load_average_start']}, at end {report['load_average_end']}")
    print(f"childsafe side: {report['versions']['childsafe_side']}")
    if report.get("baseline_versions"):
        print(f"baseline side: {report['baseline_versions']}")
    for size, res in report["sizes"].items():
        lk = res["lookups_per_second"]
        print(
            f"\n{size} bank: {res['bank_hashes']:,} random PDQ hashes; recall set {res['recall_queries']} queries "
            f"({ANCHORS} anchors with 41 planted neighbours at d 0..40, plus near queries at every d 0..40)"
        )
        rows = []
        for group in res["recall_per_distance"]:
            rows.append(
                [
                    group["group"],
                    str(group["queries"]),
                    str(group["expected"]),
                    str(group["found"]),
                    str(group["missed"]),
                    str(group["false"]),
                ]
            )
        rec = res["recall"]["childsafe"]
        rows.append(
            [
                "all (childsafe)",
                str(rec["queries"]),
                str(rec["expected"]),
                str(rec["found"]),
                str(rec["missed"]),
                str(rec["false"]),
            ]
        )
        for name, label in (("faiss", "faiss flat (timed queries)"), ("te", "threatexchange (timed queries)")):
            if name in res["recall"]:
                b = res["recall"][name]
                rows.append(
                    [label, str(b["queries"]), str(b["expected"]), str(b["found"]), str(b["missed"]), str(b["false"])]
                )
        print_table(["recall vs brute force", "queries", "within 31", "found", "missed", "false"], rows)
        if "stack" in res:
            s = res["stack"]["recall"]
            print(
                f"  Matcher.lookup (whole stack) on the recall set: {s['found']}/{s['expected']} found, {s['missed']} missed, {s['false']} false"
            )
        print()
        rows = [
            [
                "childsafe PdqIndex.search, one query per call",
                f"{lk['childsafe_single']['best']:,.0f}",
                f"{lk['childsafe_single']['median']:,.0f}",
                str(res["recall_queries"]),
                "-",
            ],
        ]
        fc = res["faiss_counts"]
        if fc != res["recall_queries"]:
            rows.append(
                [
                    f"  same, on the {fc} queries faiss is timed on",
                    f"{lk['childsafe_single_on_faiss_queries']['best']:,.0f}",
                    f"{lk['childsafe_single_on_faiss_queries']['median']:,.0f}",
                    str(fc),
                    "-",
                ]
            )
        rows.append(
            [
                "faiss IndexBinaryFlat range_search, one at a time, default threads",
                f"{lk['faiss_default_threads']['best']:,.1f}",
                f"{lk['faiss_default_threads']['median']:,.1f}",
                str(fc),
                f"{lk['childsafe_single_on_faiss_queries']['best'] / lk['faiss_default_threads']['best']:.1f}x",
            ]
        )
        rows.append(
            [
                "faiss IndexBinaryFlat range_search, one at a time, 1 thread",
                f"{lk['faiss_1thread']['best']:,.1f}",
                f"{lk['faiss_1thread']['median']:,.1f}",
                str(fc),
                f"{lk['childsafe_single_on_faiss_queries']['best'] / lk['faiss_1thread']['best']:.1f}x",
            ]
        )
        if "te_default_threads" in lk:
            tc = res["te_counts"]
            rows.append(
                [
                    "threatexchange PDQIndex.query, default threads",
                    f"{lk['te_default_threads']['best']:,.1f}",
                    f"{lk['te_default_threads']['median']:,.1f}",
                    str(tc),
                    f"{lk['childsafe_single_on_te_queries']['best'] / lk['te_default_threads']['best']:.1f}x",
                ]
            )
            rows.append(
                [
                    "threatexchange PDQIndex.query, 1 thread",
                    f"{lk['te_1thread']['best']:,.1f}",
                    f"{lk['te_1thread']['median']:,.1f}",
                    str(tc),
                    f"{lk['childsafe_single_on_te_queries']['best'] / lk['te_1thread']['best']:.1f}x",
                ]
            )
        rows.append(
            [
                f"childsafe batch: loop over {res['timing_queries']:,} queries",
                f"{lk['childsafe_loop']['best']:,.0f}",
                f"{lk['childsafe_loop']['median']:,.0f}",
                f"{res['timing_queries']:,}",
                "-",
            ]
        )
        rows.append(
            [
                "faiss batch: range_search on all queries at once",
                f"{lk['faiss_batch_range_search']['best']:,.1f}",
                "-",
                str(res["recall_queries"]),
                "-",
            ]
        )
        if "te_batch" in lk:
            rows.append(
                [
                    "threatexchange batch: search_with_distance_in_result",
                    f"{lk['te_batch']['best']:,.1f}",
                    "-",
                    str(res["recall_queries"]),
                    "-",
                ]
            )
        if "stack" in res:
            st = res["stack"]
            rows.append(
                [
                    "Matcher.lookup incl. DB metadata, 1 query per call",
                    f"{st['single_count'] / st['single_seconds']:,.0f}",
                    "-",
                    str(st["single_count"]),
                    "-",
                ]
            )
            rows.append(
                [
                    f"Matcher.lookup incl. DB metadata, batches of {st['batch_size']}",
                    f"{st['batch_count'] / st['batch_seconds']:,.0f}",
                    "-",
                    str(st["batch_count"]),
                    "-",
                ]
            )
        print_table(["lookups/s (wall clock)", "best", "median", "queries", "childsafe is"], rows)
        lat = lk["childsafe_latency_us"]
        print(f"  childsafe latency per query: p50 {lat['p50']:.0f} us, p99 {lat['p99']:.0f} us")
        te_line = res.get("te_skipped") or ""
        print(
            f"  ratio of record: vs faiss flat {res['ratio_vs_faiss']:.1f}x"
            + (f", vs threatexchange {res['ratio_vs_te']:.1f}x" if "ratio_vs_te" in res else "")
            + (f"  ({te_line})" if te_line else "")
        )
        print()
        rows = [
            [
                "childsafe PdqIndex.build (from (n,4) uint64 words)",
                f"{res['build_seconds']:.2f} s",
                f"{res['fresh_build']['peak_rss_mib']:.0f} MiB (fresh process)",
            ],
            ["childsafe PdqIndex.save", f"{res['save_seconds']:.2f} s", f"{res['index_disk_mb']:.0f} MB on disk"],
            ["  hex_to_words (parsing hex), per 1M hashes", f"{res['hex_to_words_seconds_per_million']:.2f} s", "-"],
            [
                "childsafe load + first query, cold page cache",
                f"{res['fresh_load_cold']['load_first_query_seconds']:.3f} s",
                f"{res['fresh_load_cold']['peak_rss_mib']:.0f} MiB after +{res['fresh_load_cold']['next_queries']} queries",
            ],
            [
                "childsafe load + first query, warm page cache",
                f"{res['fresh_load_warm']['load_first_query_seconds']:.3f} s",
                f"{res['fresh_load_warm']['peak_rss_mib']:.0f} MiB after +{res['fresh_load_warm']['next_queries']} queries",
            ],
            [
                "  process start to first result (imports + load + query), cold",
                f"{res['fresh_load_cold']['process_to_first_result_seconds']:.2f} s",
                "-",
            ],
            [
                "faiss IndexBinaryFlat add",
                f"{res['faiss_build']['build_seconds']:.2f} s",
                f"{res['faiss_build']['memory']['vmhwm_mib']:.0f} MiB (VmHWM)",
            ],
        ]
        if "te_build" in res:
            tb = res["te_build"]
            rows.append(
                [
                    "threatexchange PDQIndex(...) from hex strings",
                    f"{tb['build_seconds']:.2f} s",
                    f"{tb['memory_after']['vmhwm_mib']:.0f} MiB (VmHWM)",
                ]
            )
        if "stack" in res:
            st = res["stack"]
            rows.append(
                [
                    f"whole stack: import_bank_file, {st['pdq_import_added']:,}-line PDQ list",
                    f"{st['pdq_import_seconds']:.1f} s",
                    f"{st['pdq_import_added'] / st['pdq_import_seconds']:,.0f} entries/s",
                ]
            )
            rows.append(
                [
                    "whole stack: first Matcher.sync() (build from DB + save)",
                    f"{st['first_sync_build_save_seconds']:.1f} s",
                    "-",
                ]
            )
            rows.append(
                [
                    "whole stack: fresh open_database + Matcher.sync() (load) + 1st lookup",
                    f"{st['open_sync_first_lookup_seconds']:.2f} s",
                    f"{st['peak_rss_mib']:.0f} MiB after all lookups",
                ]
            )
        print_table(["build / load", "time", "memory / size"], rows)
        if "profile" in res:
            print(
                f"\n  kernel only (kernels.search, no Python wrapping): {res['kernel_only_per_second']:,.0f} lookups/s"
            )
            print("  cProfile of PdqIndex.search over 2000 timing queries:")
            print("\n".join("    " + line for line in res["profile"].strip().splitlines()))
    if "import" in report:
        imp = report["import"]
        print(
            f"\nimport_bank_file, 1M-line md5 text list into SQLite: {imp['seconds']:.1f} s, "
            f"{imp['entries_per_second']:,.0f} entries/s (added {imp['added']:,}, rejected {imp['rejected']})"
        )
    print("\nTargets:")
    print_table(
        ["target", "measured", "verdict"], [[c["target"], c["measured"], verdict(c["ok"])] for c in report["targets"]]
    )
    print(f"\nReproduce: {report['command']}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="childsafe PDQ match index speed vs. faiss and threatexchange")
    parser.add_argument(
        "--size",
        choices=["1m", "10m", "all", "100k"],
        default="1m",
        help="bank size: 1m (default), 10m, all (1m then 10m); 100k is a smoke test with no size targets",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds; best is kept (default 3)")
    parser.add_argument("--json", metavar="OUT", help="also write the raw figures to OUT")
    parser.add_argument(
        "--te-budget",
        type=float,
        default=300.0,
        help="seconds threatexchange may take to build at 10M before it is skipped (default 300)",
    )
    parser.add_argument("--no-te", action="store_true", help="skip threatexchange")
    parser.add_argument("--no-stack", action="store_true", help="skip the whole-stack (SQLite + Matcher) figures at 1M")
    parser.add_argument("--no-import", action="store_true", help="skip the md5 import speed test")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of PdqIndex.search")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        return worker_main(argv[1:])
    args = parse_args(argv)
    try:
        import childsafe.index.pdq_index  # noqa: F401, PLC0415
    except ImportError as exc:
        setup_error(
            SCRIPT,
            f"cannot import childsafe ({exc}); run with the project's venv: .venv/bin/python bench/index_speed.py",
        )
    if not hasattr(np, "bitwise_count"):
        setup_error(SCRIPT, "numpy >= 2.0 is needed (np.bitwise_count)")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {**machine_info(memory=True), "load_average": list(os.getloadavg())},
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "versions": {"childsafe_side": package_versions(("childsafe", "numpy", "numba", "sqlalchemy"))},
        "command": reproduce_command(__file__, argv),
        "sizes": {},
    }
    print(f"Reproduce: {report['command']}", flush=True)
    python = ensure_baseline_venv(SCRIPT, log)
    if not args.no_import:
        report["import"] = run_import()
    for size in ["1m", "10m"] if args.size == "all" else [args.size]:
        report["sizes"][size] = run_size(size, args, python)
        report["baseline_versions"] = report["sizes"][size].pop("baseline_versions")
    report["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    report["targets"] = targets_of(report)
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
        print(f"raw figures written to {args.json}")
    return 0 if all(c["ok"] for c in report["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
