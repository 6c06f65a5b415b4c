"""Benchmark: how fast childsafe hashes camera photos, against a baseline.

The claim checked here: on 12-megapixel camera JPEGs, childsafe's CPU time
per file for md5 + sha1 + sha256 + PDQ is at most 1/12 of the same work done
the usual way, measured in the same run on the same files. "The usual way"
(the baseline) is threatexchange's ``pdq_from_file``, the PDQ hasher Meta's
Hasher-Matcher-Actioner uses, plus hashlib over the file bytes. childsafe's
PDQ must also stay close to the full-resolution one: mean Hamming distance
at most 8 bits.

How it works:

* The baseline runs in its own venv, ``bench/.venv-baseline``, created on
  first use from ``bench/requirements-baseline.txt``; it is timed by
  ``bench/_baseline_worker.py`` running inside that venv.
* childsafe is timed in this process, which must be the project's venv
  (``.venv/bin/python``, childsafe installed), via
  ``childsafe.signals.hash_file``.
* Both sides measure process CPU time (``time.process_time()``) per file,
  after one untimed warm-up file. Rounds alternate which side goes first.
* Test images are generated (deterministic seeds) and cached under
  ``bench/.cache/``; nothing is downloaded and nothing is committed.

It also reports the CLI's throughput (``childsafe hash DIR --json
--workers N``), the peak memory of hashing one 24-MP JPEG in a fresh
process, and CPU time for the same pictures as PNG, WebP and HEIC.

Run from the repository root::

    .venv/bin/python bench/hash_speed.py            # full run (12 photos)
    .venv/bin/python bench/hash_speed.py --quick    # smoke run
    .venv/bin/python bench/hash_speed.py --json out.json

Exit status: 0 if both targets are met, 1 if not, 2 on a setup error.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
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
    REPO_ROOT,
    ensure_baseline_venv,
    machine_info,
    package_versions,
    print_table,
    reproduce_command,
    run_measuring_peak_rss,
    setup_error,
)
from PIL import Image, ImageDraw, ImageFilter, features

SCRIPT = "hash_speed.py"  # names this script in setup errors
# Bump the version in this name whenever generate_photo() changes, so that
# stale cached images are not reused.
CACHE_DIR = BENCH_DIR / ".cache" / "hash_speed-v1"
BASELINE_WORKER = BENCH_DIR / "_baseline_worker.py"

TARGET_SPEEDUP = 12.0  # baseline CPU time / childsafe CPU time must reach this
MAX_MEAN_HAMMING = 8.0  # bits, childsafe PDQ vs threatexchange full-resolution PDQ

PHOTO_12MP = (4000, 3000)
PHOTO_24MP = (6000, 4000)
JPEG_QUALITY = 90
SEED_12MP = 1000  # photo i of the 12-MP set uses seed SEED_12MP + i
SEED_24MP = 9000

# Why the baseline fails on a format, when we know; shown next to its "n/a".
BASELINE_CANNOT = {
    "HEIC": " (it opens files with plain Pillow, which has no HEIF decoder; it does not register pillow-heif)",
}


# --------------------------------------------------------------------------
# Data records


@dataclasses.dataclass
class FileTiming:
    """CPU time and PDQ result for one file, from either side."""

    path: str
    cpu_ms: float
    pdq: str | None
    error: str | None
    cpu_ms_digests: float | None = None  # baseline only: read + md5/sha1/sha256
    cpu_ms_pdq: float | None = None  # baseline only: decode + PDQ


@dataclasses.dataclass
class Comparison:
    """Both sides' timings on the same list of files, plus PDQ agreement."""

    childsafe: list[FileTiming]
    baseline: list[FileTiming]

    def childsafe_ms(self) -> float | None:
        """Mean childsafe CPU ms per file (files it hashed without error)."""
        return mean_or_none([t.cpu_ms for t in self.childsafe if t.error is None])

    def baseline_ms(self) -> float | None:
        """Mean baseline CPU ms per file (files it hashed without error)."""
        return mean_or_none([t.cpu_ms for t in self.baseline if t.error is None])

    def speedup(self) -> float | None:
        """Baseline time divided by childsafe time, if both are known."""
        base, ours = self.baseline_ms(), self.childsafe_ms()
        if base is None or ours is None or ours <= 0:
            return None
        return base / ours

    def hamming(self) -> list[int]:
        """PDQ Hamming distances per file where both sides produced a hash.

        Rounds repeat files, so only each path's first pair is used.
        """
        seen: dict[str, int] = {}
        for ours, theirs in zip(self.childsafe, self.baseline, strict=True):
            if ours.path in seen or ours.pdq is None or theirs.pdq is None:
                continue
            seen[ours.path] = hamming_distance(ours.pdq, theirs.pdq)
        return list(seen.values())

    def baseline_errors(self) -> list[str]:
        """Distinct errors the baseline reported."""
        return sorted({t.error for t in self.baseline if t.error})

    def childsafe_errors(self) -> list[str]:
        """Distinct errors childsafe reported."""
        return sorted({t.error for t in self.childsafe if t.error})


