"""Benchmark: grouping a case's unmatched pictures into near-duplicates (issue 20).

Claims (issue 20): grouping 20,000 pictures takes under 30 s on this
machine, in under 1 GB of memory.

How it works:

* Synthetic hashes from a fixed seed, never pictures: ``--count`` items
  (default 20,000), most in clusters of 2 to 40 near copies (the sizes drawn
  from a falling distribution, so a few clusters are large), each copy 0-30
  bits from its cluster's first picture; the rest singletons. About 1 in 10
  pictures has a low-quality hash (below 50: linked by SHA-1 only) and 1 in
  50 none at all; about 1 in 25 has the SHA-1 of another picture, often in
  another cluster (a copy of the same file elsewhere), which joins clusters.
  Labels are random paths, so label order is not generation order.
* ``group_items`` runs on them: the first call in the process (it loads the
  index's compiled kernels, as the first grouping of a review session would),
  then ``--repeats`` more, of which the best is kept. Wall and CPU seconds.
* The groups are checked against the ones the generation implies (clusters
  of good hashes, each low-quality or missing one alone, joined by shared
  SHA-1s): random cluster bases are about 128 bits apart, so no other link
  is expected, and the script stops if a group differs.
* Memory: the process's peak resident size (``getrusage`` max RSS: Python,
  numpy, numba and the kernels included) before and after the timed calls,
  and the peak that ``tracemalloc`` sees during one more call (what grouping
  itself allocates, numpy arrays included).
* Also timed: the same items written as a ``report.json`` (with matched
  pictures in between that are skipped) read back with
  ``load_review_items`` and grouped, as the workbench will do.
* ``--dense``: the hard case instead, every picture 0-10 bits from one
  picture, so every pair is a link (one group of ``--count``): the index
  finds count^2 / 2 pairs. Grouping is timed once per call only.

    .venv/bin/python bench/review_speed.py                 # about 10 s
    .venv/bin/python bench/review_speed.py --count 100000 --json out.json
    .venv/bin/python bench/review_speed.py --dense --repeats 0   # about 30 s

Exit status: 0 if both targets are met, 1 if not, 2 on a setup error.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from _common import load_average, print_table, run_header, setup_error

from childsafe.review import ReviewItem, group_items, load_review_items

SCRIPT = "review_speed"
TARGET_SECONDS = 30.0
TARGET_BYTES = 1 << 30


def _flipped(value: int, rng: random.Random, most: int) -> int:
    for bit in rng.sample(range(256), rng.randint(0, most)):
        value ^= 1 << bit
    return value


def generate(count: int, seed: int) -> tuple[list[ReviewItem], int]:
    """``count`` synthetic pictures, and the number of groups they should make."""
    rng = random.Random(seed)
    items: list[ReviewItem] = []
    cluster_of: list[int] = []  # each item's cluster; -1: linked by SHA-1 only
    bases_good: list[bool] = []  # whether each cluster's first picture has a usable hash
    clusters = 0
    while len(items) < count:
        size = 1 if rng.random() < 0.35 else min(40, 2 + int(rng.expovariate(1 / 4)))
        base = rng.getrandbits(256)
        for copy in range(min(size, count - len(items))):
            value = base if copy == 0 else _flipped(base, rng, 30)
            roll = rng.random()
            quality: int | None = (
                rng.randint(50, 100) if roll >= 0.12 else (rng.randint(0, 49) if roll >= 0.02 else None)
            )
            pdq = f"{value:064x}" if quality is not None else None
            if items and rng.random() < 0.04:
                sha1 = items[rng.randrange(len(items))].sha1
            else:
                sha1 = f"{rng.getrandbits(160):040x}"
            label = f"evidence/{rng.getrandbits(24):06x}/{len(items):06d}.jpg"
            items.append(ReviewItem(f"i{len(items):07d}", label, "image", sha1, pdq, quality))
            cluster_of.append(clusters if quality is not None and quality >= 50 else -1)
            if copy == 0:
                bases_good.append(cluster_of[-1] >= 0)
        clusters += 1
    return items, expected_groups(items, cluster_of, bases_good)


def generate_dense(count: int, seed: int) -> tuple[list[ReviewItem], int]:
    """The hard case: ``count`` distinct pictures all 0-10 bits from one (so all
    within 20 bits of each other): every pair is a link the index finds. One group."""
    rng = random.Random(seed)
    base = rng.getrandbits(256)
    items = [
        ReviewItem(f"i{k:07d}", f"evidence/{k:06d}.jpg", "image", f"{rng.getrandbits(160):040x}",
                   f"{_flipped(base, rng, 10):064x}", 100)
        for k in range(count)
    ]  # fmt: skip
    return items, 1


def expected_groups(items: list[ReviewItem], cluster_of: list[int], bases_good: list[bool]) -> int:
    """How many groups the generation implies: the good hashes of a cluster together, and
    everything joined by SHA-1. A cluster's copies are near its first picture; when that
    picture's hash is unusable they may or may not be near each other (two copies 0-30 bits
    from it are 0-60 apart), so those pairs are compared here one by one."""
    parent = list(range(len(items)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: int, b: int) -> None:
        parent[find(a)] = find(b)

    first_of_sha1: dict[str, int] = {}
    by_cluster: dict[int, list[int]] = {}  # the good hashes of each cluster
    for position, (item, cluster) in enumerate(zip(items, cluster_of, strict=True)):
        if item.sha1 is not None:
            union(position, first_of_sha1.setdefault(item.sha1, position))
        if cluster >= 0:
            by_cluster.setdefault(cluster, []).append(position)
    for cluster, members in by_cluster.items():
        if bases_good[cluster]:  # every copy is within 30 bits of the first
            for position in members:
                union(position, members[0])
            continue
        for k, a in enumerate(members):
            for b in members[k + 1 :]:
                pa, pb = items[a].pdq, items[b].pdq
                if pa is not None and pb is not None and (int(pa, 16) ^ int(pb, 16)).bit_count() <= 31:
                    union(a, b)
    return len({find(x) for x in range(len(items))})


def write_report(items: list[ReviewItem], folder: Path, seed: int) -> Path:
    """The items as a report.json's items, with a matched picture after every fourth."""
    rng = random.Random(seed)
    path = folder / "report.json"
    with path.open("w") as out:
        out.write('{"case_id": "BENCH", "status": "complete", "summary": {},\n "items": [')
        for number, item in enumerate(items):
            record = {"id": item.id, "path": item.label, "media_type": "image", "sha1": item.sha1,
                      "pdq": item.pdq, "pdq_quality": item.pdq_quality, "matches": [], "category": None,
                      "error": None}  # fmt: skip
            out.write(("," if number else "") + "\n  " + json.dumps(record))
            if number % 4 == 3:
                matched = record | {"id": f"m{number}", "path": item.label + ".matched",
                                    "sha1": f"{rng.getrandbits(160):040x}",
                                    "matches": [{"bank": "b", "signal": "sha1", "distance": 0}]}  # fmt: skip
                out.write(",\n  " + json.dumps(matched))
        out.write('\n ],\n "duplicates": []\n}\n')
    return path


