"""Keypoint lookups while a bank grows, one ``bank add`` at a time; and
lookups that skip crowded buckets.

A service or a scan keeps its index in step with the database: each entry
that ``bank add`` stores is added to the in-memory keypoint index at the
next sync. Its 300 descriptors go to the descriptor index's side list. Until
the fifth session the side list was searched by brute force until 20,000
descriptors (about 67 entries) had piled up, and a query's 500 keypoints were
each compared with all of them (15 ms a query at 18,000). Now the side list
holds at most ``SIDE_LIST_LIMIT`` descriptors; beyond that the additions are
indexed on their own (``PdqIndex.recent``), and merged into the main index
when they pass a sixteenth of it.

Compared in one run, same pictures, same order: childsafe's index as it is
(side list of ``SIDE_LIST_LIMIT``) and the same index with a side list of
20,000 (the earlier policy: the baseline). For each, after every addition,
the CPU time of looking up a few query pictures' keypoints (``search``:
lookup and geometric check, what ``Matcher`` does), and the CPU time of
each addition (including any rebuild).

Second, the same bank, and a bank of 1,000 generated camera-like pictures
(``scan_speed.photo``: smooth colour fields with sensor noise), each looked
up with and without skipping the descriptor index's crowded buckets (those
``KeypointIndex.crowded`` times fuller than the average one; the baseline
looks in every bucket): CPU per lookup and pairs found. ORB's descriptors of
smooth or noisy patches are much alike, so on such pictures every query
keypoint pairs with hundreds in the bank.

Pictures: tiles of the detection benchmark's originals (Debian's
wallpapers and scikit-image's photos, fetched as ``detect_quality.py`` does),
each original cut into a 4 x 4 grid and each tile enlarged to 512 pixels: a
thousand or so pictures of real photographic detail, none a copy of another.
The query pictures are tiles of originals kept out of the bank.

    .venv/bin/python bench/keypoint_adds.py                  # about a minute
    .venv/bin/python bench/keypoint_adds.py --adds 200
    .venv/bin/python bench/keypoint_adds.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
from _common import machine_info, print_table, reproduce_command
from detect_quality import fetch_packages, load_originals
from PIL import Image
from scan_speed import photo

from childsafe.index.keypoint_index import CROWDED, KEYPOINT_RADIUS, KeypointIndex, descriptor_words
from childsafe.index.pdq_index import SIDE_LIST_LIMIT
from childsafe.signals.keypoints import BANK_KEYPOINTS, MIN_KEYPOINTS, QUERY_KEYPOINTS, Keypoints, image_keypoints

#: The side list of sessions 3 and 4 (KeypointIndex compacted at 20,000).
BASELINE_SIDE_LIST = 20_000


def tiles(originals: list[Image.Image]) -> list[np.ndarray]:
    """Each picture cut into a 4 x 4 grid, each tile enlarged to 512 pixels across, grey."""
    found = []
    for picture in originals:
        width, height = picture.width // 4, picture.height // 4
        for row in range(4):
            for column in range(4):
                tile = picture.crop((column * width, row * height, (column + 1) * width, (row + 1) * height))
                tile = tile.resize((512, round(512 * height / width)), Image.Resampling.BICUBIC)
                found.append(np.asarray(tile.convert("L")))
    return found


def keypoints_of(pictures: list[np.ndarray], most: int) -> list[Keypoints]:
    """Keypoints of pictures with enough of them for ``bank add`` to keep."""
    return [found for found in (image_keypoints(grey, most) for grey in pictures) if len(found) >= MIN_KEYPOINTS]


def run(
    side_list: int, bank: list[Keypoints], adds: list[Keypoints], queries: list[Keypoints]
) -> dict[str, list[float]]:
    """Build on ``bank``, add ``adds`` one by one; CPU ms of each add and of a query after it."""
    index = KeypointIndex.build(enumerate(bank))
    assert index.descriptors is not None
    index.descriptors.side_list_limit = side_list
    index.search(queries[0])  # untimed: compiles the index's kernels on a first run
    add_ms, query_ms = [], []
    for number, found in enumerate(adds, start=len(bank)):
        start = time.process_time()
        index.add([(number, found)])
        add_ms.append((time.process_time() - start) * 1000)
        start = time.process_time()
        for query in queries:
            index.search(query)
        query_ms.append((time.process_time() - start) * 1000 / len(queries))
    return {"add_ms": add_ms, "query_ms": query_ms}


def crowding(bank: list[Keypoints], queries: list[Keypoints]) -> dict[str, dict[str, float]]:
    """CPU ms and pairs per lookup, skipping crowded buckets and looking in every one."""
    index = KeypointIndex.build(enumerate(bank))
    assert index.descriptors is not None
    index.search(queries[0])  # untimed, as above
    found = {}
    for name, crowded in (("childsafe", CROWDED), ("baseline", 0.0)):
        index.crowded = crowded
        pairs = sum(
            len(index.descriptors.search_many_ids(descriptor_words(q.descriptors), KEYPOINT_RADIUS, 0, crowded)[0])
            for q in queries
        )
        start = time.process_time()
        matched = sum(len(index.search(query)) for query in queries)
        found[name] = {"query_ms": (time.process_time() - start) * 1000 / len(queries),
                       "pairs": pairs / len(queries), "matched": matched}  # fmt: skip
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adds", type=int, default=100, help="entries added one at a time (default 100)")
    parser.add_argument("--queries", type=int, default=5, help="query pictures looked up after each addition")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    originals = [image for _, image in load_originals(fetch_packages(), None)]
    random.Random(20261129).shuffle(originals)
    # Queries from two originals the bank never sees; the rest, tile by tile, in the bank or added.
    queries = keypoints_of(tiles(originals[:2]), QUERY_KEYPOINTS)[: args.queries]
    pictures = keypoints_of(tiles(originals[2:]), BANK_KEYPOINTS)
    if len(pictures) <= args.adds:
        print(f"only {len(pictures)} tiles with keypoints: ask for fewer --adds", file=sys.stderr)
        return 2
    bank, adds = pictures[: -args.adds], pictures[-args.adds :]
    results = {}
    for name, side_list in (("childsafe", SIDE_LIST_LIMIT), ("baseline", BASELINE_SIDE_LIST)):
        results[name] = run(side_list, bank, adds, queries)
    rows = []
    for name, side_list in (("childsafe", SIDE_LIST_LIMIT), ("baseline", BASELINE_SIDE_LIST)):
        figures = results[name]
        rows.append([f"{name} (side list {side_list:,})", f"{np.mean(figures['query_ms']):.2f}",
                     f"{np.max(figures['query_ms']):.2f}", f"{np.mean(figures['add_ms']):.2f}",
                     f"{np.max(figures['add_ms']):.1f}"])  # fmt: skip
    print()
    print(f"{len(bank):,} entries ({sum(len(k) for k in bank):,} descriptors), then {args.adds} added one at a time")
    print_table(["index", "query ms (mean)", "query ms (worst)", "add ms (mean)", "add ms (worst)"], rows)
    ratio = np.mean(results["baseline"]["query_ms"]) / np.mean(results["childsafe"]["query_ms"])
    print(f"\nkeypoint lookups during the additions: {ratio:.1f}x faster than the baseline")
    rng = np.random.default_rng(20261129)
    print("\nmaking keypoints of 1,005 generated camera-like pictures ...", flush=True)
    generated = keypoints_of([np.asarray(photo(rng, 512, 384).convert("L")) for _ in range(1005)], BANK_KEYPOINTS)
    crowds = {
        f"tiles ({len(pictures):,} entries)": crowding(pictures, queries),
        f"generated ({len(generated) - 5:,} entries)": crowding(
            generated[5:],
            keypoints_of([np.asarray(photo(rng, 512, 384).convert("L")) for _ in range(5)], QUERY_KEYPOINTS),
        ),
    }
    rows = []
    for bank_name, found in crowds.items():
        for name, label in (
            ("childsafe", f"skipping buckets {CROWDED:g}x fuller than average"),
            ("baseline", "every bucket"),
        ):
            rows.append([bank_name, label, f"{found[name]['query_ms']:.2f}", f"{found[name]['pairs']:,.0f}",
                         str(found[name]["matched"])])  # fmt: skip
    print()
    print_table(["bank", "lookup", "ms a lookup", "pairs a lookup", "entries matched"], rows)
    print(f"reproduce: {reproduce_command(__file__, sys.argv[1:])}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"machine": machine_info(), "entries": len(bank),
                                                    "adds": args.adds, "results": results,
                                                    "query_speedup": ratio, "crowded": crowds}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
