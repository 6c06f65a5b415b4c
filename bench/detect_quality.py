"""Detection quality: how many edited copies of known images are found, and
how many wrong matches, for HMA's pipeline and for childsafe, in one run.

Originals: the photos and artworks in Debian's packages
plasma-workspace-wallpapers, mate-backgrounds, gnome-backgrounds,
ukui-wallpapers and lomiri-wallpapers-20.04 (fetched with ``apt-get download``
into bench/.cache/wallpapers, never committed; one version of each design, at
most 1024 px) plus scikit-image's sample photos; only originals of PDQ quality
>= 50 are kept, and near-identical designs (PDQ distance <= 45, such as one
wallpaper in two colour schemes) are dropped.

Edits (bench/_edits.py): each class's parameters are drawn at random per image
from a range. Every original gets one copy per class, saved as JPEG (quality 92).

HMA's pipeline: threatexchange's ``pdq_from_file`` on the copy (in
bench/.venv-baseline), a match when the copy's PDQ quality is >= 50 and its
distance to an original's PDQ is <= 31. childsafe: the originals in a bank
(``add_files_to_bank``), each copy prepared for matching
(``detect.prepare_query``: its hashes and query variants) and looked up with
``detect.match_prepared``, exactly as ``childsafe match`` does.

    .venv/bin/python bench/detect_quality.py            # a few minutes
    .venv/bin/python bench/detect_quality.py --quick    # 20 originals
    .venv/bin/python bench/detect_quality.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from _common import BENCH_DIR, ensure_baseline_venv, machine_info, print_table, reproduce_command, setup_error
from _edits import CLASSES
from PIL import Image

from childsafe.banks.catalogue import create_bank
from childsafe.banks.entries import add_files_to_bank
from childsafe.detect import match_prepared, prepare_query, useful_steps
from childsafe.index import Matcher
from childsafe.media import MediaLimits
from childsafe.signals.hashing import hash_file
from childsafe.signals.pdq import pdq_distance
from childsafe.store import open_database

PACKAGES = ["plasma-workspace-wallpapers", "mate-backgrounds", "gnome-backgrounds", "ukui-wallpapers",
            "lomiri-wallpapers-20.04"]  # fmt: skip
CACHE = BENCH_DIR / ".cache" / "wallpapers"
THRESHOLD, MIN_QUALITY, MAX_SIDE = 31, 50, 1024
#: Designs this close are one design for the corpus (e.g. one wallpaper in two colour schemes:
#: PDQ sees luminance only), so that a match between them is not counted wrong.
SAME_DESIGN = 45
SCRIPT = "detect_quality.py"


def say(message: str) -> None:
    print(f"[detect_quality] {message}", file=sys.stderr, flush=True)


def fetch_packages() -> Path:
    """The packages' files, unpacked under the cache (downloaded once)."""
    debs, tree = CACHE / "debs", CACHE / "tree"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [name for name in PACKAGES if not list(debs.glob(f"{name}_*.deb"))]
    if missing:
        say(f"apt-get download {' '.join(missing)}")
        done = subprocess.run(["apt-get", "download", *missing], cwd=debs, capture_output=True, text=True)
        if done.returncode != 0:
            setup_error(SCRIPT, f"apt-get download failed (run apt-get update first?): {done.stderr.strip()[-300:]}")
    if not tree.exists():
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
    return tree


def design_key(path: Path) -> str:
    """Files of one design share a key: plasma's per-resolution folders (and
    their dark versions), and names with a size in them."""
    parts = path.parts
    if "wallpapers" in parts and "contents" in parts:
        return parts[parts.index("contents") - 1]
    return re.sub(r"[-_]?\d{3,5}x\d{3,5}", "", path.stem).lower()


