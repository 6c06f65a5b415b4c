"""Baseline hasher for bench/hash_speed.py; runs inside bench/.venv-baseline.

It does the work childsafe is compared against, the way Meta's
Hasher-Matcher-Actioner does it: threatexchange's ``pdq_from_file`` (Pillow
decode at full resolution, then ``pdqhash.compute``) plus md5, sha1 and
sha256 of the file bytes with hashlib.

Usage::

    bench/.venv-baseline/bin/python bench/_baseline_worker.py [--warmup FILE] FILE...

It prints one JSON document on stdout: the library versions and, per file,
the process CPU time (``time.process_time()`` delta) in milliseconds, split
into digests and PDQ, plus the PDQ hash as hex (or the error if the file
could not be hashed). The warm-up file is hashed once first and not reported.

Only the standard library and what requirements-baseline.txt installs may
be imported here: this file must not see childsafe or its dependencies.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import platform
import sys
import time
from importlib.metadata import version
from typing import Any

from PIL import features
from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_file


def hash_one(path: str) -> dict[str, Any]:
    """Hash one file the baseline way and return its timings and PDQ."""
    result: dict[str, Any] = {"path": path, "pdq": None, "quality": None, "error": None}
    start = time.process_time()
    with open(path, "rb") as handle:
        data = handle.read()
    digests = {
        "md5": hashlib.md5(data).hexdigest(),
        "sha1": hashlib.sha1(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    after_digests = time.process_time()
    try:
        pdq_hex, quality = pdq_from_file(pathlib.Path(path))
        result["pdq"] = pdq_hex
        result["quality"] = int(quality)
    except Exception as exc:  # any decoder failure is reported as data
        result["error"] = f"{type(exc).__name__}: {exc}"
    end = time.process_time()
    result["sha256"] = digests["sha256"]
    result["cpu_ms"] = (end - start) * 1000.0
    result["cpu_ms_digests"] = (after_digests - start) * 1000.0
    result["cpu_ms_pdq"] = (end - after_digests) * 1000.0
    return result


def library_versions() -> dict[str, str]:
    """Versions of everything that affects the baseline's speed."""
    return {
        "python": platform.python_version(),
        "threatexchange": version("threatexchange"),
        "pdqhash": version("pdqhash"),
        "pillow": version("pillow"),
        "numpy": version("numpy"),
        "libjpeg-turbo": str(features.version("libjpeg_turbo")),
    }


def main() -> int:
    """Parse arguments, hash the files, print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", help="file to hash once, untimed, before the others")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    if args.warmup:
        hash_one(args.warmup)
    results = [hash_one(path) for path in args.files]
    json.dump({"versions": library_versions(), "results": results}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
