"""Archive readers ("containers") against hostile and damaged archives,
member by member, and the formats read through libarchive (7z, RAR, ISO
9660, cpio). Every archive is built here, in the test; none is committed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import libarchive
import pytest
from builders import libarchive_write as _libarchive_write
from builders import png as _png
from builders import rar4 as _rar4
from builders import rar5 as _rar5
from builders import set_utf8_flag as _set_utf8_flag
from builders import tar_member as _tar_member
from builders import write_tar_with_giant_long_name as _write_tar_with_giant_long_name
from builders import zip_of as _zip
from support import REPO

from childsafe.media.budgets import ScanBudgets
from childsafe.media.limits import MediaLimits
from childsafe.media.sniff import sniff_type
from childsafe.triage.reading import ScannedItem, read_task
from childsafe.triage.sources import ContainerError, Task, container_for


def _scan(path: Path) -> list[ScannedItem]:
    """Every item read_task reports for one file of evidence."""
    st = path.stat()
    return list(read_task(Task(str(path), path.name, st.st_size, st.st_mtime), MediaLimits()))


def _by_label(items: list[ScannedItem]) -> dict[str, ScannedItem]:
    labels = [item.hashes.path for item in items]
    assert len(labels) == len(set(labels)), f"an item was reported twice: {Counter(labels).most_common(2)}"
    return {item.hashes.path: item for item in items}


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@dataclass(frozen=True)
class _Read:
    """A member as a container yielded it, and its content read in turn."""

    name: str
    error: str | None
    content: bytes | None  # None: no content offered; b"read error: ...": reading it failed
    compressed_size: int | None


def _members(container_name: str, data: bytes, budgets: ScanBudgets | None = None) -> tuple[list[_Read], str | None]:
    """(members, the container's error) read straight from a container, each
    member's content read before the next is asked for (as the reader does)."""
    head = data[:40960]
    mime = sniff_type(head[:512]).mime
    container = container_for(mime, head)
    assert container is not None and container.name == container_name, (mime, container)
    found: list[_Read] = []
    error = None
    try:
        for member in container.members(io.BytesIO(data), "archive", mime, budgets or ScanBudgets()):
            content = None
            if member.open is not None:
                try:
                    content = member.open().read()
                except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
                    content = f"read error: {exc}".encode()
            found.append(_Read(member.name, member.error, content, member.compressed_size))
    except ContainerError as exc:
        error = str(exc)
    return found, error


# ---------------------------------------------------------------- zip


def test_zip_member_with_corrupt_data_fails_alone() -> None:
    pictures = [_png(seed) for seed in range(3)]
    original = _zip([("first.png", pictures[0]), ("second.png", pictures[1]), ("third.png", pictures[2])])
    second_header = original.find(b"PK\x03\x04", 4)
    # The first member's data damaged near its end (found by its CRC when read whole)...
    damaged_late = bytearray(original)
    damaged_late[second_header - 40 : second_header - 30] = bytes(10)
    # ... and at its start (zlib fails on the first read).
    damaged_early = bytearray(original)
    data_start = 30 + len(b"first.png")
    damaged_early[data_start : data_start + 8] = b"\xff" * 8
    for damaged in (damaged_late, damaged_early):
        members, error = _members("zip", bytes(damaged))
        assert [m.name for m in members] == ["first.png", "second.png", "third.png"] and error is None
        assert (members[0].content or b"").startswith(b"read error")
        assert members[1].content == pictures[1] and members[2].content == pictures[2]
        assert members[1].compressed_size is not None and members[1].compressed_size > 0


def test_zip_names_keep_their_bytes_utf8_flag_or_not(tmp_path: Path) -> None:
    picture, other = _png(10), _png(11)
    # Written with ASCII placeholders, then the same number of bytes put in their place.
    plain = _zip([("caf?.png", picture), ("ok.png", other)])
    latin1 = plain.replace(b"caf?.png", b"caf\xe9.png")  # Latin-1, no UTF-8 flag
    flagged_bad = _set_utf8_flag(latin1)  # flagged UTF-8, and not UTF-8
    with pytest.raises(UnicodeDecodeError):
        zipfile.ZipFile(io.BytesIO(flagged_bad))  # what made the whole archive unreadable before
    for data in (latin1, flagged_bad):
        members, error = _members("zip", data)
        assert error is None
        assert [m.name.encode("utf-8", "surrogateescape") for m in members] == [b"caf\xe9.png", b"ok.png"]
        assert members[0].content == picture and members[1].content == other
    path = tmp_path / "names.zip"
    path.write_bytes(flagged_bad)
    items = _by_label(_scan(path))
    name = "names.zip!/" + b"caf\xe9.png".decode("utf-8", "surrogateescape")
    assert items[name].hashes.sha1 == _sha1(picture) and items[name].hashes.error is None
    assert len(items) == 3


def test_truncated_zip_is_read_from_its_local_headers(tmp_path: Path) -> None:
    pictures = [_png(seed) for seed in range(20, 24)]
    whole = _zip([(f"p{i}.png", data) for i, data in enumerate(pictures[:3])], zipfile.ZIP_STORED)
    # A zip written to a stream that cannot seek (sizes in data descriptors), then cut before its directory.
    streamed = io.BytesIO()

    class OneWay(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: bytes) -> int:  # type: ignore[override]
            return streamed.write(data)

    with zipfile.ZipFile(OneWay(), "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("streamed.png", "w") as member:
            member.write(pictures[3])
    streamed_bytes = streamed.getvalue()
    assert struct.unpack_from("<H", streamed_bytes, 6)[0] & 0x8, "expected a data descriptor"
    for data, expected in (
        (whole[: whole.find(b"PK\x01\x02") + 20], {f"p{i}.png": pictures[i] for i in range(3)}),
        (streamed_bytes[: streamed_bytes.find(b"PK\x01\x02")], {"streamed.png": pictures[3]}),
    ):
        members, error = _members("zip", data)
        assert {m.name: m.content for m in members} == expected
        assert error is not None and "no central directory" in error
    # Cut inside the last member's data: that member says so, the others are read.
    cut = whole[: whole.find(b"p2.png") + 100]
    members, error = _members("zip", cut)
    assert [m.name for m in members] == ["p0.png", "p1.png", "p2.png"]
    assert members[2].content is None and members[2].error and "cut short" in members[2].error
    path = tmp_path / "cut.zip"
    path.write_bytes(cut)
    items = _by_label(_scan(path))
    assert items["cut.zip!/p0.png"].hashes.sha1 == _sha1(pictures[0])
    assert "cut short" in (items["cut.zip!/p2.png"].hashes.error or "")
    assert "no central directory" in (items["cut.zip"].hashes.error or "")


def test_zip_with_a_damaged_directory_reports_each_member_once() -> None:
    pictures = [_png(seed) for seed in range(30, 33)]
    data = bytearray(_zip([(f"p{i}.png", d) for i, d in enumerate(pictures)]))
    second_record = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 4)
    data[second_record : second_record + 4] = b"XXXX"
    members, error = _members("zip", bytes(data))
    assert [m.name for m in members] == ["p0.png", "p1.png", "p2.png"]
    assert [m.content for m in members] == pictures
    assert error is not None and "central directory damaged" in error


def test_zip64_and_budgets(monkeypatch: pytest.MonkeyPatch) -> None:
    pictures = [_png(seed) for seed in range(40, 42)]
    # zipfile writes zip64 records (64-bit sizes, offsets, end record) past this limit.
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 64)
    data = _zip([("a.png", pictures[0]), ("deep/" + "n" * 300 + ".png", pictures[1])])
    monkeypatch.undo()
    assert b"PK\x06\x06" in data
    members, error = _members("zip", data)
    assert error is None and [m.content for m in members] == pictures
    members, error = _members("zip", data, ScanBudgets(max_name_bytes=100))
    assert members[0].content is not None
    assert members[1].content is None and members[1].name == "deep/" + "n" * 95
    assert members[1].error and "CHILDSAFE_MAX_NAME_BYTES" in members[1].error


