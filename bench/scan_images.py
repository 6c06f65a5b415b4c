"""Benchmark: scanning disk images against scanning the same pictures as a folder.

Claims (issue 18): ``childsafe scan`` of an E01 image holding a few thousand
pictures takes at most 1.3x the time of ``childsafe scan`` of the same
pictures as a folder (the baseline, measured in the same run), with peak
memory under 1 GB; and carving the image's unallocated space (about 20% of
it) costs under 20% of the scan's time.

The evidence is generated from fixed seeds into bench/.cache/scan_images-v1/
(never committed, nothing downloaded): camera-like JPEGs (distinct files:
each copy of a base photo carries its own JPEG comment), an ext4 file system
made from that folder (``mkfs.ext4 -d``) on a raw image first filled with
pseudo-random bytes (so its free space is like a used disk's, the hard case
for a carver), and the same image acquired as E01 (``ewfacquire``, deflate
"fast", 1.4 GiB segments). Also timed in the same run: ``cat IMAGE >
/dev/null`` (reading the image sequentially: the disk's or page cache's
limit), and the raw image's scan. All scans use ``--workers 2`` and match
against a bank of 10,000 random PDQ hashes and MD5s plus 20 of the photos.

The carving figure is measured in-process on the raw image: one share of the
image that reads no files but carves (listing, searching and hashing what it
finds), less the same share without carving (listing only), in CPU seconds,
against the raw scan's CPU seconds (all its processes).

And the E01's first 256 MB of media read in-process through our chunk reader
(zlib) and through libewf alone, in MB per CPU second.

Peak memory is sampled every 0.2 s over the scan's processes (the command and
its workers): the largest sum, and the largest single process.

    .venv/bin/python bench/scan_images.py                   # 4 GB image (about 10 minutes once built)
    .venv/bin/python bench/scan_images.py --gigabytes 0.5   # quicker
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from _common import BENCH_DIR, load_average, print_table, reproduce_command, setup_error
from scan_speed import make_bank, photo

CACHE = BENCH_DIR / ".cache" / "scan_images-v1"
CHILDSAFE = Path(sys.executable).parent / "childsafe"
#: The pictures fill about this share of the file system; the rest stays unallocated.
FILL = 0.75
_BASES = 24


def _tool(name: str) -> str:
    for folder in ("/usr/sbin", "/sbin"):
        if Path(folder, name).exists():
            return str(Path(folder, name))
    found = shutil.which(name)
    if found is None:
        setup_error("scan_images.py", f"{name} is not installed (./run tests installs the disk-image tools)")
    return found


def build_pictures(folder: Path, total_bytes: int) -> Path:
    """Camera JPEGs (1600x1200) adding up to about ``total_bytes``, 100 to a folder."""
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(18)
    bases = []
    for _ in range(_BASES):
        buffer = io.BytesIO()
        photo(rng, 1600, 1200).save(buffer, format="JPEG", quality=92)
        bases.append(buffer.getvalue())
    written, number = 0, 0
    while written < total_bytes:
        base = bases[number % _BASES]
        comment = f"childsafe bench picture {number}".encode()
        # A COM segment after SOI: a distinct file with the same pixels (decoding costs the same).
        data = base[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + base[2:]
        path = folder / f"dir{number // 100:03d}" / f"p{number:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written += len(data)
        number += 1
    (folder / ".complete").write_text("")
    return folder


def build_raw(image: Path, pictures: Path, size: int) -> Path:
    """An ext4 file system of ``size`` bytes holding ``pictures``, its free space pseudo-random bytes."""
    if image.exists():
        return image
    partial = image.with_suffix(".partial")
    rng = np.random.default_rng(1818)
    with open(partial, "wb") as handle:
        left = size
        while left:
            chunk = min(left, 64 << 20)
            handle.write(rng.bytes(chunk))
            left -= chunk
    # nodiscard: mke2fs would otherwise punch the free space of a file back to zeros.
    subprocess.run(
        [_tool("mkfs.ext4"), "-q", "-F", "-b", "4096", "-E", "nodiscard", "-d", str(pictures), str(partial)],
        check=True,
        capture_output=True,
    )
    partial.rename(image)
    return image


def build_e01(raw: Path, folder: Path) -> Path:
    """The raw image acquired as E01 (deflate "fast", default 1.4 GiB segments)."""
    first = folder / "exhibit.E01"
    if first.exists():
        return first
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    command = [_tool("ewfacquire"), "-u", "-q", "-c", "fast", "-d", "sha1", "-t", str(folder / "exhibit"), str(raw)]
    subprocess.run(command, check=True, capture_output=True)
    return first


def free_share(image: Path) -> float:
    """The share of the file system's blocks that are free (dumpe2fs)."""
    header = subprocess.run([_tool("dumpe2fs"), "-h", str(image)], check=True, capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in header.splitlines() if ":" in line)
    return int(fields["Free blocks"]) / int(fields["Block count"])


