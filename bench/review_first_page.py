"""Benchmark: the review app's first page over a case with 20,000 pictures left for review (issue 20).

Claims (issue 20): the first page of a case with 20,000 unmatched pictures
comes in under 2 s (previews made lazily, and cached), in under 1 GB of memory.

How it works:

* A case is made once and kept in ``bench/.cache/review-case-N`` (``--count``
  pictures, default 20,000): small generated pictures (64 x 64 noise with a
  shape, every 20th a re-encoded copy of another, so groups form), scanned by
  the real ``childsafe scan`` against an empty bank, so every picture is left
  for review.
* Then, in a fresh process (``run_measuring_peak_rss``), the app's start and
  its first page as a reviewer gets them: reading the case's report and
  grouping its items (``ReviewSession.load``), the queue's first page (HTML),
  and the previews that page shows (50, each read back from the evidence and
  rendered blurred: ``--no-previews`` leaves them out). Wall seconds of each,
  and the process's peak resident memory.

    .venv/bin/python bench/review_first_page.py            # about 2 minutes the first time, seconds after

Exit status: 0 if both targets are met, 1 if not, 2 on a setup error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import BENCH_DIR, load_average, print_table, run_header, run_measuring_peak_rss, setup_error

SCRIPT = "review_first_page"
TARGET_SECONDS = 2.0
TARGET_BYTES = 1 << 30


def build_case(count: int) -> Path:
    """The case folder (made once): ``count`` generated pictures scanned against an empty bank."""
    import numpy as np
    from PIL import Image

    folder = BENCH_DIR / ".cache" / f"review-case-{count}"
    if (folder / "case" / "manifest.json").is_file():
        return folder
    evidence = folder / "evidence"
    evidence.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20)
    for number in range(count):
        if number % 20 == 19:  # a copy of an earlier picture, re-encoded: a group of two
            source = Image.open(evidence / f"{number - 19:06d}.png").convert("RGB")
            source.save(evidence / f"{number:06d}.jpg", quality=80)
            continue
        pixels = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
        pixels[16:48, 8 + number % 24 : 24 + number % 24] = 255  # a shape, so pictures differ in their layout too
        Image.fromarray(pixels).save(evidence / f"{number:06d}.png")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHILDSAFE_")}
    env["CHILDSAFE_HOME"] = str(folder / "home")
    for args in (
        ["bank", "create", "empty"],
        ["scan", str(evidence), "--case", "BENCH-REVIEW", "--out", str(folder / "case")],
    ):
        done = subprocess.run([sys.executable, "-m", "childsafe", *args], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            setup_error(SCRIPT, f"childsafe {args[0]} failed: {done.stderr.strip()[-300:]}")
    return folder


def first_page(folder: str, previews: bool) -> dict[str, Any]:
    """The app's start and first page, timed (run in a process of its own: ``--measure``)."""
    from starlette.testclient import TestClient

    from childsafe.config import Settings
    from childsafe.review.app import PAGE_GROUPS, ReviewSession, create_review_app
    from childsafe.store import open_database

    settings = Settings.from_env({"CHILDSAFE_HOME": str(Path(folder) / "home")})
    engine = open_database(settings.database_url)
    start = time.perf_counter()
    session = ReviewSession(Path(folder) / "case", "bench", engine, settings)
    session.load()
    loaded = time.perf_counter()
    with TestClient(create_review_app(session)) as client:
        page = client.get(f"/login?token={session.login_token}")  # follows to the first page
        shown = time.perf_counter()
        if previews:
            for group in session.groups[:PAGE_GROUPS]:
                assert client.get(f"/preview/{group.representative}").status_code == 200
    done = time.perf_counter()
    engine.dispose()
    assert page.status_code == 200 and page.text.count('<section class="group"') == min(
        PAGE_GROUPS, len(session.groups)
    )
    return {
        "items": len(session.items),
        "groups": len(session.groups),
        "page_bytes": len(page.content),
        "load_s": round(loaded - start, 3),
        "page_s": round(shown - loaded, 3),
        "previews_s": round(done - shown, 3) if previews else None,
        "first_page_s": round(done - start, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20_000, help="pictures left for review (default 20,000)")
    parser.add_argument("--no-previews", action="store_true", help="time the page's HTML only")
    parser.add_argument("--json", dest="json_path")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the fresh process's part: a case folder
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(first_page(args.measure, not args.no_previews)))
        return 0
    header = run_header(__file__, sys.argv[1:], ["fastapi", "pillow", "numpy"])
    folder = build_case(args.count)
    command = [sys.executable, __file__, "--measure", str(folder), *(["--no-previews"] if args.no_previews else [])]
    done, report = run_measuring_peak_rss(command, BENCH_DIR)
    if report is None or report["exit"] != 0:
        setup_error(SCRIPT, f"the measuring process failed: {done.stderr.strip()[-500:]}")
    figures: dict[str, Any] = json.loads(report["stdout"].strip().splitlines()[-1])
    peak = int(report["children_maxrss_kib"]) * 1024
    figures["peak_rss_mb"] = round(peak / 1e6)
    print_table(
        ["items", "groups", "load (report + groups)", "first page HTML", "its 50 previews", "first page, all", "peak RSS"],
        [[str(figures["items"]), str(figures["groups"]), f"{figures['load_s']} s", f"{figures['page_s']} s",
          f"{figures['previews_s']} s" if figures["previews_s"] is not None else "-", f"{figures['first_page_s']} s",
          f"{figures['peak_rss_mb']} MB"]],
    )  # fmt: skip
    met = figures["first_page_s"] < TARGET_SECONDS and peak < TARGET_BYTES
    print(f"targets: first page < {TARGET_SECONDS} s and memory < 1 GB: {'met' if met else 'NOT met'}")
    if args.json_path:
        result = {**header, "figures": figures, "load_average_end": load_average()}
        Path(args.json_path).write_text(json.dumps(result, indent=1))
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