def load_originals(tree: Path, limit: int | None) -> list[tuple[str, Image.Image]]:
    """One image per design (the largest file), at most MAX_SIDE, RGB."""
    best: dict[str, Path] = {}
    for path in sorted(tree.rglob("*")):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp") and path.is_file():
            key = design_key(path)
            if key not in best or path.stat().st_size > best[key].stat().st_size:
                best[key] = path
    originals = []
    for key, path in sorted(best.items()):
        with Image.open(path) as image:
            image.draft("RGB", (MAX_SIDE, MAX_SIDE))
            if image.mode in ("RGBA", "LA", "P"):
                image = image.convert("RGBA")
                flat = Image.new("RGB", image.size, (255, 255, 255))
                flat.paste(image, mask=image.getchannel("A"))
                image = flat
            image = image.convert("RGB")
            image.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
            originals.append((f"debian:{key}", image))
    import skimage.data

    for name in ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                 "motorcycle_left", "retina", "cat", "colorwheel", "logo", "page", "camera", "moon", "text"):  # fmt: skip
        try:
            array = getattr(skimage.data, name)()
        except Exception:  # noqa: BLE001 - a sample that needs a download is skipped
            continue
        image = Image.fromarray(array).convert("RGB")
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
        originals.append((f"skimage:{name}", image))
    return originals[:limit] if limit else originals


def keep_distinct(originals: list[tuple[str, Image.Image]], folder: Path) -> list[tuple[str, Path]]:
    """Originals saved as PNG, of PDQ quality >= 50, none within 31 of another."""
    kept: list[tuple[str, Path, str]] = []
    for number, (name, image) in enumerate(originals):
        path = folder / f"original-{number:03d}.png"
        image.save(path)
        hashes = hash_file(path)
        if hashes.pdq is None or (hashes.pdq_quality or 0) < MIN_QUALITY:
            continue
        if any(pdq_distance(hashes.pdq, other) <= SAME_DESIGN for _, _, other in kept):
            continue
        kept.append((name, path, hashes.pdq))
    return [(name, path) for name, path, _ in kept]