def say(message: str) -> None:
    """Print a progress line, indented under the current step."""
    print(f"  {message}", flush=True)


def mean_or_none(values: list[float]) -> float | None:
    """Mean of the values, or None for an empty list."""
    return statistics.fmean(values) if values else None


def median_or_none(values: list[float]) -> float | None:
    """Median of the values, or None for an empty list."""
    return statistics.median(values) if values else None


def hamming_distance(hex_a: str, hex_b: str) -> int:
    """Number of differing bits between two PDQ hashes given as hex."""
    return (int(hex_a, 16) ^ int(hex_b, 16)).bit_count()


# --------------------------------------------------------------------------
# Test images


def _upscale(small: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic-resize a float array (h, w, channels) to size (width, height)."""
    channels = [
        np.asarray(Image.fromarray(small[..., c], mode="F").resize(size, Image.Resampling.BICUBIC))
        for c in range(small.shape[2])
    ]
    return np.stack(channels, axis=2)


def _random_noise_field(rng: np.random.Generator, size: tuple[int, int], cell: int) -> np.ndarray:
    """Smooth noise whose blobs are about `cell` pixels across, mostly grey."""
    width, height = size
    small = rng.standard_normal((height // cell + 2, width // cell + 2, 3)).astype(np.float32)
    small = 0.3 * small + 0.7 * small.mean(axis=2, keepdims=True)
    return _upscale(small, size)


def generate_photo(seed: int, size: tuple[int, int]) -> Image.Image:
    """Make a deterministic, benign, camera-like RGB picture.

    Layers, from coarse to fine: a two-colour gradient (sky to ground), a few
    dozen soft-edged shapes in muted colours, smooth noise at three scales
    (lighting and shading), a fine texture in some regions (foliage, fabric)
    and per-pixel Gaussian sensor noise, stronger in luminance than colour.
    Saved as JPEG quality 90 this gives about 3.5 MB per 12 MP, like a camera.
    """
    rng = np.random.default_rng(seed)
    width, height = size

    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    top = rng.uniform(90, 220, 3).astype(np.float32)
    bottom = rng.uniform(20, 200, 3).astype(np.float32)
    tilt = rng.uniform(-40, 40, 3).astype(np.float32)
    img = top + (bottom - top) * ys + tilt * (xs - 0.5)

    shapes = Image.new("RGB", size, (0, 0, 0))
    coverage = Image.new("L", size, 0)
    draw, draw_cover = ImageDraw.Draw(shapes), ImageDraw.Draw(coverage)
    for _ in range(int(rng.integers(25, 45))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.03, 0.25) * width
        rgb = rng.uniform(0, 255, 3)
        colour = tuple(int(v) for v in rgb.mean() + 0.45 * (rgb - rgb.mean()))  # muted
        box = (
            cx - radius,
            cy - radius * rng.uniform(0.3, 1.2),
            cx + radius,
            cy + radius * rng.uniform(0.3, 1.2),
        )
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.ellipse(box, fill=colour)
            draw_cover.ellipse(box, fill=255)
        elif kind == 1:
            draw.rectangle(box, fill=colour)
            draw_cover.rectangle(box, fill=255)
        else:
            angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 7))))
            points = [(cx + radius * np.cos(a), cy + radius * np.sin(a)) for a in angles]
            draw.polygon(points, fill=colour)
            draw_cover.polygon(points, fill=255)
    soften = ImageFilter.GaussianBlur(2.0)
    shape_rgb = np.asarray(shapes.filter(soften), dtype=np.float32)
    alpha = np.asarray(coverage.filter(soften), dtype=np.float32)[..., None] * (0.85 / 255.0)
    img = img * (1.0 - alpha) + shape_rgb * alpha
    del shapes, coverage, shape_rgb, alpha

    for cell, amplitude in ((400, 30.0), (120, 16.0), (30, 8.0)):
        img += amplitude * _random_noise_field(rng, size, cell)

    fine = _upscale(rng.standard_normal((height // 2, width // 2, 1)).astype(np.float32), size)
    where = _upscale(rng.standard_normal((height // 300 + 2, width // 300 + 2, 1)).astype(np.float32), size)
    img += 20.0 * fine * np.clip(1.5 * where + 0.5, 0.0, 1.0)
    del fine, where

    img += rng.normal(0.0, 4.0, size=(height, width, 1)).astype(np.float32)  # luminance noise
    img += rng.normal(0.0, 2.0, size=img.shape).astype(np.float32)  # colour noise
    return Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8), mode="RGB")


def _camera_exif() -> Image.Exif:
    """A small EXIF block like a camera writes (upright orientation)."""
    exif = Image.Exif()
    exif[0x010F] = "childsafe-bench"  # Make
    exif[0x0110] = "synthetic 1"  # Model
    exif[0x0112] = 1  # Orientation: upright, so every decoder sees the same pixels
    return exif


def ensure_photo(path: Path, seed: int, size: tuple[int, int]) -> Path:
    """Generate and cache one JPEG photo unless it is already cached."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        generate_photo(seed, size).save(tmp, format="JPEG", quality=JPEG_QUALITY, exif=_camera_exif())
        tmp.replace(path)
    return path


def ensure_photos(count: int) -> list[Path]:
    """The 12-MP JPEG test set: `count` photos, generated on first use."""
    paths = []
    for i in range(count):
        seed = SEED_12MP + i
        path = CACHE_DIR / "jpeg-12mp" / f"photo-{seed}.jpg"
        if not path.exists():
            say(f"generating {path.relative_to(REPO_ROOT)}")
        paths.append(ensure_photo(path, seed, PHOTO_12MP))
    return paths


def ensure_format_copies(jpegs: list[Path], fmt: str) -> list[Path]:
    """The same pictures re-saved as PNG, WEBP or HEIF (decoded JPEG pixels)."""
    suffix = {"PNG": ".png", "WEBP": ".webp", "HEIF": ".heic"}[fmt]
    options: dict[str, Any] = {"PNG": {}, "WEBP": {"quality": 90}, "HEIF": {"quality": 90}}[fmt]
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    paths = []
    for jpeg in jpegs:
        path = CACHE_DIR / f"as-{suffix[1:]}" / (jpeg.stem + suffix)
        if not path.exists():
            say(f"generating {path.relative_to(REPO_ROOT)}")
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            with Image.open(jpeg) as img:
                img.convert("RGB").save(tmp, format=fmt, **options)
            tmp.replace(path)
        paths.append(path)
    return paths


def link_set(paths: list[Path], name: str) -> Path:
    """A fresh directory holding exactly these files (hard links), for the CLI."""
    directory = CACHE_DIR / name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for path in paths:
        os.link(path, directory / path.name)
    return directory


# --------------------------------------------------------------------------
# The baseline (own venv, own process)


def run_baseline(python: Path, files: list[Path], warmup: Path | None) -> tuple[list[FileTiming], dict[str, str]]:
    """Hash `files` with the baseline worker; return timings and its versions."""
    command = [str(python), str(BASELINE_WORKER)]
    if warmup is not None:
        command += ["--warmup", str(warmup)]
    command += [str(path) for path in files]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        setup_error(SCRIPT, f"the baseline worker failed (exit {done.returncode})")
    report = json.loads(done.stdout)
    timings = [
        FileTiming(
            path=r["path"],
            cpu_ms=r["cpu_ms"],
            pdq=r["pdq"],
            error=r["error"],
            cpu_ms_digests=r["cpu_ms_digests"],
            cpu_ms_pdq=r["cpu_ms_pdq"],
        )
        for r in report["results"]
    ]
    return timings, report["versions"]


# --------------------------------------------------------------------------
# childsafe (this process, the project's venv)


def load_hash_file() -> Callable[[str], Any]:
    """Import childsafe.signals.hash_file, with a clear message if missing."""
    try:
        from childsafe.signals import hash_file
    except ImportError as exc:
        setup_error(
            SCRIPT,
            f"cannot import childsafe.signals.hash_file ({exc}); run this script with the "
            "project's venv, e.g. .venv/bin/python bench/hash_speed.py",
        )
    return hash_file


def _as_hex(pdq: Any) -> str | None:
    """childsafe's PDQ as lowercase hex, whatever type the result uses."""
    if pdq is None:
        return None
    if isinstance(pdq, (bytes, bytearray)):
        return pdq.hex()
    return str(pdq).lower()


def run_childsafe(hash_file: Callable[[str], Any], files: list[Path], warmup: Path | None) -> list[FileTiming]:
    """Hash `files` with childsafe in this process, timing CPU per file."""
    if warmup is not None:
        hash_file(str(warmup))
    timings = []
    for path in files:
        start = time.process_time()
        result = hash_file(str(path))
        cpu_ms = (time.process_time() - start) * 1000.0
        error = getattr(result, "error", None)
        timings.append(FileTiming(str(path), cpu_ms, _as_hex(result.pdq), str(error) if error else None))
    return timings


def compare(
    hash_file: Callable[[str], Any], python: Path, files: list[Path], rounds: int
) -> tuple[Comparison, dict[str, str]]:
    """Time both sides on the same files, alternating who goes first per round.

    Each side hashes one untimed warm-up file (the first file) per round.
    """
    ours: list[FileTiming] = []
    theirs: list[FileTiming] = []
    versions: dict[str, str] = {}
    for round_no in range(rounds):
        if round_no % 2 == 0:
            base, versions = run_baseline(python, files, warmup=files[0])
            mine = run_childsafe(hash_file, files, warmup=files[0])
        else:
            mine = run_childsafe(hash_file, files, warmup=files[0])
            base, versions = run_baseline(python, files, warmup=files[0])
        ours += mine
        theirs += base
    return Comparison(ours, theirs), versions


# --------------------------------------------------------------------------
# Whole-process measurements: CLI throughput and peak memory


def childsafe_cli() -> Path:
    """The `childsafe` console script next to this interpreter."""
    candidate = Path(sys.executable).parent / "childsafe"
    if candidate.exists():
        return candidate
    found = shutil.which("childsafe")
    if found is None:
        setup_error(SCRIPT, "the childsafe command is not installed in this venv")
    return Path(found)


def run_cli(directory: Path, workers: int) -> tuple[float, int, str]:
    """Run `childsafe hash DIR --json --workers N` once, output to /dev/null.

    Returns the wall time in seconds, the exit code and the end of stderr.
    """
    command = [str(childsafe_cli()), "hash", str(directory), "--json", "--workers", str(workers)]
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=stderr, check=False)
        wall_s = time.perf_counter() - start
        stderr.seek(0)
        tail = stderr.read()[-2000:].decode(errors="replace")
    return wall_s, done.returncode, tail


