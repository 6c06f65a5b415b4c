"""Long coverage-guided fuzzing of the archive readers and the bank-file parsers.

Runs each atheris target in tests/fuzz/ (``fuzz_containers.py``: every
registered container and the whole evidence reader; ``fuzz_bank_formats.py``:
every registered bank format) for ``--seconds`` each, one after the other, and
reports executions and what was found. A target records each distinct
disallowed exception and goes on (``CHILDSAFE_FUZZ_FINDINGS``); a libFuzzer
timeout or out-of-memory stops it, is recorded, and the run restarts from the
corpus it has built so far until its time is used up.

    .venv/bin/python bench/fuzz_readers.py                      # 10 minutes a target
    .venv/bin/python bench/fuzz_readers.py --seconds 60 --json out.json
    .venv/bin/python bench/fuzz_readers.py --target containers

Everything it writes is under bench/.cache/fuzz/TARGET/ (gitignored): the
corpus, ``findings/`` (``KEY.txt`` the traceback, ``KEY.input`` the bytes;
``known-*`` are issues fixed elsewhere, see the target's ``KNOWN``) and
libFuzzer's ``timeout-*``/``oom-*``/``crash-*`` inputs. Exit status: 0 when
nothing new was found, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import BENCH_DIR, REPO_ROOT, machine_info, print_table, reproduce_command

TARGETS = {
    "containers": REPO_ROOT / "tests" / "fuzz" / "fuzz_containers.py",
    "bank_formats": REPO_ROOT / "tests" / "fuzz" / "fuzz_bank_formats.py",
}
#: A target that keeps stopping early (a timeout found again and again) is given up after this many restarts.
MAX_RESTARTS = 10


def fuzz(name: str, seconds: int, max_len: int, timeout: int, fresh: bool) -> dict[str, Any]:
    """Run one target for ``seconds`` (restarting after a timeout or OOM); its figures and findings."""
    work = BENCH_DIR / ".cache" / "fuzz" / name
    if fresh:
        shutil.rmtree(work, ignore_errors=True)
    corpus, findings = work / "corpus", work / "findings"
    shutil.rmtree(findings, ignore_errors=True)  # findings are this run's; the corpus is kept unless --fresh
    corpus.mkdir(parents=True, exist_ok=True)
    findings.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CHILDSAFE_FUZZ_FINDINGS": str(findings), "PYTHONPATH": str(REPO_ROOT)}
    executions, stops, started = 0, [], time.monotonic()
    for _ in range(MAX_RESTARTS + 1):
        left = int(seconds - (time.monotonic() - started))
        if left < 5:
            break
        command = [
            sys.executable,
            str(TARGETS[name]),
            f"-max_total_time={left}",
            f"-max_len={max_len}",
            f"-timeout={timeout}",
            "-rss_limit_mb=4096",
            "-print_final_stats=1",
            f"-artifact_prefix={findings}/",
            str(corpus),
        ]
        run = subprocess.run(command, env=env, cwd=work, capture_output=True, text=True, errors="replace")
        (work / "last-run.log").write_text(run.stderr)
        counted = re.findall(r"stat::number_of_executed_units:\s*(\d+)", run.stderr)
        if counted:
            executions += int(counted[-1])
        else:  # stopped without final stats (a timeout): take the last progress line
            progress = re.findall(r"^#(\d+)\s", run.stderr, re.MULTILINE)
            executions += int(progress[-1]) if progress else 0
        if run.returncode == 0:
            break
        reason = re.search(r"ERROR: libFuzzer: ([^\n]+)", run.stderr)
        stops.append(reason.group(1) if reason else f"exit status {run.returncode}")
    elapsed = time.monotonic() - started
    found, known = [], []
    for text in sorted(findings.glob("*.txt")):
        last = text.read_text().strip().splitlines()[-1]
        (known if text.name.startswith("known-") else found).append({"key": text.stem, "error": last[:200]})
    artifacts = sorted(p.name for p in findings.iterdir() if p.name.split("-")[0] in ("crash", "timeout", "oom"))
    return {
        "target": name,
        "seconds": round(elapsed),
        "executions": executions,
        "executions_per_second": round(executions / elapsed) if elapsed else 0,
        "corpus_files": sum(1 for _ in corpus.iterdir()),
        "findings": found,
        "known": known,
        "stops": stops,
        "artifacts": artifacts,
        "work_dir": str(work.relative_to(REPO_ROOT)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=600, help="fuzzing time per target (default 600)")
    parser.add_argument("--target", choices=sorted(TARGETS), action="append", help="only these (repeatable)")
    parser.add_argument("--max-len", type=int, default=4096, help="largest input in bytes (default 4096)")
    parser.add_argument("--timeout", type=int, default=30, help="seconds one input may take (default 30)")
    parser.add_argument("--fresh", action="store_true", help="start from the seeds, forgetting earlier corpora")
    parser.add_argument("--json", dest="json_path", help="also write the figures here")
    args = parser.parse_args()
    print(reproduce_command(__file__, sys.argv[1:]))
    results = []
    for name in args.target or list(TARGETS):
        print(f"fuzzing {name} for {args.seconds} s ...", flush=True)
        results.append(fuzz(name, args.seconds, args.max_len, args.timeout, args.fresh))
    print_table(
        ["target", "seconds", "executions", "exec/s", "corpus", "new findings", "known", "stops"],
        [
            [
                r["target"],
                str(r["seconds"]),
                f"{r['executions']:,}",
                str(r["executions_per_second"]),
                str(r["corpus_files"]),
                str(len(r["findings"])),
                str(len(r["known"])),
                str(len(r["stops"])),
            ]
            for r in results
        ],
    )
    for r in results:
        for finding in r["findings"] + r["known"]:
            print(f"  {r['target']}: {finding['key']}: {finding['error']}")
        for stop in r["stops"]:
            print(f"  {r['target']}: stopped early: {stop}")
        if r["findings"] or r["stops"]:
            print(f"  {r['target']}: inputs and tracebacks in {r['work_dir']}/findings/")
    if args.json_path:
        record = {"machine": machine_info(), "command": reproduce_command(__file__, sys.argv[1:]), "results": results}
        Path(args.json_path).write_text(json.dumps(record, indent=2) + "\n")
    return 1 if any(r["findings"] or r["stops"] for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