def unrelated_pictures(count: int, seed: int) -> list[Image.Image]:
    """Generated pictures unlike any original: smooth random colour fields
    with random shapes on them, 400-900 pixels across."""
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    pictures = []
    for _ in range(count):
        field = rng.normal(size=(30, 40, 3)).cumsum(axis=0).cumsum(axis=1)
        field = (255 * (field - field.min()) / np.ptp(field)).astype(np.uint8)
        width = int(rng.integers(400, 900))
        picture = Image.fromarray(field).resize((width, width * 3 // 4), Image.BICUBIC)
        draw = ImageDraw.Draw(picture)
        for _ in range(12):
            x, y = int(rng.integers(0, width)), int(rng.integers(0, width * 3 // 4))
            size = int(rng.integers(10, 120))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            draw.ellipse((x, y, x + size, y + size), fill=colour)
        pictures.append(picture)
    return pictures


def run_hma(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """threatexchange's pdq_from_file on each file, in the baseline venv."""
    python = ensure_baseline_venv(SCRIPT, say)
    results: dict[str, dict[str, Any]] = {}
    for start in range(0, len(paths), 400):
        chunk = [str(p) for p in paths[start : start + 400]]
        done = subprocess.run([str(python), str(BENCH_DIR / "_baseline_worker.py"), *chunk], capture_output=True,
                              text=True)  # fmt: skip
        if done.returncode != 0:
            setup_error(SCRIPT, f"the baseline worker failed: {done.stderr.strip()[-500:]}")
        for item in json.loads(done.stdout)["results"]:
            results[item["path"]] = item
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 originals")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    tree = fetch_packages()
    with tempfile.TemporaryDirectory(prefix="detect-quality-") as scratch:
        folder = Path(scratch)
        originals = keep_distinct(load_originals(tree, 24 if args.quick else None), folder)
        say(f"{len(originals)} distinct originals of quality >= {MIN_QUALITY}")
        images = {name: Image.open(path).convert("RGB") for name, path in originals}
        queries: list[tuple[str, str, Path]] = []  # (class, original, file)
        #: A collage holds other originals too: matching those is right, not wrong.
        also_in: dict[str, set[str]] = {}
        name_of = {id(image): name for name, image in images.items()}
        for number, (name, _) in enumerate(originals):
            others = [image for other, image in images.items() if other != name]
            for edit_name, edit in CLASSES.items():
                edited = edit(images[name], rng, rng.sample(others, min(8, len(others))))
                path = folder / f"query-{number:03d}-{edit_name}.jpg"
                also_in[str(path)] = {name_of[i] for i in edited.info.get("contains", [])}
                edited.convert("RGB").save(path, "JPEG", quality=92)
                queries.append((edit_name, name, path))
        say(f"{len(queries)} edited copies in {len(CLASSES)} classes")

        # HMA: hashes of originals and copies, brute-force distance.
        hma = run_hma([path for _, path in originals] + [path for _, _, path in queries])
        hma_originals = {name: hma[str(path)]["pdq"] for name, path in originals}
        hma_found: dict[str, list[str]] = {}
        hma_ms = []
        for _, _, path in queries:
            item = hma[str(path)]
            hma_ms.append(item["cpu_ms_pdq"])
            if item["pdq"] is None or (item["quality"] or 0) < MIN_QUALITY:
                hma_found[str(path)] = []
                continue
            hma_found[str(path)] = [
                n for n, h in hma_originals.items() if h and pdq_distance(item["pdq"], h) <= THRESHOLD
            ]

        # childsafe: a real bank, a real matcher.
        engine = open_database(f"sqlite:///{folder / 'bench.db'}")
        limits = MediaLimits()
        create_bank(engine, "known")
        for name, path in originals:
            add_files_to_bank(engine, "known", [path], limits, source_id=name)
        from sqlalchemy import func, select

        from childsafe.store.models import EntryVariant

        with engine.connect() as connection:
            variants_per_entry = (connection.scalar(select(func.count()).select_from(EntryVariant)) or 0) / len(
                originals
            )
        matcher = Matcher(engine, folder / "index")
        matcher.sync()
        steps = useful_steps(matcher, limits.query_variants)
        ours_found: dict[str, list[str]] = {}
        transforms: dict[str, str] = {}
        how: dict[str, list[tuple[str, str, int]]] = {}
        ours_cpu, plain_cpu = [], []
        for _, _, path in queries:
            start = time.process_time()
            hash_file(path, limits)
            plain_cpu.append(time.process_time() - start)
            start = time.process_time()
            matches = match_prepared(matcher, prepare_query(path.read_bytes(), str(path), limits, steps))
            ours_cpu.append(time.process_time() - start)
            ours_found[str(path)] = sorted({m.source_id or "" for m in matches if m.signal == "pdq"})
            how[str(path)] = [(m.source_id or "", m.transform, m.distance) for m in matches if m.signal == "pdq"]
            own = [m.transform for m in matches if m.signal == "pdq"]
            transforms[str(path)] = own[0] if own else ""
        # Pictures that match nothing (a platform's usual upload): every mechanism runs.
        nothing_plain, nothing_cpu, nothing_found = [], [], 0
        for number, picture in enumerate(unrelated_pictures(100, args.seed)):
            path = folder / f"unrelated-{number:03d}.jpg"
            picture.save(path, "JPEG", quality=92)
            start = time.process_time()
            hash_file(path, limits)
            nothing_plain.append(time.process_time() - start)
            start = time.process_time()
            nothing_found += bool(match_prepared(matcher, prepare_query(path.read_bytes(), str(path), limits, steps)))
            nothing_cpu.append(time.process_time() - start)
        keypoint_bytes = sum(bank.keypoints.memory_bytes() for bank in matcher.banks.values())
        engine.dispose()

    def wrong(found: dict[str, list[str]], name: str, path: str) -> list[str]:
        """Originals a copy matched that are neither its own nor in it (a collage's other pictures)."""
        return [n for n in found[path] if n != name and n not in also_in[path]]

    rows, figures = [], {}
    for edit_name in CLASSES:
        subset = [(name, str(path)) for cls, name, path in queries if cls == edit_name]
        hma_hits = sum(name in hma_found[p] for name, p in subset)
        ours_hits = sum(name in ours_found[p] for name, p in subset)
        hma_wrong = sum(bool(wrong(hma_found, name, p)) for name, p in subset)
        ours_wrong = sum(bool(wrong(ours_found, name, p)) for name, p in subset)
        figures[edit_name] = {"copies": len(subset), "hma_recall": hma_hits / len(subset),
                              "childsafe_recall": ours_hits / len(subset), "hma_wrong": hma_wrong,
                              "childsafe_wrong": ours_wrong}  # fmt: skip
        rows.append([edit_name, str(len(subset)), f"{hma_hits / len(subset):.0%}", f"{ours_hits / len(subset):.0%}",
                     str(hma_wrong), str(ours_wrong)])  # fmt: skip
    total = len(queries)
    hma_all = sum(name in hma_found[str(p)] for _, name, p in queries)
    ours_all = sum(name in ours_found[str(p)] for _, name, p in queries)
    hma_wrong_all = sum(bool(wrong(hma_found, name, str(p))) for _, name, p in queries)
    ours_wrong_all = sum(bool(wrong(ours_found, name, str(p))) for _, name, p in queries)
    pairs = sum(len(originals) - 1 - len(also_in[str(p)]) for _, _, p in queries)
    hma_pairs = sum(len(wrong(hma_found, name, str(p))) for _, name, p in queries)
    ours_pairs = sum(len(wrong(ours_found, name, str(p))) for _, name, p in queries)
    rows.append(["overall", str(total), f"{hma_all / total:.1%}", f"{ours_all / total:.1%}", str(hma_wrong_all),
                 str(ours_wrong_all)])  # fmt: skip
    print()
    print_table(["edit class", "copies", "HMA recall", "childsafe recall", "HMA wrong", "childsafe wrong"], rows)
    print(f"\ndistinct-original pairs within the threshold: HMA {hma_pairs} of {pairs:,}, childsafe {ours_pairs}")
    print(f"CPU per query image: HMA pdq_from_file {np.mean(hma_ms):.1f} ms; childsafe plain hashing "
          f"{np.mean(plain_cpu) * 1000:.1f} ms, hashing with query variants + matching {np.mean(ours_cpu) * 1000:.1f} ms "
          f"({np.mean(ours_cpu) / np.mean(plain_cpu):.2f}x plain)")  # fmt: skip
    print(f"pictures that match nothing ({len(nothing_cpu)} generated): plain hashing "
          f"{np.mean(nothing_plain) * 1000:.1f} ms, every mechanism + matching {np.mean(nothing_cpu) * 1000:.1f} ms "
          f"({np.mean(nothing_cpu) / np.mean(nothing_plain):.2f}x plain); matched: {nothing_found}")  # fmt: skip
    found_by = defaultdict(int)
    for transform in transforms.values():
        if transform:
            found_by[transform.split(":")[0]] += 1
    for edit_name, name, path in queries:
        for other, transform, distance in how[str(path)]:
            if other in wrong(ours_found, name, str(path)):
                print(
                    f"wrong match: a {edit_name} copy of {name} matched {other} by {transform} at distance {distance}"
                )
    print(
        f"bank-side variants: {variants_per_entry:.1f} an entry on average, about "
        f"{variants_per_entry * 350 / 1024:.1f} KB of index memory an entry at 350 bytes a hash (small layout)"
    )
    print(f"bank-side keypoints: {keypoint_bytes / len(originals) / 1024:.1f} KB of index memory an entry")
    print("childsafe matches by transform:", dict(sorted(found_by.items(), key=lambda kv: -kv[1])))
    print(f"\nreproduce: {reproduce_command(__file__, sys.argv[1:])}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({
            "machine": machine_info(), "originals": len(originals), "copies": total, "classes": figures,
            "overall": {"hma_recall": hma_all / total, "childsafe_recall": ours_all / total,
                        "hma_wrong": hma_wrong_all, "childsafe_wrong": ours_wrong_all,
                        "hma_pairs_within": hma_pairs, "childsafe_pairs_within": ours_pairs, "pairs": pairs},
            "bank_variants_per_entry": variants_per_entry,
            "keypoint_index_bytes_per_entry": keypoint_bytes / len(originals),
            "nothing_matches": {"pictures": len(nothing_cpu), "matched": nothing_found,
                                "cpu_ms_plain": float(np.mean(nothing_plain) * 1000),
                                "cpu_ms_all_mechanisms": float(np.mean(nothing_cpu) * 1000)},
            "cpu_ms": {"hma": float(np.mean(hma_ms)), "childsafe_plain": float(np.mean(plain_cpu) * 1000),
                       "childsafe_variants_and_match": float(np.mean(ours_cpu) * 1000)},
        }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