def _tree_rss(root: int) -> tuple[int, int]:
    """Total and largest resident memory (bytes) of ``root`` and its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid = int(entry)
        children.setdefault(int(fields["PPid"]), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    total, largest, pending = 0, 0, [root]
    while pending:
        pid = pending.pop()
        total += rss.get(pid, 0)
        largest = max(largest, rss.get(pid, 0))
        pending.extend(children.get(pid, []))
    return total, largest


def timed(command: list[str], home: Path) -> dict[str, float]:
    """Wall seconds, CPU seconds of the command and all it started, and peak memory (MB) of its processes."""
    env = {**os.environ, "CHILDSAFE_HOME": str(home)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = [0, 0]
    finished = threading.Event()

    def sample() -> None:
        while not finished.wait(0.2):
            total, largest = _tree_rss(process.pid)
            peak[0], peak[1] = max(peak[0], total), max(peak[1], largest)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, errors = process.communicate()
    wall = time.perf_counter() - start
    finished.set()
    sampler.join()
    if process.returncode != 0:
        setup_error("scan_images.py", f"{command[1]} failed ({process.returncode}): {errors.decode()[-500:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "peak_mb": peak[0] / 1e6, "largest_process_mb": peak[1] / 1e6}


def carving_cpu(image: Path) -> dict[str, float]:
    """CPU seconds of carving the raw image's unallocated space, in this process: a share
    that reads none of the files and carves, less the same share without carving."""
    from childsafe.media import MediaLimits
    from childsafe.triage.reading import read_task
    from childsafe.triage.sources import Share, Task

    task = Task(str(image), image.name, image.stat().st_size, None)
    many = 1 << 40  # no file's number falls in these shares
    figures = {}
    for name, share in (("listing", Share(many - 2, many)), ("listing_and_carving", Share(many - 1, many))):
        start = time.process_time()
        items = list(read_task(replace(task, share=share), MediaLimits()))
        figures[name] = time.process_time() - start
        figures[f"{name}_items"] = len(items)
    figures["carving"] = figures["listing_and_carving"] - figures["listing"]
    return figures


def e01_read_speed(e01: Path, megabytes: int = 256) -> dict[str, float]:
    """MB of media read per CPU second from the E01, in 1 MiB reads: through
    ewf_chunks.py (zlib) and through libewf alone (the wheel's own inflate)."""
    from childsafe.triage.sources.base import open_evidence
    from childsafe.triage.sources.ewf import EwfFormat
    from childsafe.triage.sources.ewf_chunks import EwfMedia

    figures = {}
    with open_evidence(str(e01)) as stream:
        opened = EwfFormat().open(stream, str(e01))
        try:
            media = opened.media
            assert isinstance(media, EwfMedia) and media.chunks is not None, "the E01 fast path is not used"
            length = min(media.size, megabytes << 20)
            for name, read_at in (("ewf_chunks", media.read_at), ("libewf", media.libewf.read_at)):
                start = time.process_time()
                for offset in range(0, length, 1 << 20):
                    read_at(offset, 1 << 20)
                figures[name] = length / 1e6 / (time.process_time() - start)
        finally:
            opened.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gigabytes", type=float, default=4.0, help="size of the disk image")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    size = int(args.gigabytes * (1 << 30)) // 4096 * 4096
    work = CACHE / f"{args.gigabytes:g}g-fill{FILL:g}"
    work.mkdir(parents=True, exist_ok=True)
    print(f"building (cached in {work.relative_to(BENCH_DIR.parent)}) ...", flush=True)
    pictures = build_pictures(work / "pictures", int(size * FILL))
    raw = build_raw(work / "exhibit.dd", pictures, size)
    e01 = build_e01(raw, work / "e01")
    count = sum(1 for _ in pictures.rglob("*.jpg"))
    picture_mb = sum(p.stat().st_size for p in pictures.rglob("*.jpg")) / 1e6
    e01_mb = sum(p.stat().st_size for p in e01.parent.iterdir()) / 1e6
    free = free_share(raw)
    print(
        f"{count} pictures, {picture_mb:.0f} MB; image {size / 1e6:.0f} MB, {100 * free:.1f}% free; E01 {e01_mb:.0f} MB"
    )
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        make_bank(home, _bank_folder(pictures, Path(scratch)))
        runs = {
            "cat": ["cat", str(raw)],
            "folder": [str(pictures)],
            "raw": [str(raw)],
            "e01": [str(e01)],
        }
        for repeat in range(args.repeats):
            order = list(runs) if repeat % 2 == 0 else list(reversed(runs))
            for name in order:
                if name == "cat":
                    command = ["sh", "-c", f"cat {raw} > /dev/null"]
                else:
                    out = Path(scratch) / f"out-{name}-{repeat}"
                    command = [str(CHILDSAFE), "scan", *runs[name], "--case", "BENCH", "--out", str(out)]
                    command += ["--workers", "2"]
                measured = timed(command, home)
                shutil.rmtree(Path(scratch) / f"out-{name}-{repeat}", ignore_errors=True)
                best = figures.get(name)
                if best is None or measured["wall"] < best["wall"]:
                    figures[name] = measured
        carving = carving_cpu(raw)
        reading = e01_read_speed(e01)
    folder, e01_run, raw_run = figures["folder"], figures["e01"], figures["raw"]
    result = {
        "pictures": count,
        "picture_mb": round(picture_mb, 1),
        "image_mb": round(size / 1e6, 1),
        "e01_mb": round(e01_mb, 1),
        "free_pct": round(100 * free, 1),
        "runs": {name: {k: round(v, 2) for k, v in run.items()} for name, run in figures.items()},
        "e01_over_folder_time": round(e01_run["wall"] / folder["wall"], 3),
        "raw_over_folder_time": round(raw_run["wall"] / folder["wall"], 3),
        "e01_over_folder_cpu": round(e01_run["cpu"] / folder["cpu"], 3),
        "carving_cpu_s": round(carving["carving"], 2),
        "carving_pct_of_raw_scan_cpu": round(100 * carving["carving"] / raw_run["cpu"], 1),
        "carved_items": int(carving["listing_and_carving_items"] - carving["listing_items"]),
        "e01_read_mb_per_cpu_s": {name: round(value, 1) for name, value in reading.items()},
        "load_average_end": load_average(),
        "command": reproduce_command(__file__, sys.argv[1:]),
    }
    rows = []
    for name, run in figures.items():
        mb = size / 1e6 if name != "folder" else picture_mb
        rows.append(
            [
                name,
                f"{run['wall']:.1f}",
                f"{run['cpu']:.1f}",
                f"{mb / run['wall']:.0f}",
                f"{count / run['wall']:.1f}" if name != "cat" else "-",
                f"{run['peak_mb']:.0f}",
                f"{run['largest_process_mb']:.0f}",
            ]
        )
    print_table(["run", "wall s", "CPU s", "MB/s", "pictures/s", "peak MB (all)", "largest process MB"], rows)
    print(
        f"E01 scan / folder scan: {result['e01_over_folder_time']}x wall (target <= 1.3),"
        f" {result['e01_over_folder_cpu']}x CPU; raw scan / folder scan: {result['raw_over_folder_time']}x"
    )
    print(
        f"carving {result['free_pct']}% free space: {result['carving_cpu_s']} CPU s,"
        f" {result['carving_pct_of_raw_scan_cpu']}% of the raw scan's CPU (target < 20);"
        f" {result['carved_items']} carved items"
    )
    print(
        f"reading the E01's media: {reading['ewf_chunks']:.0f} MB per CPU s through ewf_chunks.py (zlib),"
        f" {reading['libewf']:.0f} through libewf alone"
    )
    print(f"peak memory of the E01 scan: {e01_run['peak_mb']:.0f} MB (all processes; target < 1000)")
    print("reproduce: " + result["command"])
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    ok = (
        result["e01_over_folder_time"] <= 1.3
        and e01_run["peak_mb"] < 1000
        and result["carving_pct_of_raw_scan_cpu"] < 20
    )
    return 0 if ok else 1


def _bank_folder(pictures: Path, scratch: Path) -> Path:
    """make_bank (from scan_speed.py) takes 20 photos from CORPUS/DCIM: give it some of ours."""
    corpus = scratch / "bank-corpus"
    (corpus / "DCIM").mkdir(parents=True)
    for path in sorted(pictures.rglob("*.jpg"))[:20]:
        (corpus / "DCIM" / path.name).symlink_to(path)
    return corpus


if __name__ == "__main__":
    sys.exit(main())