def cli_throughput(photos: list[Path], workers: int, repeats: int) -> dict[str, Any]:
    """Images per second of the CLI over the photo set, start-up included.

    The command runs `repeats` times; the best (shortest) wall time is the
    headline, as timeit does, because other programs on the machine can only
    ever make a run slower. The median is kept too. A run on a folder holding
    only the first photo shows what start-up (interpreter, imports, worker
    processes) costs, so the rate after start-up can be shown as well.
    """
    all_dir = link_set(photos, "cli-set")
    one_dir = link_set(photos[:1], "cli-one")
    runs = [run_cli(all_dir, workers) for _ in range(repeats)]
    walls = [run[0] for run in runs]
    best_s = min(walls)
    one_s = min(run_cli(one_dir, workers)[0] for _ in range(repeats))
    failed = [run for run in runs if run[1] != 0]
    extra = len(photos) - 1
    return {
        "workers": workers,
        "files": len(photos),
        "repeats": repeats,
        "wall_s_runs": walls,
        "wall_s": best_s,
        "wall_s_median": statistics.median(walls),
        "images_per_s": len(photos) / best_s,
        "one_file_wall_s": one_s,
        "images_per_s_after_startup": extra / (best_s - one_s) if extra and best_s > one_s else None,
        "exit_code": failed[0][1] if failed else 0,
        "stderr_tail": failed[0][2] if failed else "",
    }