def test_encrypted_zip_member_is_reported() -> None:
    out = io.BytesIO()
    with libarchive.custom_writer(out.write, "zip", options="encryption=zipcrypt", passphrase="secret") as writer:
        writer.add_file_from_memory("locked.png", 5, b"12345")
    members, error = _members("zip", out.getvalue())
    assert error is None and [m.name for m in members] == ["locked.png"]
    assert members[0].content is None and members[0].error == "encrypted member; cannot be read without its password"


# ---------------------------------------------------------------- tar


def test_tar_with_duplicate_names_yields_both(tmp_path: Path) -> None:
    first, second = _png(50), _png(51)
    path = tmp_path / "dups.tar"
    path.write_bytes(_tar_member("same.png", first) + _tar_member("same.png", second) + bytes(1024))
    members, error = _members("tar", path.read_bytes())
    assert error is None and [m.name for m in members] == ["same.png", "same.png"]
    assert [m.content for m in members] == [first, second]
    items = _scan(path)
    assert sorted(item.hashes.sha1 or "" for item in items if item.hashes.path == "dups.tar!/same.png") == sorted(
        [_sha1(first), _sha1(second)]
    )


def test_tar_with_a_damaged_header_in_the_middle_goes_on(tmp_path: Path) -> None:
    pictures = [_png(seed) for seed in range(60, 63)]
    blocks = [_tar_member(f"p{i}.png", data) for i, data in enumerate(pictures)]
    middle = bytearray(blocks[1])
    middle[148:156] = b"0000000\0"  # a wrong header checksum
    path = tmp_path / "damaged.tar"
    path.write_bytes(blocks[0] + bytes(middle) + blocks[2] + bytes(1024))
    members, error = _members("tar", path.read_bytes())
    assert error is None
    assert [m.name for m in members] == ["p0.png", "p1.png", "p2.png"]
    assert members[0].content == pictures[0] and members[2].content == pictures[2]
    assert members[1].content is None and members[1].error and "damaged tar header" in members[1].error
    items = _by_label(_scan(path))
    assert sorted(items) == ["damaged.tar", "damaged.tar!/p0.png", "damaged.tar!/p1.png", "damaged.tar!/p2.png"]
    assert items["damaged.tar!/p2.png"].hashes.sha1 == _sha1(pictures[2])


