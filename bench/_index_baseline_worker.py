"""Baseline PDQ indexes for bench/index_speed.py; runs inside bench/.venv-baseline.

One process holds one baseline index over the bench's bank and answers
timing requests, so the main script can interleave rounds of childsafe and
the baselines in the same run without rebuilding anything:

* ``faiss``: ``faiss.IndexBinaryFlat(256)``, the exhaustive scan, queried
  with ``range_search(query, 32)`` (distance < 32, i.e. <= 31).
* ``te``: threatexchange's ``PDQIndex`` (what Meta's Hasher-Matcher-Actioner
  uses: faiss ``IndexBinaryMultiHash``, 16 hash maps), queried with
  ``PDQIndex.query(hex)`` at its threshold of 31.

Usage::

    bench/.venv-baseline/bin/python bench/_index_baseline_worker.py faiss|te BANK.npy

BANK.npy is an (n, 32) uint8 array of PDQ hashes (the bytes of the hex
form). The worker builds its index, prints one JSON line (``ready``, build
time, versions), then reads one JSON command per line on stdin and answers
each with one JSON line on stdout:

* ``{"op": "time", "queries": PATH, "count": K, "threads": T}``: look the
  first K queries of PATH ((m, 32) uint8 .npy) up one at a time, after one
  untimed warm-up query; wall and process CPU seconds, and each call's
  latency in microseconds. ``threads`` sets faiss's OpenMP threads
  (0 = faiss's default).
* ``{"op": "batch", ...}``: the same K queries in one call (faiss
  ``range_search`` on all of them; threatexchange's underlying
  ``search_with_distance_in_result``).
* ``{"op": "results", "queries": PATH, "count": K}``: what the index returns
  for each query, as ``[[position, distance], ...]`` (positions are rows of
  the bank), so the main script can check it against brute force.
* ``{"op": "memory"}``: this process's peak RSS.
* ``{"op": "quit"}``.

Only the standard library and what requirements-baseline.txt installs may
be imported here: this file must not see childsafe or its dependencies.
"""

from __future__ import annotations

import json
import platform
import resource
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import faiss
import numpy as np

THRESHOLD = 31  # PDQ match threshold: distance <= 31


def peak_rss_mib() -> dict[str, float]:
    """ru_maxrss and VmHWM of this process, in MiB."""
    hwm = None
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    return {"ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "vmhwm_mib": hwm}


def hex_rows(rows: np.ndarray) -> list[str]:
    """Each (32,) uint8 row as 64 lowercase hex digits."""
    text = rows.tobytes().hex()
    return [text[i : i + 64] for i in range(0, len(text), 64)]


class FaissFlat:
    name = "faiss IndexBinaryFlat"

    def __init__(self, bank: np.ndarray) -> None:
        start = time.perf_counter()
        self.index = faiss.IndexBinaryFlat(256)
        self.index.add(np.ascontiguousarray(bank))
        self.build_seconds = time.perf_counter() - start
        self.hex_seconds = 0.0

    def one(self, query: np.ndarray) -> list[tuple[int, int]]:
        lims, distances, labels = self.index.range_search(query.reshape(1, 32), THRESHOLD + 1)
        return list(zip(labels[lims[0] : lims[1]].tolist(), distances[lims[0] : lims[1]].tolist(), strict=True))

    def batch(self, queries: np.ndarray) -> int:
        lims, _, _ = self.index.range_search(np.ascontiguousarray(queries), THRESHOLD + 1)
        return int(lims[-1])


class ThreatExchange:
    name = "threatexchange PDQIndex"

    def __init__(self, bank: np.ndarray) -> None:
        from threatexchange.signal_type.pdq.pdq_index import PDQIndex

        start = time.perf_counter()
        hexes = hex_rows(bank)
        self.hex_seconds = time.perf_counter() - start
        start = time.perf_counter()
        # Exactly how the brief (and HMA) builds it: (hash, entry) pairs.
        self.index = PDQIndex(((value, i) for i, value in enumerate(hexes)))
        self.build_seconds = time.perf_counter() - start
        del hexes

    def one(self, query: np.ndarray) -> list[tuple[int, int]]:
        return [(int(m.metadata), int(m.similarity_info.distance)) for m in self.index.query(query.tobytes().hex())]

    def batch(self, queries: np.ndarray) -> int:
        found = self.index.index.search_with_distance_in_result(hex_rows(queries), THRESHOLD)
        return sum(len(v) for v in found.values())


def set_threads(threads: int, default: int) -> int:
    used = threads if threads > 0 else default
    faiss.omp_set_num_threads(used)
    return used


def main() -> int:
    kind, bank_path = sys.argv[1], sys.argv[2]
    default_threads = faiss.omp_get_max_threads()
    bank = np.load(bank_path, mmap_mode="r")
    index: FaissFlat | ThreatExchange = FaissFlat(bank) if kind == "faiss" else ThreatExchange(bank)
    del bank
    versions = {"python": platform.python_version()}
    for package in ("faiss-cpu", "threatexchange", "numpy"):
        try:
            versions[package] = version(package)
        except Exception:  # noqa: BLE001 - report, do not fail
            versions[package] = "not installed"
    send(
        {
            "ready": True,
            "index": index.name,
            "build_seconds": index.build_seconds,
            "hex_seconds": index.hex_seconds,
            "default_threads": default_threads,
            "versions": versions,
            "memory": peak_rss_mib(),
        }
    )
    query_cache: dict[str, np.ndarray] = {}

    def queries_of(command: dict[str, Any]) -> np.ndarray:
        path = command["queries"]
        if path not in query_cache:
            query_cache[path] = np.load(path)
        return query_cache[path][: command["count"]]

    handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}

    def op_time(command: dict[str, Any]) -> dict[str, Any]:
        queries = queries_of(command)
        threads = set_threads(command.get("threads", 0), default_threads)
        index.one(queries[-1])  # warm-up, untimed
        latencies = []
        wall, cpu = time.perf_counter(), time.process_time()
        for row in queries:
            start = time.perf_counter_ns()
            index.one(row)
            latencies.append((time.perf_counter_ns() - start) / 1000)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return {"count": len(queries), "seconds": wall, "cpu_seconds": cpu, "threads": threads, "latency_us": latencies}

    def op_batch(command: dict[str, Any]) -> dict[str, Any]:
        queries = queries_of(command)
        threads = set_threads(command.get("threads", 0), default_threads)
        wall, cpu = time.perf_counter(), time.process_time()
        hits = index.batch(queries)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return {"count": len(queries), "seconds": wall, "cpu_seconds": cpu, "threads": threads, "hits": hits}

    def op_results(command: dict[str, Any]) -> dict[str, Any]:
        set_threads(0, default_threads)
        return {"results": [index.one(row) for row in queries_of(command)]}

    handlers["time"] = op_time
    handlers["batch"] = op_batch
    handlers["results"] = op_results
    handlers["memory"] = lambda _: {"memory": peak_rss_mib()}
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "quit":
            break
        send(handlers[command["op"]](command))
    return 0


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