def peak_rss_kib(command: list[str]) -> tuple[int, int]:
    """Run a command as a fresh process; return (exit code, its max RSS in KiB).

    Measured by a launcher (see run_measuring_peak_rss), since this process
    holds generated images. The working directory is the cache folder, so
    childsafe is imported from the installed package, not from the current
    directory.
    """
    done, launched = run_measuring_peak_rss(command, cwd=CACHE_DIR)
    if launched is None:
        sys.stderr.write(done.stderr)
        setup_error(SCRIPT, "measuring peak memory failed")
    if launched["exit"] != 0:
        sys.stderr.write(done.stderr[-2000:])
    return launched["exit"], launched["children_maxrss_kib"]


def peak_memory(python: Path, photo: Path) -> dict[str, Any]:
    """Peak RSS of hashing one (24-MP) photo in a fresh process, both sides."""
    ours_code = (
        "import sys\n"
        "from childsafe.signals import hash_file\n"
        "result = hash_file(sys.argv[1])\n"
        "sys.exit(1 if result.error else 0)\n"
    )
    ours_exit, ours_kib = peak_rss_kib([sys.executable, "-c", ours_code, str(photo)])
    _, imports_kib = peak_rss_kib([sys.executable, "-c", "import childsafe.signals"])
    base_exit, base_kib = peak_rss_kib([str(python), str(BASELINE_WORKER), str(photo)])
    return {
        "file": str(photo),
        "childsafe_peak_rss_mib": ours_kib / 1024,
        "childsafe_exit_code": ours_exit,
        "childsafe_import_only_rss_mib": imports_kib / 1024,
        "baseline_peak_rss_mib": base_kib / 1024,
        "baseline_exit_code": base_exit,
    }