def test_tar_names_keep_their_bytes() -> None:
    raw = b"photo-\xe9\xff.png"
    data = _tar_member(raw.decode("utf-8", "surrogateescape"), b"x") + bytes(1024)
    assert raw in data
    members, error = _members("tar", data)
    assert error is None and [m.name.encode("utf-8", "surrogateescape") for m in members] == [raw]


def test_tar_with_a_giant_long_name_header_stays_small(tmp_path: Path) -> None:
    before, after = _png(70), _png(71)
    claim = 64 << 20
    path = tmp_path / "giant-header.tar"
    _write_tar_with_giant_long_name(path, claim, before, after)
    # In a fresh process, so that the peak memory measured is this reading's.
    program = f"""
import json, os, resource, sys
from childsafe.media.limits import MediaLimits
from childsafe.triage.reading import read_task
from childsafe.triage.sources import Task
path = {str(path)!r}
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
items = list(read_task(Task(path, "giant.tar", os.path.getsize(path), None), MediaLimits()))
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start
print(json.dumps({{"grown_kib": grown, "items": [[i.hashes.path, i.hashes.sha1, i.hashes.error] for i in items]}}))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["grown_kib"] < 100 * 1024, f"reading grew by {report['grown_kib'] // 1024} MiB"
    items = {path: (sha1, error) for path, sha1, error in report["items"]}
    assert items["giant.tar!/before.png"] == (_sha1(before), None)
    assert items["giant.tar!/after.png"] == (_sha1(after), None)
    (described,) = [error for label, (_, error) in items.items() if label.startswith("giant.tar!/described")]
    assert described and "CHILDSAFE_MAX_HEADER_BYTES" in described and "67,108,864" in described


# ---------------------------------------------------------------- libarchive formats


@pytest.mark.parametrize(
    ("format_name", "container_name", "suffix"),
    [("7zip", "7z", ".7z"), ("iso9660", "iso9660", ".iso"), ("cpio_newc", "cpio", ".cpio"), ("cpio", "cpio", ".cpio")],
)
def test_libarchive_formats_yield_names_and_contents(
    tmp_path: Path, format_name: str, container_name: str, suffix: str
) -> None:
    pictures = {"photos/one.png": _png(80), "café ünï.png": _png(81), "empty.bin": b""}
    data = _libarchive_write(format_name, pictures.items())
    members, error = _members(container_name, data)
    assert error is None
    assert {m.name.encode("utf-8", "surrogateescape"): m.content for m in members} == {
        name.encode(): content for name, content in pictures.items()
    }
    path = tmp_path / f"archive{suffix}"
    path.write_bytes(data)
    items = _by_label(_scan(path))
    assert set(items) == {path.name} | {f"{path.name}!/{name}" for name in pictures}
    for name, content in pictures.items():
        assert items[f"{path.name}!/{name}"].hashes.sha1 == _sha1(content)
    assert items[path.name].hashes.error is None


def test_cpio_names_keep_their_bytes_and_binary_cpio_is_read() -> None:
    raw = b"caf\xe9.png"
    picture = _png(90)
    members, error = _members("cpio", _libarchive_write("cpio_newc", [(raw, picture)], codec="latin-1"))
    assert error is None and [(m.name.encode("utf-8", "surrogateescape"), m.content) for m in members] == [
        (raw, picture)
    ]

    # Old binary cpio (little-endian), which libarchive reads but does not write.
    def binary_member(name: bytes, data: bytes, mode: int = 0o100644) -> bytes:
        name += b"\0"
        header = struct.pack(
            "<13H", 0o070707, 0, 1, mode, 0, 0, 1, 0, 0, 0, len(name), len(data) >> 16, len(data) & 0xFFFF
        )
        return header + name + bytes(len(name) % 2) + data + bytes(len(data) % 2)

    data = binary_member(b"bin.png", picture) + binary_member(b"TRAILER!!!", b"", 0)
    assert sniff_type(data[:512]).mime == "application/x-cpio"
    members, error = _members("cpio", data)
    assert error is None and [(m.name, m.content) for m in members] == [("bin.png", picture)]
    # Two bytes that happen to be the magic are not enough.
    assert sniff_type(b"\xc7\x71" + bytes(range(200))).mime != "application/x-cpio"


def test_damaged_members_of_libarchive_formats_fail_alone() -> None:
    pictures = [_png(seed) for seed in range(100, 103)]
    # 7z, stored: one member's data damaged; the members after it are still read.
    out = io.BytesIO()
    with libarchive.custom_writer(out.write, "7zip", options="compression=store") as writer:
        for index, picture in enumerate(pictures):
            writer.add_file_from_memory(f"p{index}.png", len(picture), picture)
    data = bytearray(out.getvalue())
    data[data.find(pictures[1][100:120])] ^= 0xFF
    members, error = _members("7z", bytes(data))
    assert error is None and [m.name for m in members] == ["p0.png", "p1.png", "p2.png"]
    assert (members[1].content or b"").startswith(b"read error: damaged member")
    assert members[0].content == pictures[0] and members[2].content == pictures[2]
    # cpio: a damaged header. libarchive walks on to the next valid header and
    # warns; that becomes an item. (Its search can step over a header in some
    # alignments, so what follows is read "where libarchive can continue".)
    texts = [b"x" * 7000, b"y" * 7000, b"z" * 7000]
    data = bytearray(_libarchive_write("cpio_newc", [(f"t{i}.txt", text) for i, text in enumerate(texts)]))
    second = data.find(b"070701", 10)
    data[second : second + 6] = b"XXXXXX"
    members, error = _members("cpio", bytes(data))
    assert error is None
    assert [m.name for m in members] == ["t0.txt", "(damaged member)", "t2.txt"]
    assert members[1].error and "damaged header" in members[1].error
    assert members[0].content == texts[0] and members[2].content == texts[2]


def test_member_stream_is_valid_until_the_next_member() -> None:
    data = _libarchive_write("cpio_newc", [("a.bin", b"first"), ("b.bin", b"second")])
    container = container_for("application/x-cpio", data)
    assert container is not None
    members = container.members(io.BytesIO(data), "x.cpio", "application/x-cpio", ScanBudgets())
    first = next(members)
    second = next(members)
    assert first.open is not None and second.open is not None
    with pytest.raises(OSError, match="moved on"):
        first.open().read()
    assert second.open().read() == b"second"
    members.close()


def test_seven_zip_needs_a_seekable_stream() -> None:
    data = _libarchive_write("7zip", [("a.png", _png(110))])
    container = container_for("application/x-7z-compressed", data)
    assert container is not None and container.needs_seek

    class OneWay(io.RawIOBase):
        def __init__(self) -> None:
            self._inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
            return self._inner.readinto(buffer)

    with pytest.raises(ContainerError, match="seek"):
        list(container.members(io.BufferedReader(OneWay()), "a.7z", "application/x-7z-compressed", ScanBudgets()))


def test_iso_image_is_recognised_past_the_first_512_bytes() -> None:
    data = _libarchive_write("iso9660", [("a.png", _png(120))])
    assert data[32769:32774] == b"CD001" and sniff_type(data[:512]).mime == "application/octet-stream"
    assert container_for("application/octet-stream", data[:512]) is None
    container = container_for("application/octet-stream", data[:40960])
    assert container is not None and container.name == "iso9660"
    udf_only = bytearray(data[:40960])
    udf_only[32769:32774] = b"BEA01"
    with pytest.raises(ContainerError, match="UDF"):
        list(container.members(io.BytesIO(bytes(udf_only)), "u.iso", "application/octet-stream", ScanBudgets()))




def test_rar5_and_rar4_archives_are_read(tmp_path: Path) -> None:
    one, two = _png(130), _png(131)
    data = _rar5([("photos/café.png".encode(), one), (b"two.png", two)])
    members, error = _members("rar", data)
    assert error is None
    assert [(m.name.encode("utf-8", "surrogateescape"), m.content) for m in members] == [
        ("photos/café.png".encode(), one),
        (b"two.png", two),
    ]
    path = tmp_path / "photos.rar"
    path.write_bytes(data)
    items = _by_label(_scan(path))
    assert items["photos.rar!/photos/café.png"].hashes.sha1 == _sha1(one) and len(items) == 3

    data = _rar4([(b"one.png", one, False), (b"locked.png", two, True), (b"n\xe9.png", two, False)])
    members, error = _members("rar", data)
    assert error is None
    assert [m.name.encode("utf-8", "surrogateescape") for m in members] == [b"one.png", b"locked.png", b"n\xe9.png"]
    assert members[0].content == one and members[2].content == two
    assert members[1].content is None and members[1].error == "encrypted member; cannot be read without its password"


def test_without_libarchive_such_archives_are_items_with_an_error(tmp_path: Path) -> None:
    path = tmp_path / "a.7z"
    path.write_bytes(_libarchive_write("7zip", [("a.png", _png(140))]))
    program = f"""
import json, os
from childsafe.media.limits import MediaLimits
from childsafe.triage.reading import read_task
from childsafe.triage.sources import Task
items = list(read_task(Task({str(path)!r}, "a.7z", os.path.getsize({str(path)!r}), None), MediaLimits()))
print(json.dumps([[i.hashes.path, i.hashes.error] for i in items]))
"""
    # libarchive-c loads the library named by LIBARCHIVE: here, one that does not exist.
    env = {**os.environ, "PYTHONPATH": str(REPO), "LIBARCHIVE": str(tmp_path / "no-libarchive.so")}
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        ["a.7z", "7z archive not opened: libarchive is not installed (apt-get install libarchive13)"]
    ]
