"""Disk images read in-process (``read_task``): raw, split raw, E01, VHD,
VMDK and QCOW2, their MBR and GPT partitions, FAT, ext4 and NTFS file
systems with deleted files and alternate data streams, encrypted volumes,
and damaged or truncated images.

The images are built here from benign generated pictures with Debian's
tools (``sfdisk``, ``mkfs.vfat`` + mtools, ``mkfs.ext4 -d`` + ``debugfs``,
``mkntfs`` + ``ntfscp``, ``ewfacquire``, ``qemu-img``), on sparse files in
the test's folder; a test whose tool is missing is skipped, saying which
package has it (``./run tests`` installs them). Every picture must be
reported exactly once, with where it was found, and the image file must be
unchanged after it is read.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import pytsk3
from disk_builders import (
    MIB,
    StandardDisk,
    exfat_image,
    ext4_image,
    fat_image,
    file_digest,
    need,
    ntfs_image,
    ntfs_mark_deleted,
    partitioned,
    picture,
    place,
    run,
    sha1,
    sparse,
    standard_disk,
)
from PIL import Image

from childsafe.media import MediaLimits, ScanBudgets
from childsafe.triage.reading import SHARED_IMAGE_MIN_BYTES, ScannedItem, image_shares, read_task
from childsafe.triage.sources import Share, Task
from childsafe.triage.sources.disk_signatures import looks_like_disk
from childsafe.triage.sources.raw_image import split_segments


def read(
    path: Path, label: str | None = None, budgets: ScanBudgets | None = None, verify: bool = False
) -> list[ScannedItem]:
    task = Task(str(path), label or path.name, path.stat().st_size, None)
    return list(read_task(task, MediaLimits(), budgets, verify_images=verify))


def inside(items: list[ScannedItem], image: str) -> dict[str, ScannedItem]:
    """The items found in ``image``, by their path inside it; each path once."""
    prefix = f"{image}!/"
    found = [
        item for item in items if item.hashes.path.startswith(prefix) and "!/" not in item.hashes.path[len(prefix) :]
    ]
    paths = [item.hashes.path[len(prefix) :] for item in found]
    assert len(paths) == len(set(paths)), paths
    return dict(zip(paths, found, strict=True))


def pictures_of(items: dict[str, ScannedItem]) -> dict[str, tuple[str | None, str]]:
    return {
        path: (item.hashes.sha1, item.provenance.state if item.provenance else "none")
        for path, item in items.items()
        if item.hashes.media_type == "image"
    }


# -- the partitions and file systems of a raw disk ---------------------------------


def test_every_allocated_and_deleted_picture_of_a_raw_disk_is_read_once_with_where_it_was(tmp_path: Path) -> None:
    disk = standard_disk(tmp_path)
    before = file_digest(disk.path)
    items = read(disk.path)
    assert file_digest(disk.path) == before, "the image changed while it was read"
    found = inside(items, "exhibit.bin")
    assert pictures_of(found) == {name: (sha1(data), disk.states[name]) for name, data in disk.pictures.items()}
    assert all(item.hashes.error is None for item in found.values())
    fat, ext = found["p1/DCIM/p1.jpg"].provenance, found["p2/p5.jpg"].provenance
    assert fat is not None and ext is not None
    assert (fat.location.image, fat.location.partition, fat.location.offset) == ("exhibit.bin", 1, 1 * MIB)
    assert (fat.location.filesystem, ext.location.filesystem) == ("fat16", "ext4")
    assert (ext.location.partition, ext.location.offset) == (2, 24 * MIB)
    assert fat.location.inode and ext.location.inode and ext.location.inode.isdigit()
    assert fat.location.modified and ext.location.created and ext.location.accessed
    assert found["p2/notes.txt"].hashes.sha1 == sha1(b"purple umbrella\n")
    # The image itself is an item too (hashed as a file), with what it is.
    (image,) = [item for item in items if item.hashes.path == "exhibit.bin"]
    assert image.hashes.sha256 == before[0]
    assert image.provenance is None and image.image is not None and image.image["format"] == "raw"
    assert image.hashes.error is None


def test_a_disk_image_holds_files_up_to_twice_its_size_whatever_the_archive_budget(tmp_path: Path) -> None:
    disk = standard_disk(tmp_path)
    found = inside(read(disk.path, budgets=ScanBudgets(max_container_bytes=4096)), "exhibit.bin")
    assert pictures_of(found) == {name: (sha1(data), disk.states[name]) for name, data in disk.pictures.items()}
    assert all(item.hashes.error is None for item in found.values())


def test_a_bare_file_system_and_a_gpt_disk_with_ntfs_streams_deleted_files_and_encrypted_volumes(
    tmp_path: Path,
) -> None:
    files = {"pic.jpg": picture(10), "gone.jpg": picture(11), "notes.txt": b"purple umbrella\n"}
    ntfs = ntfs_image(tmp_path / "ntfs.img", 16, files, {"notes.txt:hidden.jpg": picture(12)})
    ntfs_mark_deleted(ntfs, 65)  # the second file copied: gone.jpg (MFT entries 64, 65, 66 in copy order)
    bare = {path: item for path, item in inside(read(ntfs), "ntfs.img").items()}
    assert pictures_of(bare) == {
        "pic.jpg": (sha1(files["pic.jpg"]), "allocated"),
        "$OrphanFiles/gone.jpg": (sha1(files["gone.jpg"]), "deleted"),
        "notes.txt:hidden.jpg": (sha1(picture(12)), "allocated"),
    }
    stream = bare["notes.txt:hidden.jpg"].provenance
    assert stream is not None and stream.location.partition is None and stream.location.filesystem == "ntfs"
    assert stream.location.inode == f"{stream.location.inode.split('-')[0]}-128-{stream.location.inode.split('-')[2]}"
    assert bare["notes.txt"].provenance.location.inode != stream.location.inode  # type: ignore[union-attr]
    assert not any(path.startswith("$MFT") or path.startswith("$Extend") for path in bare)

    disk = partitioned(tmp_path / "gpt.img", 64, "gpt", [(1, 16, "L"), (20, 8, "L"), (30, 8, "L"), (40, 16, "L")])
    place(disk, 1 * MIB, ntfs)
    with open(disk, "r+b") as image:
        image.seek(20 * MIB + 3)
        image.write(b"-FVE-FS-")  # a BitLocker volume's signature
        image.seek(30 * MIB)
        image.write(b"LUKS\xba\xbe\x00\x01")
    place(disk, 40 * MIB, fat_image(tmp_path / "fat.img", 16, {"x.jpg": picture(13)}))
    before = file_digest(disk)
    found = inside(read(disk), "gpt.img")
    assert file_digest(disk) == before
    assert pictures_of(found) == {
        "p1/pic.jpg": (sha1(files["pic.jpg"]), "allocated"),
        "p1/$OrphanFiles/gone.jpg": (sha1(files["gone.jpg"]), "deleted"),
        "p1/notes.txt:hidden.jpg": (sha1(picture(12)), "allocated"),
        "p4/x.jpg": (sha1(picture(13)), "allocated"),
    }
    assert found["p2"].hashes.error is not None and found["p2"].hashes.error.startswith("BitLocker-encrypted volume")
    assert found["p3"].hashes.error is not None and found["p3"].hashes.error.startswith("LUKS-encrypted volume")
    assert found["p2"].provenance is not None and found["p2"].provenance.location.offset == 20 * MIB


# -- image formats -----------------------------------------------------------------


def _convert(disk: Path, kind: str) -> Path:
    """The disk in another image format, named without a telling extension (formats are known by their bytes)."""
    folder = disk.parent / kind
    folder.mkdir()
    if kind == "e01":
        need("ewfacquire")
        run("ewfacquire", "-u", "-q", "-c", "fast", "-d", "sha1", "-t", folder / "exhibit", disk)
        return folder / "exhibit.E01"
    if kind == "split":
        data = disk.read_bytes()
        for number, start in enumerate(range(0, len(data), 20 * MIB), start=1):
            (folder / f"exhibit.{number:03d}").write_bytes(data[start : start + 20 * MIB])
        return folder / "exhibit.001"
    need("qemu-img")
    output = folder / "exhibit"
    format_options = {"vhd": ["vpc"], "vhdx": ["vhdx"], "vmdk": ["vmdk"], "qcow2": ["qcow2"]}[kind]
    run("qemu-img", "convert", "-f", "raw", "-O", *format_options, disk, output)
    return output


@pytest.mark.parametrize("kind", ["e01", "split", "vhd", "vhdx", "vmdk", "qcow2"])
def test_each_image_format_gives_the_same_items_as_the_raw_disk(tmp_path: Path, kind: str) -> None:
    disk = standard_disk(tmp_path / "raw")
    image = _convert(disk.path, kind)
    segments = sorted(image.parent.iterdir())
    before = [file_digest(path) for path in segments]
    items = read(image)
    assert [file_digest(path) for path in segments] == before, "an image file changed while it was read"
    found = inside(items, image.name)
    assert pictures_of(found) == {name: (sha1(data), disk.states[name]) for name, data in disk.pictures.items()}
    (whole,) = [item for item in items if item.hashes.path == image.name]
    assert whole.hashes.error is None and whole.image is not None
    if kind == "e01":
        assert whole.image["format"] == "ewf"
        raw = disk.path.read_bytes()
        expected = {"md5": hashlib.md5(raw).hexdigest(), "sha1": hashlib.sha1(raw).hexdigest()}
        assert whole.image["stored_hashes"] == expected
    if kind == "split":
        assert whole.image["segments"] == [path.name for path in segments] and whole.image["format"] == "split raw"


def test_e01_verification_reads_the_media_against_its_stored_hashes(tmp_path: Path) -> None:
    disk = standard_disk(tmp_path / "raw")
    image = _convert(disk.path, "e01")
    (whole,) = [item for item in read(image, verify=True) if item.hashes.path == image.name]
    assert whole.image is not None and whole.image["verification"]["result"] == "verified"
    assert whole.image["verification"]["computed"] == whole.image["stored_hashes"]
    (unchecked,) = [item for item in read(image) if item.hashes.path == image.name]
    assert unchecked.image is not None and "verification" not in unchecked.image


# -- damaged images ---------------------------------------------------------------


def test_an_e01_missing_its_last_segments_reads_the_partitions_it_has(tmp_path: Path) -> None:
    need("ewfacquire")
    disk = standard_disk(tmp_path / "raw")
    folder = tmp_path / "segments"
    folder.mkdir()
    run("ewfacquire", "-u", "-q", "-c", "none", "-S", "10MiB", "-t", folder / "exhibit", disk.path)
    segments = sorted(folder.iterdir())
    assert len(segments) >= 4
    for later in segments[2:]:  # keep about the first 20 MiB: all of partition 1, none of partition 2
        later.unlink()
    items = read(folder / "exhibit.E01", verify=True)
    found = inside(items, "exhibit.E01")
    fat = {name: value for name, value in disk.pictures.items() if name.startswith("p1/")}
    assert {path: item.hashes.sha1 for path, item in found.items() if path in fat} == {
        name: sha1(data) for name, data in fat.items()
    }
    assert all(found[name].hashes.error is None for name in fat)
    assert found["p2"].hashes.error is not None and "cannot be read" in found["p2"].hashes.error
    (whole,) = [item for item in items if item.hashes.path == "exhibit.E01"]
    assert whole.hashes.error is not None and "segment 3 of the image is missing" in whole.hashes.error
    assert whole.image is not None and whole.image["verification"]["result"] == "unreadable"


def test_a_truncated_or_damaged_raw_disk_fails_per_partition_and_the_rest_is_read(tmp_path: Path) -> None:
    disk = standard_disk(tmp_path / "raw")
    fat = {name: sha1(value) for name, value in disk.pictures.items() if name.startswith("p1/")}
    cut = tmp_path / "cut.bin"
    cut.write_bytes(disk.path.read_bytes()[: 20 * MIB])  # ends inside partition 1's free space
    found = inside(read(cut), "cut.bin")
    assert {path: found[path].hashes.sha1 for path in fat} == fat
    assert found["p2"].hashes.error is not None

    # Cut in the middle of a file's data: that file fails (it is never read as zeros), those before it are read.
    raw = disk.path.read_bytes()
    top = disk.pictures["p1/top.jpg"]
    start = raw.find(top)
    assert start > 0
    middle = tmp_path / "middle.bin"
    middle.write_bytes(raw[: start + len(top) // 2])
    found = inside(read(middle), "middle.bin")
    error = found["p1/top.jpg"].hashes.error
    assert error is not None and "image ends at byte" in error and found["p1/top.jpg"].hashes.sha1 is None
    assert found["p1/DCIM/p1.jpg"].hashes.sha1 == fat["p1/DCIM/p1.jpg"] and found["p1/DCIM/p1.jpg"].hashes.error is None

    damaged = tmp_path / "damaged.bin"
    data = bytearray(disk.path.read_bytes())
    data[24 * MIB : 24 * MIB + 8192] = bytes(8192)  # partition 2's superblock (and its first block group)
    damaged.write_bytes(bytes(data))
    found = inside(read(damaged), "damaged.bin")
    assert {path: found[path].hashes.sha1 for path in fat} == fat
    error = found["p2"].hashes.error
    assert error is not None and "no file system that can be read in partition 2" in error


# -- images inside evidence --------------------------------------------------------


def test_disk_images_inside_archives_and_inside_disk_images_are_opened_to_the_depth_limit(tmp_path: Path) -> None:
    inner = fat_image(tmp_path / "inner.img", 8, {"deep/x.jpg": picture(20)}, deleted=())
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(inner, "backup/card.img")
    tar = tmp_path / "bundle.tar"
    with tarfile.open(tar, "w") as bundle:
        bundle.add(inner, "card.img")
    for evidence, path in (
        (archive, "bundle.zip!/backup/card.img!/deep/x.jpg"),
        (tar, "bundle.tar!/card.img!/deep/x.jpg"),
    ):
        items = {item.hashes.path: item for item in read(evidence)}
        assert items[path].hashes.sha1 == sha1(picture(20))
        provenance = items[path].provenance
        assert provenance is not None and provenance.location.image == path.rsplit("!/", 1)[0]
        assert provenance.location.filesystem == "fat12" and provenance.location.partition is None
        shallow = {item.hashes.path: item for item in read(evidence, budgets=ScanBudgets(max_depth=1))}
        assert path not in shallow
        card = path.rsplit("!/", 1)[0]
        assert shallow[card].hashes.error is not None and "CHILDSAFE_MAX_DEPTH" in shallow[card].hashes.error

    # An image in a file system of an image, itself deleted: what is in it is deleted content, found in the inner image.
    outer = ext4_image(tmp_path / "outer.img", 16, {"vm/card.img": inner.read_bytes()}, deleted=("vm/card.img",))
    items = {item.hashes.path: item for item in read(outer)}
    nested = items["outer.img!/vm/card.img!/deep/x.jpg"]
    assert nested.hashes.sha1 == sha1(picture(20)) and nested.provenance is not None
    assert nested.provenance.state == "deleted" and nested.provenance.location.image == "outer.img!/vm/card.img"
    assert nested.provenance.location.filesystem == "fat12"


def test_an_e01_in_a_file_system_is_read_in_place_through_libewf(tmp_path: Path) -> None:
    need("ewfacquire")
    inner = fat_image(tmp_path / "card.img", 8, {"x.jpg": picture(21)})
    run("ewfacquire", "-u", "-q", "-c", "fast", "-t", tmp_path / "card", inner)
    outer = ext4_image(tmp_path / "outer.img", 16, {"cases/card.E01": (tmp_path / "card.E01").read_bytes()})
    items = {item.hashes.path: item for item in read(outer)}
    found = items["outer.img!/cases/card.E01!/x.jpg"]
    assert found.hashes.sha1 == sha1(picture(21)) and found.provenance is not None
    assert (found.provenance.state, found.provenance.location.image) == ("allocated", "outer.img!/cases/card.E01")
    e01 = items["outer.img!/cases/card.E01"]
    assert e01.image is not None and e01.image["stored_hashes"]["md5"] == hashlib.md5(inner.read_bytes()).hexdigest()


# -- recognition -------------------------------------------------------------------


def test_ordinary_files_are_not_taken_for_disks_and_split_segments_follow_their_first(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    for data in (rng.bytes(65536), bytes(65536), b"purple umbrella\n" * 4096, picture(1) + bytes(65536)):
        assert not looks_like_disk(data)
    for number in (1, 2, 3, 5):
        (tmp_path / f"disk.{number:03d}").write_bytes(b"x")
    assert [Path(p).name for p in split_segments(str(tmp_path / "disk.001"))] == ["disk.002", "disk.003"]
    assert split_segments(str(tmp_path / "disk.002")) == []
    assert split_segments(str(tmp_path / "disk.img")) == []


# -- carving ------------------------------------------------------------------------


def test_pictures_in_space_no_partition_uses_are_carved_with_their_offset(tmp_path: Path) -> None:
    fat = fat_image(tmp_path / "fat.img", 4, {"kept.jpg": picture(21)})
    disk = partitioned(tmp_path / "gaps.bin", 12, "dos", [(2, 4, "6")])
    place(disk, 2 * MIB, fat)
    png = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 90)).save(png, format="PNG")
    planted = {100 * 512: picture(22), 9 * MIB + 4096: png.getvalue()}  # before and after the partition
    with open(disk, "r+b") as handle:
        for offset, data in planted.items():
            handle.seek(offset)
            handle.write(data)
    before = file_digest(disk)
    found = inside(read(disk), "gaps.bin")
    assert file_digest(disk) == before
    carved = {path: item for path, item in found.items() if path.startswith("$Carved/")}
    assert set(carved) == {"$Carved/51200.jpg", f"$Carved/{9 * MIB + 4096}.png"}
    for offset, data in planted.items():
        [item] = [item for item in carved.values() if item.provenance and item.provenance.location.offset == offset]
        assert (item.hashes.sha1, item.hashes.media_type, item.provenance.state) == (sha1(data), "image", "carved")
    assert found["p1/kept.jpg"].provenance.state == "allocated"  # type: ignore[union-attr]


def _first_block_of(fs_image: Path, inode: int) -> int:
    """The byte offset in ``fs_image`` of the first block of a file the file system keeps for itself."""
    fs = pytsk3.FS_Info(pytsk3.Img_Info(str(fs_image)))
    for attribute in fs.open_meta(inode=inode):
        if int(attribute.info.flags) & int(pytsk3.TSK_FS_ATTR_NONRES):
            for run in attribute:
                return int(run.addr) * int(fs.info.block_size)
    raise AssertionError(f"inode {inode} has no blocks")


@pytest.mark.parametrize(
    ("kind", "partition_type", "own_file"), [("fat16", "6", None), ("ext4", "83", 8), ("ntfs", "7", 2)]
)
def test_pictures_in_a_file_systems_free_space_are_carved_once_and_its_own_files_are_not(
    tmp_path: Path, kind: str, partition_type: str, own_file: int | None
) -> None:
    kept, lost, in_own_file = picture(31), picture(32), picture(33)
    made = {
        "fat16": lambda path: fat_image(path, 16, {"kept.jpg": kept}),
        "ext4": lambda path: ext4_image(path, 16, {"kept.jpg": kept}),
        "ntfs": lambda path: ntfs_image(path, 16, {"kept.jpg": kept}, {}),
    }[kind](tmp_path / "fs.img")
    free_at = 16 * MIB - 256 * 1024  # near the end: these small file systems use their first blocks
    planted = {free_at: lost}
    if own_file is not None:  # the journal (ext4) or $LogFile (NTFS): used blocks no folder lists as a file of ours
        planted[_first_block_of(made, own_file)] = in_own_file
    with open(made, "r+b") as handle:
        for offset, data in planted.items():
            handle.seek(offset)
            handle.write(data)
    disk = partitioned(tmp_path / "disk.bin", 20, "dos", [(1, 16, partition_type)])
    place(disk, MIB, made)
    found = inside(read(disk), "disk.bin")
    carved_name = f"p1/$Carved/{MIB + free_at}.jpg"
    assert pictures_of(found) == {"p1/kept.jpg": (sha1(kept), "allocated"), carved_name: (sha1(lost), "carved")}
    location = found[carved_name].provenance.location  # type: ignore[union-attr]
    assert (location.image, location.partition, location.offset, location.filesystem) == (
        "disk.bin",
        1,
        MIB + free_at,
        kind,
    )


# -- one image read by several workers ------------------------------------------------


def _with_free_space_picture(disk: StandardDisk) -> bytes:
    """Plant a picture in the ext4 partition's free space (its last MiB), so a share carves it."""
    lost = picture(41)
    with open(disk.path, "r+b") as handle:
        handle.seek(24 * MIB + 15 * MIB)
        handle.write(lost)
    return lost


