"""Helpers shared by the bench/ scripts (hash_speed.py, index_speed.py, scan_speed.py).

The scripts run as ``.venv/bin/python bench/NAME.py``, so this folder is on
``sys.path`` and they import from here with ``from _common import ...``.

Only the standard library is imported here, and only modules that
hash_speed.py and index_speed.py import anyway: they measure the memory of
their own processes, and importing this module must not change those figures.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NoReturn

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
# The baselines' own venv, shared by the scripts; never the project's venv.
BASELINE_VENV = BENCH_DIR / ".venv-baseline"
BASELINE_REQUIREMENTS = BENCH_DIR / "requirements-baseline.txt"


def setup_error(script: str, message: str) -> NoReturn:
    """Stop with exit status 2: something other than a measurement went wrong.

    ``script`` starts the message on stderr, so the reader knows which
    benchmark stopped.
    """
    print(f"{script}: {message}", file=sys.stderr)
    raise SystemExit(2)


# --------------------------------------------------------------------------
# The baseline venv


def ensure_baseline_venv(
    script: str, say: Callable[[str], None], venv: Path = BASELINE_VENV, requirements: Path = BASELINE_REQUIREMENTS
) -> Path:
    """Create ``venv`` (bench/.venv-baseline) and install ``requirements`` into it if needed.

    A stamp file records the sha256 of the requirements file, so editing
    that file triggers a reinstall. ``say`` prints the progress lines, in
    the calling script's style; ``script`` names it in a setup error.
    Returns the venv's python.
    """
    python = venv / "bin" / "python"
    stamp = venv / "requirements.sha256"
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    if not python.exists():
        say(f"creating {venv.relative_to(REPO_ROOT)}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    say(f"pip install -r {requirements.relative_to(REPO_ROOT)}")
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)],
        capture_output=True,
        text=True,
        check=False,
    )
    if pip.returncode != 0:
        sys.stderr.write(pip.stdout + pip.stderr)
        setup_error(script, f"installing the baseline failed (exit {pip.returncode})")
    stamp.write_text(wanted + "\n")
    return python


# --------------------------------------------------------------------------
# Peak memory of a fresh process

# Runs the measured command and prints one JSON line: its exit code, its
# stdout and its max RSS (getrusage(RUSAGE_CHILDREN); Linux reports KiB).
_RSS_LAUNCHER = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, text=True)
print(json.dumps({"exit": done.returncode, "stdout": done.stdout,
                  "children_maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def run_measuring_peak_rss(
    command: list[str], cwd: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    """Run ``command`` as a fresh process and measure its peak memory.

    A small launcher process starts the command and reads
    getrusage(RUSAGE_CHILDREN). Starting the command straight from the
    (large) benchmark process would be wrong: on Linux a child's max RSS
    starts at the RSS of the process that spawned it.

    Returns the launcher's completed process (its stderr holds the
    command's stderr too) and the launcher's report, a dict with the
    command's ``exit`` code, its ``stdout`` and ``children_maxrss_kib``;
    the report is None when the launcher itself failed.
    """
    done = subprocess.run(
        [sys.executable, "-c", _RSS_LAUNCHER, *command],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )
    if done.returncode != 0:
        return done, None
    return done, json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------
# Reporting


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or "unknown"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def total_memory() -> str:
    """Total memory from /proc/meminfo, as "N.N GiB", or "unknown"."""
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return memory


def machine_info(*, memory: bool = False) -> dict[str, Any]:
    """CPU count and model, total memory (with ``memory``), OS and Python, for the record.

    The load average is not in it: each script adds it in its own form, at
    the moment it chooses.
    """
    info: dict[str, Any] = {"nproc": os.cpu_count(), "cpu_model": cpu_model()}
    if memory:
        info["memory"] = total_memory()
    info["platform"] = platform.platform()
    info["python"] = platform.python_version()
    return info


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed version of each named package, or "not installed"."""
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def reproduce_command(script: str | Path, argv: list[str]) -> str:
    """The shell command that reruns the benchmark ``script`` as it was run (with ``argv``)."""
    python = Path(sys.executable)
    try:
        shown = str(python.relative_to(REPO_ROOT))
    except ValueError:
        shown = str(python)
    script = Path(script).resolve().relative_to(REPO_ROOT)
    return f"cd {shlex.quote(str(REPO_ROOT))} && {shlex.join([shown, str(script), *argv])}"


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load averages, rounded: what else the machine was doing."""
    return [round(x, 2) for x in os.getloadavg()]


def run_header(script: str | Path, argv: list[str], packages: Iterable[str]) -> dict[str, Any]:
    """What a run's raw figures start with: date, machine, load, versions of
    ``packages`` and the command that reruns ``script`` with ``argv``."""
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(memory=True),
        "load_average_start": load_average(),
        "versions": package_versions(packages),
        "command": reproduce_command(script, argv),
    }


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """Print a plain left-aligned text table."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    for line in [headers, ["-" * w for w in widths], *rows]:
        print("  " + "  ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
