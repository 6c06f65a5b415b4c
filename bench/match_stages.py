"""Where matching's time goes: CPU per picture for each stage of the cascade.

For pictures that match nothing every stage runs: hashing (digests, PDQ and
its dihedral variants), the cuts (trim, caption, grid) and their lookup, the
query's ORB keypoints, and the keypoint lookup with its RANSAC checks. As in
bench/scan_speed.py, the bank is the first ``--bank`` photos of its DCIM
folder, added with ``bank add`` (so with keypoints), and the pictures timed
are ``--count`` of the scan's others (camera photos, screenshots and the zips'
photos, in the scan's proportions).

    .venv/bin/python bench/match_stages.py                       # scan_speed's pictures
    .venv/bin/python bench/match_stages.py --folder DIR --count 200
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import BENCH_DIR, reproduce_command, setup_error

from childsafe.banks.catalogue import create_bank
from childsafe.banks.entries import add_files_to_bank
from childsafe.index import Matcher
from childsafe.index.keypoint_index import KEYPOINT_RADIUS, descriptor_words
from childsafe.media import MediaLimits
from childsafe.signals.hashing import hash_file
from childsafe.signals.keypoints import QUERY_KEYPOINTS
from childsafe.store import open_database

SCRIPT = "match_stages.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    corpus = BENCH_DIR / ".cache" / "scan_speed-v1"
    parser.add_argument("--bank-folder", default=str(corpus / "files-2000" / "DCIM"))
    parser.add_argument("--folder", nargs="+", default=[str(corpus / "files-2000"), str(corpus / "files-2000-members")])
    parser.add_argument("--bank", type=int, default=20)
    parser.add_argument("--count", type=int, default=150)
    args = parser.parse_args()
    banked = _pictures([args.bank_folder])[: args.bank]
    in_bank = set(banked)
    others = [p for p in _pictures(args.folder) if p not in in_bank]
    if len(banked) < args.bank or len(others) < args.count:
        setup_error(SCRIPT, f"too few pictures in {args.bank_folder} or {args.folder}; run bench/scan_speed.py first")
    timed_pictures = others[:: len(others) // args.count][: args.count]  # evenly: each kind in proportion
    limits = MediaLimits()
    stages: dict[str, float] = {}
    pairs = 0
    with tempfile.TemporaryDirectory(prefix="match-stages-") as scratch:
        engine = open_database(f"sqlite:///{Path(scratch) / 'bank.db'}")
        create_bank(engine, "known")
        add_files_to_bank(engine, "known", banked, limits)
        matcher = Matcher(engine, Path(scratch) / "index")
        matcher.sync()
        (bank,) = matcher.banks.values()
        for path in timed_pictures:
            timed = time.process_time()

            def lap(stage: str) -> None:
                nonlocal timed
                now = time.process_time()
                stages[stage] = stages.get(stage, 0.0) + now - timed
                timed = now

            hashes = hash_file(path, limits, dihedral=True)
            lap("hashing (digests, PDQ, dihedral)")
            if hashes.picture is None:
                continue
            cuts = hashes.picture.cut_hashes()
            lap("cuts")
            matcher.lookup([("pdq", value) for value in cuts.values()])
            lap("cut lookup")
            keypoints = hashes.picture.keypoints(QUERY_KEYPOINTS)
            lap("ORB keypoints")
            assert keypoints is not None and bank.keypoints.descriptors is not None
            rows, _, _ = bank.keypoints.descriptors.search_many_ids(
                descriptor_words(keypoints.descriptors), KEYPOINT_RADIUS, probe=0
            )
            pairs += len(rows)
            lap("keypoint pairs lookup")
            bank.keypoints.search(keypoints)
            lap("keypoint lookup and RANSAC checks (again, whole)")
        engine.dispose()
    print(f"{args.count} pictures against a bank of {args.bank} (added with bank add), CPU ms a picture:")
    for stage, seconds in stages.items():
        print(f"  {stage:50s} {seconds * 1000 / args.count:6.2f}")
    print(f"  keypoint pairs within {KEYPOINT_RADIUS} bits a picture: {pairs / args.count:,.0f}")
    print(f"\nreproduce: {reproduce_command(__file__, sys.argv[1:])}")
    return 0


def _pictures(folders: list[str]) -> list[Path]:
    return sorted(p for f in folders for p in Path(f).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


if __name__ == "__main__":
    raise SystemExit(main())
