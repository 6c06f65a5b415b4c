"""Benchmark: what a triage scan costs over bare hashing, and how it scales.

Claim (issue 4): on a folder of 2,000 mixed files (camera JPEGs, PNGs,
documents, archives), ``childsafe scan`` takes at most 20% longer than
``childsafe hash`` on the same files (the baseline, measured in the same
run), and 2 workers are at least 1.7x as fast as 1.

So that both do the same reading and hashing, ``hash`` is given the folder
plus a copy of every archive member extracted beside it (``scan`` reads the
members inside the archives, which ``hash`` does not open): the difference
is what a scan adds — streaming archives, PDQ rotations, matching, saved
progress and the reports. Both commands run as they ship (new processes,
output to files or /dev/null); each figure is the best of ``--repeats`` runs, alternating
commands, since other programs on a shared machine can only slow a run down.
The scan matches against a bank of 10,000 random PDQ hashes and 10,000
random MD5s plus 20 of the photos, so matching is part of what is measured.
The files are generated from fixed seeds into bench/.cache/scan_speed-v1/
(never committed, nothing downloaded).

    .venv/bin/python bench/scan_speed.py              # full run
    .venv/bin/python bench/scan_speed.py --files 400  # quicker
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from _common import BENCH_DIR
from PIL import Image

CACHE = BENCH_DIR / ".cache" / "scan_speed-v1"
CHILDSAFE = Path(sys.executable).parent / "childsafe"


def photo(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A camera-like picture: smooth colour fields, texture and sensor noise."""
    coarse = rng.integers(0, 256, (height // 64 + 2, width // 64 + 2, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), np.int16)
    noise = rng.normal(0, 9, (height, width, 1)).astype(np.int16)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def build_corpus(root: Path, total: int) -> Path:
    """60% camera JPEGs (2-5 MP), 15% PNGs, 15% documents, 10% zip archives."""
    folder = root / f"files-{total}"
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(2026)
    counts = {"jpeg": total * 60 // 100, "png": total * 15 // 100, "doc": total * 15 // 100}
    counts["zip"] = total - sum(counts.values())
    for number in range(counts["jpeg"]):
        width = int(rng.choice([1600, 2048, 2592]))
        path = folder / "DCIM" / f"{number // 200:03d}" / f"IMG_{number:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        photo(rng, width, width * 3 // 4).save(path, quality=90)
    for number in range(counts["png"]):
        path = folder / "screens" / f"shot-{number:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        photo(rng, 1024, 640).save(path)
    for number in range(counts["doc"]):
        path = folder / "documents" / f"doc-{number:04d}.{'pdf' if number % 2 else 'txt'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        body = rng.integers(32, 127, int(rng.integers(20_000, 400_000)), dtype=np.uint8).tobytes()
        path.write_bytes((b"%PDF-1.7\n" if number % 2 else b"") + body)
    for number in range(counts["zip"]):
        path = folder / "archives" / f"bundle-{number:04d}.zip"
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w") as archive:
            for member in range(3):
                buffer = io.BytesIO()
                photo(rng, 1280, 960).save(buffer, format="JPEG", quality=85)
                archive.writestr(f"photo{member}.jpg", buffer.getvalue())
            archive.writestr("readme.txt", "notes\n" * 200)
    (folder / ".complete").write_text("")
    return folder


def extract_members(corpus: Path) -> Path:
    """The archives' members as plain files (for the hash run only)."""
    folder = corpus.parent / f"{corpus.name}-members"
    if not (folder / ".complete").exists():
        for path in sorted((corpus / "archives").glob("*.zip")):
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    target = folder / path.stem / info.filename
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(info))
        (folder / ".complete").write_text("")
    return folder


def make_bank(home: Path, corpus: Path) -> None:
    """A bank of random hashes plus 20 real photos, so the scan has matching to do."""
    env = {**os.environ, "CHILDSAFE_HOME": str(home)}
    rng = np.random.default_rng(7)
    listing = home / "bank.csv"
    home.mkdir(parents=True, exist_ok=True)
    with open(listing, "w") as handle:
        handle.write("md5,pdq,category\n")
        for _ in range(10_000):
            handle.write(f"{rng.bytes(16).hex()},{rng.bytes(32).hex()},B\n")
    subprocess.run(
        [str(CHILDSAFE), "bank", "import", "police", str(listing), "--scheme", "uk"],
        env=env,
        check=True,
        capture_output=True,
    )
    photos = sorted((corpus / "DCIM").rglob("*.jpg"))[:20]
    subprocess.run(
        [str(CHILDSAFE), "bank", "add", "police", *map(str, photos), "--category", "A"],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [str(CHILDSAFE), "lookup", f"md5:{'0' * 32}"], env=env, check=True, capture_output=True
    )  # builds the saved index


def timed(command: list[str], home: Path) -> tuple[float, float]:
    """Wall-clock seconds, and CPU seconds (user + system) of the command and
    every process it started: on a shared machine the CPU figure is the
    steadier measure of cost."""
    env = {**os.environ, "CHILDSAFE_HOME": str(home)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    corpus = build_corpus(CACHE, args.files)
    members = extract_members(corpus)
    files = sum(1 for p in corpus.rglob("*") if p.is_file() and p.name != ".complete")
    megabytes = sum(p.stat().st_size for p in corpus.rglob("*") if p.is_file()) / 1e6
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        make_bank(home, corpus)
        best: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for repeat in range(args.repeats):
            for workers in (1, 2):
                runs = {
                    "hash": [str(CHILDSAFE), "hash", str(corpus), str(members), "--json", "--workers", str(workers)],
                    "scan": [
                        str(CHILDSAFE),
                        "scan",
                        str(corpus),
                        "--case",
                        "BENCH",
                        "--out",
                        str(Path(scratch) / f"out-{repeat}-{workers}"),
                        "--workers",
                        str(workers),
                    ],
                }
                for name in ["hash", "scan"] if repeat % 2 == 0 else ["scan", "hash"]:
                    seconds, cpu_seconds = timed(runs[name], home)
                    key = f"{name}-{workers}"
                    best[key] = min(best.get(key, float("inf")), seconds)
                    cpu[key] = min(cpu.get(key, float("inf")), cpu_seconds)
    figures = {
        "files": files,
        "megabytes": round(megabytes, 1),
        "seconds": {k: round(v, 2) for k, v in sorted(best.items())},
        "files_per_s": {k: round(files / v, 1) for k, v in sorted(best.items())},
        "mb_per_s": {k: round(megabytes / v, 1) for k, v in sorted(best.items())},
        "scan_over_hash_pct": {w: round(100 * (best[f"scan-{w}"] / best[f"hash-{w}"] - 1), 1) for w in (1, 2)},
        "cpu_seconds": {k: round(v, 2) for k, v in sorted(cpu.items())},
        "cpu_scan_over_hash_pct": {w: round(100 * (cpu[f"scan-{w}"] / cpu[f"hash-{w}"] - 1), 1) for w in (1, 2)},
        "load_average": os.getloadavg()[0],
        "speedup_2_workers": {n: round(best[f"{n}-1"] / best[f"{n}-2"], 2) for n in ("hash", "scan")},
        "nproc": os.cpu_count(),
    }
    print(f"{files} files, {megabytes:.0f} MB (camera JPEGs, PNGs, documents, zips); best of {args.repeats} runs")
    print(f"{'command':<8}{'workers':>8}{'seconds':>10}{'files/s':>10}{'MB/s':>8}{'CPU s':>9}")
    for key, seconds in sorted(best.items()):
        name, workers = key.split("-")
        rates = f"{files / seconds:>10.1f}{megabytes / seconds:>8.1f}"
        print(f"{name:<8}{workers:>8}{seconds:>10.2f}{rates}{cpu[key]:>9.2f}")
    over = figures["scan_over_hash_pct"]
    cpu_over = figures["cpu_scan_over_hash_pct"]
    print(f"in CPU time: {cpu_over[1]}% (1 worker), {cpu_over[2]}% (2 workers); load average {os.getloadavg()[0]:.1f}")
    speedup = figures["speedup_2_workers"]
    print(f"scan cost over bare hashing: {over[1]}% (1 worker), {over[2]}% (2 workers); target <= 20%")
    print(f"2 workers vs 1: hash {speedup['hash']}x, scan {speedup['scan']}x; target >= 1.7x")
    print("reproduce: " + shlex.join([".venv/bin/python", "bench/scan_speed.py", *sys.argv[1:]]))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    ok = max(over.values()) <= 20 and speedup["scan"] >= 1.7
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
