"""Evidence shaped like real seizures, built on the fly from benign pictures:
duplicate names, names that are not UTF-8, a folder a thousand deep, a
42.zip-style nest, a member that hangs its worker. Each case: every picture
is reported exactly once, the known ones are matched, and the scan finishes
within a bound of time and memory."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import skimage.data
from builders import jpeg_of, write_file
from builders import libarchive_write as _libarchive_write
from builders import rar5 as _rar5
from builders import set_utf8_flag as _set_utf8_flag
from builders import tar_of as _tar
from builders import write_tar_with_giant_long_name as _write_tar_with_giant_long_name
from builders import zip_of as _zip
from support import invoke, run_cli

# A scan of this evidence must finish within this, however hostile (a hang check, not a speed test)...
_TIME_BOUND_SECONDS = 300
# ...and no process of it may hold more than this resident.
_MEMORY_BOUND_BYTES = 3 * 1024**3


def _zeros_zip(gib: int) -> bytes:
    """A zip of one member of ``gib`` GiB of zeros, about a thousandth of that
    compressed. Made without compressing a GiB: deflate output after a full
    flush starts afresh, so one compressed block of 16 MiB of zeros, repeated,
    is a valid stream of any multiple of it."""
    block = bytes(1 << 24)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    count = gib * 64
    data = piece * count + zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    size = len(block) * count
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(block, crc)
    name = b"zeros.bin"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0) + name
    central = (
        struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0, 0, 0, 0, 0, 0
        )
        + name
    )
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(data), 0)
    return local + data + central + end


def nest_bomb() -> bytes:
    """A 42.zip-style nest: 16 zips of 16 zips of 1 GiB of zeros (256 GiB expanded)."""
    leaf = _zeros_zip(1)
    middle = _zip([(f"leaf-{n:02d}.zip", leaf) for n in range(16)])
    return _zip([(f"middle-{n:02d}.zip", middle) for n in range(16)])


def _pictures() -> dict[str, bytes]:
    """Benign pictures: scikit-image's samples."""
    return {name: jpeg_of(getattr(skimage.data, name)()) for name in ("coffee", "chelsea", "astronaut", "rocket")}


def build_hostile(root: Path, pictures: dict[str, bytes], bombs: bool = True) -> tuple[Path, dict[str, int]]:
    """The hostile evidence, and how many times each picture was put in it
    (``bombs=False``: without the nest and the giant tar header, whose cost is budgeted)."""
    evidence = root / "evidence"
    placed = {name: 0 for name in pictures}

    def put(name: str) -> bytes:
        placed[name] += 1
        return pictures[name]

    # Two members with one name: the known one first, then a benign one.
    write_file(evidence / "dup.tar", _tar([(b"a.jpg", put("chelsea")), (b"a.jpg", put("rocket"))]))
    # A zip beside a folder named like one of its members' paths.
    write_file(evidence / "x.zip", _zip([("a.jpg", put("astronaut"))]))
    write_file(evidence / "x.zip!" / "a.jpg", put("coffee"))
    # Names that are not UTF-8 (Latin-1), on disk and in a tar.
    write_file(evidence / os.fsdecode(b"caf\xe9.jpg"), put("coffee"))
    write_file(evidence / "latin.tar", _tar([(b"na\xefve.jpg", put("chelsea"))]))
    # A folder tree 1,000 levels deep (made with relative steps: a path this long trips os.makedirs' recursion).
    deep = evidence / "deep"
    deep.mkdir(parents=True)
    descriptor = os.open(deep, os.O_RDONLY)
    try:
        for _ in range(1000):
            os.mkdir("d", dir_fd=descriptor)
            inner = os.open("d", os.O_RDONLY, dir_fd=descriptor)
            os.close(descriptor)
            descriptor = inner
        with open(os.open("bottom.jpg", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=descriptor), "wb") as handle:
            handle.write(put("astronaut"))
    finally:
        os.close(descriptor)
    # A zip whose first member is damaged, and one whose names are flagged UTF-8 but are Latin-1.
    damaged = bytearray(
        _zip([("first.jpg", bytes(range(256)) * 64), ("second.jpg", put("chelsea")), ("third.jpg", put("rocket"))])
    )
    damaged[30 + len("first.jpg") : 30 + len("first.jpg") + 8] = b"\xff" * 8
    write_file(evidence / "damaged.zip", bytes(damaged))
    flagged = _zip([("#t#.jpg", put("astronaut"))]).replace(b"#t#.jpg", b"\xe9t\xe9.jpg")  # zipfile writes only UTF-8
    write_file(evidence / "flagged.zip", _set_utf8_flag(flagged))
    # A tar with a GNU long-name header claiming 64 MiB between two pictures.
    if bombs:
        _write_tar_with_giant_long_name(evidence / "longname.tar", 64 << 20, put("coffee"), put("chelsea"))
    # Archives only libarchive reads.
    write_file(evidence / "formats" / "photos.7z", _libarchive_write("7zip", [("in-7z.jpg", put("coffee"))]))
    write_file(evidence / "formats" / "disc.iso", _libarchive_write("iso9660", [("IN_ISO.JPG", put("chelsea"))]))
    write_file(evidence / "formats" / "initrd.cpio", _libarchive_write("cpio", [("in-cpio.jpg", put("astronaut"))]))
    write_file(evidence / "formats" / "photos.rar", _rar5([(b"in-rar.jpg", put("coffee"))]))
    # A 42.zip-style nest of zeros, beside a picture that must still be read.
    if bombs:
        write_file(evidence / "bombs" / "nest.zip", nest_bomb())
    write_file(evidence / "bombs" / "after.jpg", put("rocket"))
    return evidence, placed