def test_the_shares_of_a_disk_image_together_give_each_item_once_as_one_reader_does(tmp_path: Path) -> None:
    disk = standard_disk(tmp_path)
    lost = _with_free_space_picture(disk)
    whole = read(disk.path)
    task = Task(str(disk.path), "exhibit.bin", disk.path.stat().st_size, None)
    shares = image_shares(task, 3)
    assert [share.share for share in shares] == [Share(0, 3), Share(1, 3), Share(2, 3)]
    parts = [list(read_task(share, MediaLimits())) for share in shares]

    def seen(items: list[ScannedItem]) -> list[tuple[object, ...]]:
        return sorted((i.position, i.hashes.path, i.hashes.sha1, i.provenance, i.hashes.error) for i in items)

    assert seen([item for part in parts for item in part]) == seen(whole)
    # The first share alone has the image's own item; the last alone carves; files are spread over all three.
    assert [[item.position for item in part if not item.position] for part in parts] == [[()], [], []]
    carved = [
        [item.hashes.sha1 for item in part if item.provenance and item.provenance.state == "carved"] for part in parts
    ]
    assert carved == [[], [], [sha1(lost)]]
    assert all(sum(1 for item in part if item.provenance and item.provenance.state != "carved") >= 2 for part in parts)


def test_only_disk_images_of_some_size_are_shared(tmp_path: Path) -> None:
    small = fat_image(tmp_path / "small.img", 4, {"a.jpg": picture(1)})
    big_file = tmp_path / "big.bin"
    big_file.write_bytes(os.urandom(SHARED_IMAGE_MIN_BYTES))
    disk = standard_disk(tmp_path / "disk")
    for path, shared in ((small, False), (big_file, False), (disk.path, True)):
        task = Task(str(path), path.name, path.stat().st_size, None)
        assert image_shares(task, 1) == [task]
        assert (image_shares(task, 2) != [task]) is shared, path.name