# --------------------------------------------------------------------------
# Reporting


def project_versions() -> dict[str, str]:
    """Versions on childsafe's side that affect its speed."""
    found = package_versions(("childsafe", "pillow", "pillow-heif", "numpy", "pdqhash"))
    found["libjpeg-turbo"] = str(features.version("libjpeg_turbo"))
    return found


def fmt(value: float | None, spec: str = ".1f", missing: str = "n/a") -> str:
    """Format a number, or show `missing` for None."""
    return missing if value is None else format(value, spec)


def mean_size_mb(paths: list[Path]) -> float:
    """Mean file size in MB (10^6 bytes)."""
    return statistics.fmean(p.stat().st_size for p in paths) / 1e6


def comparison_record(comp: Comparison, files: list[Path]) -> dict[str, Any]:
    """JSON-ready figures for one Comparison."""
    distances = comp.hamming()
    return {
        "files": len(files),
        "mean_file_mb": mean_size_mb(files),
        "childsafe_cpu_ms_mean": comp.childsafe_ms(),
        "baseline_cpu_ms_mean": comp.baseline_ms(),
        "childsafe_cpu_ms_median": median_or_none([t.cpu_ms for t in comp.childsafe if t.error is None]),
        "baseline_cpu_ms_median": median_or_none([t.cpu_ms for t in comp.baseline if t.error is None]),
        "baseline_cpu_ms_digests_mean": mean_or_none(
            [t.cpu_ms_digests for t in comp.baseline if t.cpu_ms_digests is not None]
        ),
        "baseline_cpu_ms_pdq_mean": mean_or_none(
            [t.cpu_ms_pdq for t in comp.baseline if t.error is None and t.cpu_ms_pdq is not None]
        ),
        "speedup": comp.speedup(),
        "hamming_mean": mean_or_none([float(d) for d in distances]),
        "hamming_max": max(distances) if distances else None,
        "childsafe_errors": comp.childsafe_errors(),
        "baseline_errors": comp.baseline_errors(),
        "childsafe_per_file": [dataclasses.asdict(t) for t in comp.childsafe],
        "baseline_per_file": [dataclasses.asdict(t) for t in comp.baseline],
    }


