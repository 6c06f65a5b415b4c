"""Benchmark: what hostile evidence costs a scan, against the same pictures laid out plainly.

Claim (issue 15): a scan of the hostile case (duplicate names, names that are
not UTF-8, a folder 1,000 deep, damaged and flagged zips, 7z/RAR/ISO/cpio,
tar and zip members) takes at most 2x the time of a scan of the same
pictures as plain files in one folder (the baseline, same run), apart from
the budgeted bombs, which are timed on their own: a 42.zip-style nest of
256 GiB of zeros and a tar whose GNU long-name header claims 64 MiB.

The hostile case is the one tests/test_hostile_evidence.py builds (benign
scikit-image pictures). Each figure is the best of ``--repeats`` runs,
alternating layouts (a shared machine can only slow a run down); peak memory
is the largest resident size of any process of the scan (the scan and its
workers).

    .venv/bin/python bench/scan_hostile.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tests"))
from test_hostile_evidence import (  # noqa: E402  (the test's own builders: one definition of the case)
    _pictures,
    _remove_deep,
    _write,
    _write_tar_with_giant_long_name,
    build_hostile,
    nest_bomb,
    scan_measured,
)


def plain_copy(root: Path, pictures: dict[str, bytes], placed: dict[str, int]) -> Path:
    """The same pictures, as many times each, as plain files in one folder."""
    folder = root / "plain"
    for name, count in placed.items():
        for number in range(count):
            _write(folder / f"{name}-{number}.jpg", pictures[name])
    return folder


def scan_once(evidence: Path, env: dict[str, str], out: Path, workers: int) -> tuple[float, int]:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result, peak = scan_measured(
        ["scan", str(evidence), "--case", "BENCH", "--out", str(out), "--workers", str(workers), "--json"], env, 3600
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"scan of {evidence} failed: {result.stderr[-2000:]}")
    return elapsed, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--copies", type=int, default=10, help="copies of the hostile case (15 pictures each)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="scan-hostile-"))
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHILDSAFE_")}
        env["CHILDSAFE_HOME"] = str(root / "home")
        pictures = _pictures()
        hostile = root / "hostile"
        placed = {name: 0 for name in pictures}
        for copy in range(args.copies):
            _, placed_here = build_hostile(hostile / f"copy-{copy:02d}", pictures, bombs=False)
            placed = {name: placed[name] + placed_here[name] for name in placed}
        plain = plain_copy(root, pictures, placed)
        bombs = root / "bombs"
        _write(bombs / "nest.zip", nest_bomb())
        _write_tar_with_giant_long_name(bombs / "longname.tar", 64 << 20, pictures["coffee"], pictures["chelsea"])
        runs: dict[str, list[tuple[float, int]]] = {"plain": [], "hostile": [], "bombs": []}
        for _ in range(args.repeats):
            for layout, evidence in (("plain", plain), ("hostile", hostile), ("bombs", bombs)):
                runs[layout].append(scan_once(evidence, env, root / f"out-{layout}", args.workers))
        best = {layout: min(t for t, _ in figures) for layout, figures in runs.items()}
        peak = {layout: max(p for _, p in figures) for layout, figures in runs.items()}
        figures: dict[str, Any] = {
            "pictures": sum(placed.values()),
            "workers": args.workers,
            "copies": args.copies,
            "repeats": args.repeats,
            "seconds": best,
            "peak_resident_bytes": peak,
            "hostile_over_plain": best["hostile"] / best["plain"],
            "all_runs": runs,
        }
        print(
            f"{figures['pictures']} pictures, {args.workers} workers, best of {args.repeats}:\n"
            f"  plain   {best['plain']:7.2f} s  peak {peak['plain'] / 2**20:7.0f} MiB\n"
            f"  hostile {best['hostile']:7.2f} s  peak {peak['hostile'] / 2**20:7.0f} MiB"
            f"  = {figures['hostile_over_plain']:.2f}x plain (target <= 2x)\n"
            f"  bombs   {best['bombs']:7.2f} s  peak {peak['bombs'] / 2**20:7.0f} MiB"
            " (256 GiB nest + 64 MiB tar header, stopped by their budgets)"
        )
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1))
    finally:
        for deep in (root / "hostile").glob("copy-*/evidence/deep"):
            _remove_deep(deep)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