def max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def timed(run: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20_000, help="pictures to group (default 20,000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls after the first (best kept)")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--dense", action="store_true", help="the hard case: every picture near every other")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    if args.count < 2 or args.repeats < 0:
        setup_error(SCRIPT, "--count must be at least 2 and --repeats at least 0")
    header = run_header(__file__, sys.argv[1:], ["numpy", "numba", "ijson"])
    print(f"{SCRIPT}: {header['date']}, {header['machine']['nproc']} CPUs, load {header['load_average_start']}")

    items, expected = (generate_dense if args.dense else generate)(args.count, args.seed)
    rss_before = max_rss_bytes()
    groups, first_wall, first_cpu = timed(lambda: group_items(items))
    if len(groups) != expected:
        setup_error(SCRIPT, f"{len(groups):,} groups, where the generation implies {expected:,}")
    assert sorted(i for group in groups for i in group.item_ids) == sorted(item.id for item in items)
    runs = [timed(lambda: group_items(items))[1:] for _ in range(args.repeats)]
    best_wall, best_cpu = min(runs) if runs else (first_wall, first_cpu)
    rss_after = max_rss_bytes()
    traced_peak, report_wall, report_cpu = None, 0.0, 0.0
    if not args.dense:  # each would take as long again
        tracemalloc.start()
        group_items(items)
        traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        with tempfile.TemporaryDirectory() as folder:
            write_report(items, Path(folder), args.seed)
            loaded_groups, report_wall, report_cpu = timed(lambda: group_items(load_review_items(Path(folder))))
        assert loaded_groups == groups, "the report's items must group as the items do"
    rss_end = max_rss_bytes()

    sizes = sorted((len(group.item_ids) for group in groups), reverse=True)
    print(f"{args.count:,} pictures -> {len(groups):,} groups (as the generation implies), "
          f"{sum(size == 1 for size in sizes):,} of them single, largest {sizes[0]}")  # fmt: skip
    rows = [["group_items, first call", f"{first_wall:.2f}", f"{first_cpu:.2f}"]]
    if runs:
        rows.append([f"group_items, best of {args.repeats}", f"{best_wall:.2f}", f"{best_cpu:.2f}"])
    if not args.dense:
        rows.append(["report.json read + grouped", f"{report_wall:.2f}", f"{report_cpu:.2f}"])
    print_table(["run", "wall s", "CPU s"], rows)
    traced = (
        "" if traced_peak is None else f"; grouping's own allocations (tracemalloc peak) {traced_peak / 2**20:,.1f} MiB"
    )
    print(f"peak memory: process max RSS {rss_end / 2**20:,.0f} MiB (before grouping {rss_before / 2**20:,.0f} MiB, "
          f"after the timed calls {rss_after / 2**20:,.0f} MiB){traced}")  # fmt: skip
    slowest = max(first_wall, report_wall)
    met_time, met_memory = slowest < TARGET_SECONDS, rss_end < TARGET_BYTES
    print(f"target: under {TARGET_SECONDS:.0f} s: {'met' if met_time else 'NOT met'} ({slowest:.2f} s, the slowest run); "
          f"under 1 GB: {'met' if met_memory else 'NOT met'} ({rss_end / 2**20:,.0f} MiB)")  # fmt: skip
    print(f"load average at the end: {load_average()}")
    print(f"reproduce: {header['command']}")
    if args.json_path:
        figures = header | {
            "count": args.count, "dense": args.dense, "groups": len(groups), "largest_group": sizes[0],
            "single_groups": sum(size == 1 for size in sizes),
            "first_wall_s": first_wall, "first_cpu_s": first_cpu, "best_wall_s": best_wall, "best_cpu_s": best_cpu,
            "report_wall_s": report_wall, "report_cpu_s": report_cpu, "max_rss_bytes": rss_end,
            "max_rss_before_bytes": rss_before, "tracemalloc_peak_bytes": traced_peak,
            "load_average_end": load_average(),
        }  # fmt: skip
        Path(args.json_path).write_text(json.dumps(figures, indent=2))
    return 0 if met_time and met_memory else 1


if __name__ == "__main__":
    raise SystemExit(main())