# --------------------------------------------------------------------------
# Main


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description="childsafe hashing speed vs. threatexchange baseline")
    parser.add_argument("--count", type=int, help="number of 12-MP JPEGs (default 12; 2 with --quick)")
    parser.add_argument("--rounds", type=int, help="timing rounds per side (default 2; 1 with --quick)")
    parser.add_argument("--format-count", type=int, help="pictures per PNG/WebP/HEIC row (default 3; 1 with --quick)")
    parser.add_argument("--cli-repeats", type=int, help="runs per CLI figure, best kept (default 5; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="small, fast smoke run")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the raw figures to OUT")
    args = parser.parse_args(argv)
    args.count = args.count or (2 if args.quick else 12)
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.cli_repeats = args.cli_repeats or (1 if args.quick else 5)
    args.format_count = min(args.format_count or (1 if args.quick else 3), args.count)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every measurement, print the report, optionally write JSON."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = reproduce_command(__file__, argv)
    started = datetime.datetime.now(datetime.UTC)

    # Before any work of ours, so the load average is other programs'.
    machine = {**machine_info(), "load_average_1m": os.getloadavg()[0]}
    print("setup", flush=True)
    hash_file = load_hash_file()
    python = ensure_baseline_venv(SCRIPT, say)
    photos = ensure_photos(args.count)
    big = ensure_photo(CACHE_DIR / "jpeg-24mp" / f"photo-{SEED_24MP}.jpg", SEED_24MP, PHOTO_24MP)
    subset = photos[: args.format_count]
    formats = {
        "PNG": ensure_format_copies(subset, "PNG"),
        "WebP": ensure_format_copies(subset, "WEBP"),
        "HEIC": ensure_format_copies(subset, "HEIF"),
    }

    print("timing 12-MP JPEGs (both sides)", flush=True)
    main_comp, baseline_versions = compare(hash_file, python, photos, args.rounds)
    print("timing other formats", flush=True)
    format_sets = {"JPEG": subset, **formats}
    format_records = {
        name: comparison_record(compare(hash_file, python, paths, args.rounds)[0], paths)
        for name, paths in format_sets.items()
    }
    print("CLI throughput", flush=True)
    cli_runs = [cli_throughput(photos, workers, args.cli_repeats) for workers in (1, 2)]
    print("peak memory (24 MP)", flush=True)
    memory = peak_memory(python, big)

    jpeg = comparison_record(main_comp, photos)
    speedup_ok = jpeg["speedup"] is not None and jpeg["speedup"] >= TARGET_SPEEDUP
    hamming_ok = jpeg["hamming_mean"] is not None and jpeg["hamming_mean"] <= MAX_MEAN_HAMMING
    report: dict[str, Any] = {
        "command": command,
        "date_utc": started.isoformat(timespec="seconds"),
        "machine": machine,
        "versions": {"childsafe_side": project_versions(), "baseline_side": baseline_versions},
        "settings": {
            "count": args.count,
            "rounds": args.rounds,
            "format_count": args.format_count,
            "cli_repeats": args.cli_repeats,
        },
        "targets": {"min_speedup": TARGET_SPEEDUP, "max_mean_hamming": MAX_MEAN_HAMMING},
        "jpeg_12mp": jpeg,
        "speedup_ok": speedup_ok,
        "hamming_ok": hamming_ok,
        "cli": cli_runs,
        "peak_memory_24mp": memory,
        "formats": format_records,
        "load_average_1m_at_end": os.getloadavg()[0],
    }

    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nraw figures written to {args.json}")
    return 0 if speedup_ok and hamming_ok else 1


