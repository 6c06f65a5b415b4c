"""Small banks: memory and lookup speed of the PDQ index's tiny layout.

A bank's PDQ index with 16-bit chunks holds 4 MB of bucket tables whatever
its size, so a deployment with many small banks (a force's case banks,
suppress lists) paid 4 MB for each. Indexes of up to ``TINY_LIMIT`` hashes
now use 8-bit chunks (``_layout``'s ``tiny``). Compared in one run, same
hashes, same queries: childsafe's index as built now (``auto``) and the same
hashes in the 16-bit layout every index had before (the baseline): memory
(``PdqIndex.nbytes``) and CPU per exact lookup (radius 31, batches of 500
queries, half of them 8-16 bits from a bank hash, half unrelated).

    .venv/bin/python bench/small_banks.py                 # a few seconds
    .venv/bin/python bench/small_banks.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from _common import machine_info, print_table, reproduce_command

from childsafe.index import PdqIndex
from childsafe.index.pdq_index import TINY_LIMIT

SIZES = (10, 100, 1_000, 4_000, TINY_LIMIT)


def lookup_us(index: PdqIndex, queries: np.ndarray, rounds: int = 20) -> float:
    """CPU microseconds per query, best of ``rounds`` batches."""
    index.search_many_ids(queries, 31)  # untimed: compiles the kernels on a first run
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        index.search_many_ids(queries, 31)
        best = min(best, time.process_time() - start)
    return best * 1e6 / len(queries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    rng = np.random.default_rng(20261129)
    rows, figures = [], []
    for size in SIZES:
        hashes = rng.integers(0, 2**64, size=(size, 4), dtype=np.uint64)
        near = hashes[rng.integers(0, size, 250)].copy()
        for row in near:  # 8-16 bits flipped
            for bit in rng.choice(256, size=int(rng.integers(8, 17)), replace=False):
                row[bit // 64] ^= np.uint64(1) << np.uint64(bit % 64)
        queries = np.concatenate([near, rng.integers(0, 2**64, size=(250, 4), dtype=np.uint64)])
        ours = PdqIndex.build(hashes, np.arange(size))
        baseline = PdqIndex.build(hashes, np.arange(size), "small")
        found = [len(index.search_many_ids(queries, 31)[0]) for index in (ours, baseline)]
        assert found[0] == found[1], "the layouts must find the same"
        figure = {"hashes": size, "layout": "tiny" if ours.tables["bits"][0] == 8 else "small",
                  "kib": ours.nbytes() / 1024, "baseline_kib": baseline.nbytes() / 1024,
                  "lookup_us": lookup_us(ours, queries), "baseline_lookup_us": lookup_us(baseline, queries)}  # fmt: skip
        figures.append(figure)
        rows.append([f"{size:,}", figure["layout"], f"{figure['kib']:,.0f}", f"{figure['baseline_kib']:,.0f}",
                     f"{figure['lookup_us']:.2f}", f"{figure['baseline_lookup_us']:.2f}"])  # fmt: skip
    print_table(["hashes", "layout", "KiB", "KiB (16-bit)", "us a lookup", "us a lookup (16-bit)"], rows)
    print(f"reproduce: {reproduce_command(__file__, sys.argv[1:])}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"machine": machine_info(), "sizes": figures}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