def test_an_exfat_volume_is_read_its_own_entries_are_not_items_and_its_free_space_is_carved(tmp_path: Path) -> None:
    volume = exfat_image(tmp_path / "exfat.img", 16)
    lost = picture(51)
    with open(volume, "r+b") as handle:
        handle.seek(15 * MIB)
        handle.write(lost)
    found = inside(read(volume), "exfat.img")
    # Not $ALLOC_BITMAP, $UPCASE_TABLE or "EXHIBIT (Volume Label Entry)": exFAT's own entries.
    assert pictures_of(found) == {f"$Carved/{15 * MIB}.jpg": (sha1(lost), "carved")}
    assert set(found) == {f"$Carved/{15 * MIB}.jpg"}
    assert found[f"$Carved/{15 * MIB}.jpg"].provenance.location.filesystem == "exfat"  # type: ignore[union-attr]


def test_reading_a_later_segment_at_length_says_it_is_still_going(tmp_path: Path) -> None:
    # Carving 320 MiB of unallocated space in a split image's second segment: the worker's progress
    # must tick (every 64 MiB), or a large free space would be taken for a hang and the worker killed.
    fat = fat_image(tmp_path / "fat.img", 4, {"kept.jpg": picture(61)})
    disk = partitioned(tmp_path / "whole.bin", 340, "dos", [(1, 4, "6")])
    place(disk, MIB, fat)
    folder = tmp_path / "split"
    folder.mkdir()
    with open(disk, "rb") as whole:
        (folder / "exhibit.001").write_bytes(whole.read(20 * MIB))
    sparse(folder / "exhibit.002", 320 * MIB)
    keys: list[object] = []
    task = Task(str(folder / "exhibit.001"), "exhibit.001", (folder / "exhibit.001").stat().st_size, None)
    items = list(read_task(task, MediaLimits(), progress=keys.append))
    assert any(item.hashes.path.endswith("kept.jpg") for item in items)
    repeated = sum(1 for before, after in zip(keys, keys[1:], strict=False) if before == after)
    assert repeated >= 4, keys
