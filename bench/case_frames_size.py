"""Measurement: what keeping unmatched videos' vPDQ frame hashes costs a case's ``case.sqlite``.

The scan keeps each unmatched video's frame hashes in ``case.sqlite`` (table
``item_frames``, 45 bytes a hashed frame: 32 of PDQ, 1 of quality, 4 of
frame number, 8 of time), so that a graded video enters a bank by its frames
(docs/review.md). vPDQ hashes one frame a second by default
(``CHILDSAFE_VPDQ_SECONDS_PER_HASH``), whatever the video's frame rate, so
the cost goes with a video's length, not its size or frame rate.

How it works: ``--videos`` benign videos of ``--minutes`` each (a
scikit-image photograph panning, 160 x 120 at 5 frames a second: small and
quick to encode; vPDQ's frames a second are the same at any rate) are
scanned by the real ``childsafe scan`` (one worker, no bank: every video is
unmatched). Then: the size of ``case.sqlite``, the frames and bytes in
``item_frames``, and the size of a copy of ``case.sqlite`` without that table
(dropped, then ``VACUUM``): the difference is what the frames cost.

    .venv/bin/python bench/case_frames_size.py               # about 35 s
    .venv/bin/python bench/case_frames_size.py --videos 3 --minutes 2 --json out.json   # about 8 s

Few minutes of video read high: SQLite's 4 KiB pages round a small table up.

Exit status: 0, or 2 on a setup error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import skimage.data
from _common import print_table, run_header, setup_error
from PIL import Image

SCRIPT = "case_frames_size"
FPS = 5
SIZE = (160, 120)


def write_video(path: Path, seconds: int, seed: int) -> None:
    """A benign photograph panning for ``seconds`` (H.264 in MP4, PyAV's bundled FFmpeg)."""
    scenes = (skimage.data.astronaut, skimage.data.coffee, skimage.data.chelsea, skimage.data.rocket)
    width, height = SIZE
    base = np.asarray(Image.fromarray(scenes[seed % len(scenes)]()).resize((width * 4, height)))
    with av.open(str(path), mode="w") as output:
        stream = output.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(seconds * FPS):
            frame = np.ascontiguousarray(np.roll(base, index * 3 + seed * 7, axis=1)[:, :width])
            output.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        output.mux(stream.encode())


def measure(videos: int, minutes: float, work: Path) -> dict[str, Any]:
    evidence, out = work / "evidence", work / "case"
    evidence.mkdir()
    for number in range(videos):
        write_video(evidence / f"video{number}.mp4", round(minutes * 60), number)
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHILDSAFE_")}
    env["CHILDSAFE_HOME"] = str(work / "home")
    command = [sys.executable, "-m", "childsafe", "scan", str(evidence), "--case", "SIZE", "--out", str(out)]
    started = time.monotonic()
    done = subprocess.run([*command, "--workers", "1"], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        setup_error(SCRIPT, f"the scan failed: {done.stderr.strip()[-500:]}")
    seconds = time.monotonic() - started
    store = out / "case.sqlite"
    with sqlite3.connect(store) as db:
        frames, blob_bytes = db.execute(
            "SELECT SUM(frame_count), SUM(LENGTH(hashes) + LENGTH(qualities) + LENGTH(frame_numbers)"
            " + LENGTH(timestamps)) FROM item_frames"
        ).fetchone()
    without = work / "without-frames.sqlite"
    shutil.copy(store, without)
    with sqlite3.connect(without) as db:
        db.execute("DROP TABLE item_frames")
    with sqlite3.connect(without, isolation_level=None) as db:
        db.execute("VACUUM")
    video_minutes = videos * minutes
    cost = store.stat().st_size - without.stat().st_size
    return {
        "videos": videos,
        "video_minutes": video_minutes,
        "scan_seconds": round(seconds, 1),
        "frames_kept": int(frames or 0),
        "frame_bytes": int(blob_bytes or 0),
        "case_sqlite_bytes": store.stat().st_size,
        "case_sqlite_without_frames_bytes": without.stat().st_size,
        "cost_bytes": cost,
        "cost_bytes_per_video_minute": round(cost / video_minutes),
        "report_json_bytes": (out / "report.json").stat().st_size,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=5, help="videos in the evidence (default 5)")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of each video in minutes (default 10)")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args(argv)
    if args.videos < 1 or args.minutes <= 0:
        setup_error(SCRIPT, "--videos must be at least 1 and --minutes above 0")
    header = run_header(__file__, argv, ["childsafe", "av", "numpy"])
    print(header["command"])
    with tempfile.TemporaryDirectory(prefix="childsafe-frames-") as folder:
        figures = measure(args.videos, args.minutes, Path(folder))
    print_table(["figure", "value"], [[name, f"{value:,}"] for name, value in figures.items()])
    if args.json:
        args.json.write_text(json.dumps({**header, "figures": figures}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