def print_report(report: dict[str, Any]) -> None:
    """Print the human-readable tables."""
    machine, jpeg = report["machine"], report["jpeg_12mp"]
    ours_v, base_v = report["versions"]["childsafe_side"], report["versions"]["baseline_side"]
    print()
    print("childsafe hashing benchmark (bench/hash_speed.py)")
    print(f"  date (UTC):  {report['date_utc']}")
    print(
        f"  machine:     {machine['nproc']} CPUs, {machine['cpu_model']}, Python {machine['python']}, "
        f"load average {machine['load_average_1m']:.2f} at start, {report['load_average_1m_at_end']:.2f} at end"
    )
    print(
        f"  childsafe:   {ours_v['childsafe']} (Pillow {ours_v['pillow']}, pillow-heif {ours_v['pillow-heif']}, "
        f"libjpeg-turbo {ours_v['libjpeg-turbo']})"
    )
    print(
        f"  baseline:    threatexchange {base_v['threatexchange']} pdq_from_file + hashlib "
        f"(pdqhash {base_v['pdqhash']}, Pillow {base_v['pillow']}, libjpeg-turbo {base_v['libjpeg-turbo']})"
    )
    print(f"  reproduce:   {report['command']}")

    settings = report["settings"]
    print()
    print(
        f"12-MP camera JPEGs: {jpeg['files']} files, 4000x3000, quality 90, "
        f"mean {jpeg['mean_file_mb']:.2f} MB; {settings['rounds']} round(s); process CPU time per file"
    )
    print_table(
        ["", "childsafe", "baseline"],
        [
            [
                "mean CPU ms/file, md5+sha1+sha256+PDQ",
                fmt(jpeg["childsafe_cpu_ms_mean"]),
                fmt(jpeg["baseline_cpu_ms_mean"]),
            ],
            ["  median", fmt(jpeg["childsafe_cpu_ms_median"]), fmt(jpeg["baseline_cpu_ms_median"])],
            ["  baseline: read + digests", "-", fmt(jpeg["baseline_cpu_ms_digests_mean"])],
            ["  baseline: decode + PDQ", "-", fmt(jpeg["baseline_cpu_ms_pdq_mean"])],
        ],
    )
    verdict = "PASS" if report["speedup_ok"] else "FAIL"
    print(f"  speed-up baseline/childsafe: {fmt(jpeg['speedup'], '.2f')}x (target >= {TARGET_SPEEDUP:g}x): {verdict}")
    verdict = "PASS" if report["hamming_ok"] else "FAIL"
    print(
        f"  PDQ Hamming distance to full-resolution PDQ: mean {fmt(jpeg['hamming_mean'], '.2f')}, "
        f"max {fmt(jpeg['hamming_max'], 'd')} bits (target mean <= {MAX_MEAN_HAMMING:g}): {verdict}"
    )
    for side in ("childsafe", "baseline"):
        for error in jpeg[f"{side}_errors"]:
            print(f"  {side} error: {error}")

    print()
    print(
        "CLI throughput: childsafe hash DIR --json --workers N > /dev/null "
        f"(wall time of the whole command, best of {report['cli'][0]['repeats']})"
    )
    print_table(
        ["workers", "files", "wall s", "median wall s", "images/s", "1-file wall s", "images/s after start-up", "exit"],
        [
            [
                str(r["workers"]),
                str(r["files"]),
                f"{r['wall_s']:.2f}",
                f"{r['wall_s_median']:.2f}",
                f"{r['images_per_s']:.1f}",
                f"{r['one_file_wall_s']:.2f}",
                fmt(r["images_per_s_after_startup"]),
                str(r["exit_code"]),
            ]
            for r in report["cli"]
        ],
    )
    for r in report["cli"]:
        if r["stderr_tail"]:
            print(f"  workers={r['workers']} stderr: {r['stderr_tail'].strip()}")

    memory = report["peak_memory_24mp"]
    print()
    print("Peak memory: hash one 24-MP JPEG (6000x4000) in a fresh process (max RSS)")
    print_table(
        ["", "peak RSS MiB", "exit"],
        [
            ["childsafe hash_file", f"{memory['childsafe_peak_rss_mib']:.0f}", str(memory["childsafe_exit_code"])],
            ["  (python + import childsafe.signals only)", f"{memory['childsafe_import_only_rss_mib']:.0f}", "-"],
            ["baseline worker", f"{memory['baseline_peak_rss_mib']:.0f}", str(memory["baseline_exit_code"])],
        ],
    )

    print()
    print("Formats: the same pictures in other containers, CPU ms per file")
    rows = []
    notes = []
    for name, rec in report["formats"].items():
        base = fmt(rec["baseline_cpu_ms_mean"])
        if rec["baseline_cpu_ms_mean"] is None and rec["baseline_errors"]:
            base = "n/a (*)"
            why = BASELINE_CANNOT.get(name, "")
            notes.append(f"  (*) {name}: threatexchange's pdq_from_file fails{why}: {rec['baseline_errors'][0]}")
        rows.append(
            [
                name,
                str(rec["files"]),
                f"{rec['mean_file_mb']:.2f}",
                fmt(rec["childsafe_cpu_ms_mean"]),
                base,
                fmt(rec["speedup"], ".1f") + ("x" if rec["speedup"] is not None else ""),
                f"{fmt(rec['hamming_mean'], '.2f')} / {fmt(rec['hamming_max'], 'd')}",
            ]
        )
        for error in rec["childsafe_errors"]:
            notes.append(f"  childsafe error on {name}: {error}")
    print_table(["format", "files", "MB/file", "childsafe ms", "baseline ms", "speed-up", "Hamming mean/max"], rows)
    for note in notes:
        print(note)
    print()
    print(f"reproduce: {report['command']}")


if __name__ == "__main__":
    raise SystemExit(main())
