"""Archive readers ("containers") against hostile and damaged archives,
member by member, and the formats read through libarchive (7z, RAR, ISO
9660, cpio). The fixed edge cases are files under tests/data/zip and
tests/data/tar (tests/data/make_data.py writes them); archives whose point
is a setting or a size are built in the test."""

from __future__ import annotations

import hashlib
import io
import struct
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
from builders import zip_of as _zip
from support import DATA

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


def _picture(name: str) -> bytes:
    """One of the generated pictures the archives under tests/data/ hold."""
    return (DATA / "png" / name).read_bytes()


@pytest.mark.parametrize("name", ["latin1-name.zip", "utf8-flag-latin1-name.zip"])
def test_zip_names_keep_their_bytes_utf8_flag_or_not(name: str) -> None:
    members, error = _members("zip", (DATA / "zip" / name).read_bytes())
    assert error is None
    assert [m.name.encode("utf-8", "surrogateescape") for m in members] == [b"caf\xe9.png", b"ok.png"]
    assert [m.content for m in members] == [_picture("p0.png"), _picture("p1.png")]


def test_a_zip_flagged_utf8_that_is_not_is_one_zipfile_cannot_open() -> None:
    # What made the whole archive unreadable before: the reader must not lean on zipfile here.
    with pytest.raises(UnicodeDecodeError):
        zipfile.ZipFile(DATA / "zip" / "utf8-flag-latin1-name.zip")


def test_a_name_that_is_not_utf8_is_the_label_of_its_item() -> None:
    items = _by_label(_scan(DATA / "zip" / "utf8-flag-latin1-name.zip"))
    name = "utf8-flag-latin1-name.zip!/" + b"caf\xe9.png".decode("utf-8", "surrogateescape")
    assert items[name].hashes.sha1 == _sha1(_picture("p0.png")) and items[name].hashes.error is None
    assert len(items) == 3


def test_a_zip_cut_before_its_directory_is_read_from_its_local_headers() -> None:
    pictures = [_png(seed) for seed in range(20, 23)]
    whole = _zip([(f"p{i}.png", data) for i, data in enumerate(pictures)], zipfile.ZIP_STORED)
    members, error = _members("zip", whole[: whole.find(b"PK\x01\x02") + 20])
    assert {m.name: m.content for m in members} == {f"p{i}.png": pictures[i] for i in range(3)}
    assert error is not None and "no central directory" in error


def test_a_streamed_zip_cut_before_its_directory_is_read_through_its_data_descriptors() -> None:
    picture = _png(23)
    streamed = io.BytesIO()

    class OneWay(io.RawIOBase):  # a stream that cannot seek: sizes go in data descriptors
        def writable(self) -> bool:
            return True

        def write(self, data: bytes) -> int:  # type: ignore[override]
            return streamed.write(data)

    with zipfile.ZipFile(OneWay(), "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("streamed.png", "w") as member:
            member.write(picture)
    data = streamed.getvalue()
    assert struct.unpack_from("<H", data, 6)[0] & 0x8, "expected a data descriptor"
    members, error = _members("zip", data[: data.find(b"PK\x01\x02")])
    assert {m.name: m.content for m in members} == {"streamed.png": picture}
    assert error is not None and "no central directory" in error


def test_a_zip_cut_inside_a_member_says_so_for_that_member() -> None:
    members, error = _members("zip", (DATA / "zip" / "cut-inside-last-member.zip").read_bytes())
    assert [m.name for m in members] == ["p0.png", "p1.png", "p2.png"]
    assert [m.content for m in members[:2]] == [_picture("p0.png"), _picture("p1.png")]
    assert members[2].content is None and members[2].error and "cut short" in members[2].error


def test_a_cut_zip_is_items_for_the_members_and_an_error_for_the_file() -> None:
    items = _by_label(_scan(DATA / "zip" / "cut-inside-last-member.zip"))
    assert items["cut-inside-last-member.zip!/p0.png"].hashes.sha1 == _sha1(_picture("p0.png"))
    assert "cut short" in (items["cut-inside-last-member.zip!/p2.png"].hashes.error or "")
    assert "no central directory" in (items["cut-inside-last-member.zip"].hashes.error or "")


def test_zip_with_a_damaged_directory_reports_each_member_once() -> None:
    members, error = _members("zip", (DATA / "zip" / "damaged-central-directory.zip").read_bytes())
    assert [m.name for m in members] == ["p0.png", "p1.png", "p2.png"]
    assert [m.content for m in members] == [_picture(f"p{n}.png") for n in range(3)]
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


def test_tar_with_duplicate_names_yields_both() -> None:
    path = DATA / "tar" / "duplicate-names.tar"
    members, error = _members("tar", path.read_bytes())
    first, second = _picture("p0.png"), _picture("p1.png")
    assert error is None and [m.name for m in members] == ["same.png", "same.png"]
    assert [m.content for m in members] == [first, second]
    found = sorted(
        item.hashes.sha1 or "" for item in _scan(path) if item.hashes.path == "duplicate-names.tar!/same.png"
    )
    assert found == sorted([_sha1(first), _sha1(second)])


def test_tar_with_a_damaged_header_in_the_middle_goes_on() -> None:
    path = DATA / "tar" / "damaged-header.tar"
    members, error = _members("tar", path.read_bytes())
    assert error is None
    assert [m.name for m in members] == ["p0.png", "p1.png", "p2.png"]
    assert members[0].content == _picture("p0.png") and members[2].content == _picture("p2.png")
    assert members[1].content is None and members[1].error and "damaged tar header" in members[1].error


def test_a_damaged_tar_header_is_an_item_between_the_others() -> None:
    items = _by_label(_scan(DATA / "tar" / "damaged-header.tar"))
    assert sorted(items) == [f"damaged-header.tar{member}" for member in ("", "!/p0.png", "!/p1.png", "!/p2.png")]
    assert items["damaged-header.tar!/p2.png"].hashes.sha1 == _sha1(_picture("p2.png"))


def test_tar_names_keep_their_bytes() -> None:
    members, error = _members("tar", (DATA / "tar" / "latin1-name.tar").read_bytes())
    assert error is None and [m.name.encode("utf-8", "surrogateescape") for m in members] == [b"photo-\xe9\xff.png"]


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