def scan_measured(args: list[str], env: dict[str, str], timeout: float) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``childsafe ARGS`` and return it with the largest resident size of
    any of its processes (the scan and its workers), in bytes."""
    probe = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(done.stderr)\n"
        "sys.stdout.write(done.stdout)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, file=sys.stderr)\n"
        "sys.exit(done.returncode)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, sys.executable, "-m", "childsafe", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    peak = int(result.stderr.strip().splitlines()[-1])
    return result, peak


@pytest.fixture(scope="module")
def hostile_scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("hostile")
    pictures = _pictures()
    evidence, placed = build_hostile(root, pictures)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHILDSAFE_")}
    env["CHILDSAFE_HOME"] = str(root / "home")
    known = root / "known"
    for name in ("coffee", "chelsea", "astronaut"):
        write_file(known / f"{name}.jpg", pictures[name])
    # The banks are made in this process; the scan is a real one, measured.
    assert invoke(["bank", "create", "police", "--scheme", "uk"], root / "home").exit_code == 0
    for name, category in (("coffee", "A"), ("chelsea", "B"), ("astronaut", "C")):
        added = invoke(["bank", "add", "police", str(known / f"{name}.jpg"), "--category", category], root / "home")
        assert added.exit_code == 0, added.output
    out = root / "out"
    started = time.monotonic()
    result, peak = scan_measured(
        ["scan", str(evidence), "--case", "HOSTILE", "--out", str(out), "--workers", "2", "--json"],
        env,
        _TIME_BOUND_SECONDS,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    yield {
        "report": report,
        "placed": placed,
        "pictures": pictures,
        "elapsed": elapsed,
        "peak": peak,
        "out": out,
        "evidence": evidence,
        "env": env,
    }
    _remove_deep(evidence / "deep")


def _remove_deep(folder: Path) -> None:
    """Remove a folder a thousand deep (shutil.rmtree, and so pytest's own
    clean-up of old temporary folders, recurses and fails on it)."""
    trail = [os.open(folder, os.O_RDONLY)]
    try:
        while True:
            names = os.listdir(trail[-1])
            if "d" not in names:
                break
            trail.append(os.open("d", os.O_RDONLY, dir_fd=trail[-1]))
        while len(trail) > 1:
            for name in os.listdir(trail[-1]):
                os.unlink(name, dir_fd=trail[-1])
            os.close(trail.pop())
            os.rmdir("d", dir_fd=trail[-1])
    finally:
        for descriptor in trail:
            os.close(descriptor)


def _by_path(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["path"]: item for item in report["items"]}


@pytest.mark.slow
def test_every_picture_is_reported_exactly_once(hostile_scan: dict[str, Any]) -> None:

    report = hostile_scan["report"]
    for name, data in hostile_scan["pictures"].items():
        sha1 = hashlib.sha1(data).hexdigest()
        found = [item for item in report["items"] if item["sha1"] == sha1]
        assert len(found) == hostile_scan["placed"][name], (name, [i["path"] for i in found])
        assert all(item["error"] is None for item in found), [i["error"] for i in found]
        if name != "rocket":  # the known ones, each matched
            assert all(item["category"] for item in found), name
    ids = [item["id"] for item in report["items"]]
    assert len(ids) == len(set(ids)), "two items share an id"
    paths = [item["path"] for item in report["items"]]
    assert len(paths) == len(set(paths)), "two items share a label"


@pytest.mark.slow
def test_members_with_one_name_are_told_apart(hostile_scan: dict[str, Any]) -> None:
    items = _by_path(hostile_scan["report"])
    first, second = items["dup.tar!/a.jpg"], items["dup.tar!/a.jpg #2"]
    assert first["category"] == "B" and second["category"] is None
    assert first["member_index"] == [0] and second["member_index"] == [1]
    assert first["id"] != second["id"]
    # The zip's member and the file in the folder named "x.zip!" are both there.
    assert {items["x.zip!/a.jpg"]["category"], items["x.zip!/a.jpg #2"]["category"]} == {"A", "C"}


@pytest.mark.slow
def test_names_that_are_not_utf8_are_kept_as_bytes(hostile_scan: dict[str, Any]) -> None:
    items = _by_path(hostile_scan["report"])
    cafe = items["caf\\xe9.jpg"]
    assert bytes.fromhex(cafe["path_bytes"]) == b"caf\xe9.jpg" and cafe["category"] == "A"
    assert (hostile_scan["evidence"] / os.fsdecode(bytes.fromhex(cafe["path_bytes"]))).is_file()
    naive = items["latin.tar!/na\\xefve.jpg"]
    assert bytes.fromhex(naive["path_bytes"]) == b"latin.tar!/na\xefve.jpg" and naive["category"] == "B"
    assert "path_bytes" not in items["dup.tar!/a.jpg"]
    out = hostile_scan["out"]
    csv_text = (out / "items.csv").read_text(encoding="utf-8")
    assert b"caf\xe9.jpg".hex() in csv_text
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "caf\\xe9.jpg" in html and b"caf\xe9.jpg".hex() in html
    vics = json.loads((out / "case.vics.json").read_text(encoding="utf-8"))
    placed = [f for m in vics["value"][0]["Media"] for f in m["MediaFiles"] if f.get("PathBytes")]
    assert {bytes.fromhex(f["PathBytes"]) for f in placed} == {
        b"caf\xe9.jpg",
        b"latin.tar!/na\xefve.jpg",
        b"flagged.zip!/\xe9t\xe9.jpg",
    }


@pytest.mark.slow
def test_damaged_members_fail_alone_and_headers_are_bounded(hostile_scan: dict[str, Any]) -> None:
    items = _by_path(hostile_scan["report"])
    assert items["damaged.zip!/first.jpg"]["error"] and items["damaged.zip!/first.jpg"]["sha1"] is None
    assert items["damaged.zip!/second.jpg"]["category"] == "B" and items["damaged.zip!/third.jpg"]["error"] is None
    flagged = items["flagged.zip!/\\xe9t\\xe9.jpg"]
    assert bytes.fromhex(flagged["path_bytes"]) == b"flagged.zip!/\xe9t\xe9.jpg" and flagged["category"] == "C"
    assert items["longname.tar!/before.png"]["category"] == "A" and items["longname.tar!/after.png"]["category"] == "B"
    over = [i for i in hostile_scan["report"]["items"] if "CHILDSAFE_MAX_HEADER_BYTES" in (i["error"] or "")]
    assert len(over) == 1 and len(over[0]["path"]) < 200  # the 64 MiB name is not in the report


@pytest.mark.slow
def test_seven_zip_rar_iso_and_cpio_are_opened(hostile_scan: dict[str, Any]) -> None:
    items = _by_path(hostile_scan["report"])
    assert items["formats/photos.7z!/in-7z.jpg"]["category"] == "A"
    assert items["formats/photos.rar!/in-rar.jpg"]["category"] == "A"
    assert items["formats/initrd.cpio!/in-cpio.jpg"]["category"] == "C"
    (iso,) = [i for i in hostile_scan["report"]["items"] if i["path"].startswith("formats/disc.iso!/")]
    assert iso["path"].lower().startswith("formats/disc.iso!/in_iso.jpg") and iso["category"] == "B"


@pytest.mark.slow
def test_a_folder_a_thousand_deep_is_walked(hostile_scan: dict[str, Any]) -> None:
    items = _by_path(hostile_scan["report"])
    assert items["deep/" + "d/" * 1000 + "bottom.jpg"]["category"] == "C"


@pytest.mark.slow
def test_a_nest_bomb_stops_at_its_budget_and_the_scan_goes_on(hostile_scan: dict[str, Any]) -> None:
    items = _by_path(hostile_scan["report"])
    nest = items["bombs/nest.zip"]
    assert "over budget" in nest["error"] and "CHILDSAFE_MAX_RATIO" in nest["error"]
    assert nest["sha1"]  # the bomb itself is still digested
    stopped = [i for i in hostile_scan["report"]["items"] if i["path"].startswith("bombs/nest.zip!/")]
    assert 1 <= len(stopped) <= 8, [i["path"] for i in stopped]  # stopped at its first leaf, not 256 of them
    assert any("over budget" in (i["error"] or "") for i in stopped)
    assert items["bombs/after.jpg"]["error"] is None
    assert hostile_scan["elapsed"] < _TIME_BOUND_SECONDS
    assert hostile_scan["peak"] < _MEMORY_BOUND_BYTES, f"peak resident {hostile_scan['peak']:,} bytes"


@pytest.mark.slow
def test_a_killed_scan_of_names_that_are_not_utf8_leaves_a_partial_report_and_resumes(
    hostile_scan: dict[str, Any], tmp_path: Path
) -> None:
    env = hostile_scan["env"]
    evidence = tmp_path / "latin"
    pictures = list(hostile_scan["pictures"].values())
    for number in range(60):
        name = f"photo-{number:02d}-".encode() + bytes([0xE0 + number % 16]) + b".jpg"  # Latin-1 letters
        write_file(evidence / f"dir{number % 3}" / os.fsdecode(name), pictures[number % len(pictures)])
    reference_out = tmp_path / "reference"
    reference = invoke(["scan", str(evidence), "--case", "L", "--out", str(reference_out), "--workers", "1"],
                       Path(env["CHILDSAFE_HOME"]))  # fmt: skip
    assert reference.exit_code == 0, reference.output[-2000:]

    out = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "childsafe", "scan", str(evidence), "--case", "L", "--out", str(out), "--workers", "1", "--report-every", "0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    partial: dict[str, Any] = {}
    while time.monotonic() < deadline and len(partial.get("items", [])) < 15:
        time.sleep(0.05)
        try:
            partial = json.loads((out / "report.json").read_text())
        except (OSError, ValueError):
            pass
    process.kill()
    process.wait()
    assert 15 <= len(partial["items"]) < 60, "the scan was not caught part way"
    assert partial["status"] == "incomplete" and partial["finished_at"] is None
    assert all(bytes.fromhex(item["path_bytes"]).endswith(b".jpg") for item in partial["items"])
    assert not (out / "manifest.json").exists()

    resumed = run_cli(
        ["scan", str(evidence), "--case", "L", "--out", str(out), "--workers", "2", "--resume", "--json"],
        env,
        timeout=_TIME_BOUND_SECONDS,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    figures = json.loads(resumed.stdout)
    assert figures["done_before"] >= 15 and figures["read_now"] == 60 - figures["done_before"]
    final = json.loads((out / "report.json").read_text())
    expected = json.loads((tmp_path / "reference" / "report.json").read_text())
    assert final["status"] == "complete"
    assert final["items"] == expected["items"] and final["summary"] == expected["summary"]
    assert len({item["id"] for item in final["items"]}) == 60
