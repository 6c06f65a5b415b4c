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
import shutil
import struct
import subprocess
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import pytsk3
from PIL import Image

from childsafe.media import MediaLimits, ScanBudgets
from childsafe.triage.reading import ScannedItem, read_task
from childsafe.triage.sources import Task
from childsafe.triage.sources.disk_signatures import looks_like_disk
from childsafe.triage.sources.raw_image import split_segments

MIB = 1 << 20
#: Which Debian package has each tool (named in the skip reason).
_PACKAGES = {
    "sfdisk": "fdisk",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "mkntfs": "ntfs-3g",
    "ntfscp": "ntfs-3g",
    "ewfacquire": "ewf-tools",
    "qemu-img": "qemu-utils",
}


def need(*tools: str) -> None:
    """Skip the test, naming the package, when a tool that builds its image is missing."""
    for tool in tools:
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists() and not Path("/sbin", tool).exists():
            pytest.skip(f"{tool} is not installed (Debian package {_PACKAGES[tool]}; ./run tests installs it)")


def _tool(name: str) -> str:
    for folder in ("", "/usr/sbin/", "/sbin/"):
        path = shutil.which(name) if not folder else (folder + name if Path(folder + name).exists() else None)
        if path:
            return path
    raise FileNotFoundError(name)


def run(*args: str | Path, stdin: str | None = None) -> None:
    command = [_tool(str(args[0])), *map(str, args[1:])]
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    subprocess.run(command, check=True, capture_output=True, text=True, input=stdin, env=env)


def picture(seed: int) -> bytes:
    """A benign generated picture (coloured blocks, smoothed), distinct for each seed."""
    blocks = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(blocks).resize((160, 120), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def file_digest(path: Path) -> tuple[str, int, int]:
    """Content, size and modification time of an evidence file (to check it is untouched)."""
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_size, st.st_mtime_ns


def sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def place(disk: Path, offset: int, image: Path) -> None:
    """Copy a file-system image into a disk image at ``offset``, a MiB at a time."""
    with open(image, "rb") as source, open(disk, "r+b") as target:
        target.seek(offset)
        while chunk := source.read(MIB):
            target.write(chunk)


def fat_image(path: Path, size_mib: int, files: dict[str, bytes], deleted: tuple[str, ...] = ()) -> Path:
    """A FAT16 file system holding ``files`` (``DCIM/a.jpg``...), then ``deleted`` removed with ``mdel``."""
    need("mkfs.vfat", "mcopy")
    sparse(path, size_mib * MIB)
    run("mkfs.vfat", *(["-F", "16"] if size_mib >= 16 else []), path)
    made: set[str] = set()
    for name, data in files.items():
        folder = name.rpartition("/")[0]
        if folder and folder not in made:
            run("mmd", "-i", path, f"::/{folder}")
            made.add(folder)
        source = path.parent / f"source-{len(made)}-{name.replace('/', '_')}"
        source.write_bytes(data)
        run("mcopy", "-i", path, source, f"::/{name}")
    for name in deleted:
        run("mdel", "-i", path, f"::/{name}")
    return path


def ext4_image(path: Path, size_mib: int, files: dict[str, bytes], deleted: tuple[str, ...] = ()) -> Path:
    """An ext4 file system made from a folder of ``files`` (``mkfs.ext4 -d``), then ``deleted`` removed with debugfs."""
    need("mkfs.ext4", "debugfs")
    tree = path.parent / f"{path.name}-tree"
    for name, data in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(data)
    sparse(path, size_mib * MIB)
    run("mkfs.ext4", "-q", "-F", "-d", tree, path)
    for name in deleted:
        run("debugfs", "-w", "-R", f"rm /{name}", path)
    return path


def ntfs_mark_deleted(path: Path, entry: int) -> None:
    """Mark an MFT entry no longer in use, as deleting a file does (no NTFS tool deletes without mounting)."""
    with open(path, "r+b") as image:
        boot = image.read(512)
        cluster = struct.unpack_from("<H", boot, 11)[0] * boot[13]
        mft = struct.unpack_from("<q", boot, 0x30)[0] * cluster
        size_code = struct.unpack_from("<b", boot, 0x40)[0]
        record = cluster * size_code if size_code > 0 else 1 << -size_code
        image.seek(mft + entry * record)
        assert image.read(4) == b"FILE"
        image.seek(mft + entry * record + 0x16)
        flags = struct.unpack("<H", image.read(2))[0]
        image.seek(mft + entry * record + 0x16)
        image.write(struct.pack("<H", flags & ~1))


def ntfs_image(path: Path, size_mib: int, files: dict[str, bytes], streams: dict[str, bytes]) -> Path:
    """An NTFS file system holding ``files`` (in the root) and alternate data
    streams (``"notes.txt:hidden.jpg"``)."""
    need("mkntfs", "ntfscp")
    sparse(path, size_mib * MIB)
    run("mkntfs", "-q", "-F", "-f", path)
    for number, (name, data) in enumerate([*files.items(), *streams.items()]):
        source = path.parent / f"ntfs-source-{number}"
        source.write_bytes(data)
        host, _, stream = name.partition(":")
        run("ntfscp", "-q", *(["-N", stream] if stream else []), path, source, host)
    return path


def partitioned(disk: Path, size_mib: int, label: str, partitions: list[tuple[int, int, str]]) -> Path:
    """A sparse disk with a partition table (``dos`` or ``gpt``): (start MiB, size MiB, type) each."""
    need("sfdisk")
    sparse(disk, size_mib * MIB)
    lines = [f"label: {label}"] + [
        f"start={start * 2048}, size={size * 2048}, type={kind}" for start, size, kind in partitions
    ]
    run("sfdisk", "-q", disk, stdin="\n".join(lines) + "\n")
    return disk


@dataclass
class StandardDisk:
    """The MBR disk most tests read: FAT16 in partition 1, ext4 in partition 2."""

    path: Path
    pictures: dict[str, bytes]  # name in the image -> content (deleted ones too)
    states: dict[str, str]  # name in the image -> allocated / deleted


def standard_disk(folder: Path, name: str = "exhibit.bin") -> StandardDisk:
    """FAT16 at 1 MiB (16 MiB) and ext4 at 24 MiB (16 MiB) on a 48 MiB disk;
    in each, pictures in folders and one deleted."""
    folder.mkdir(parents=True, exist_ok=True)
    fat_files = {"DCIM/p1.jpg": picture(1), "DCIM/p2.jpg": picture(2), "top.jpg": picture(3)}
    ext_files = {"home/u/p4.jpg": picture(4), "p5.jpg": picture(5), "notes.txt": b"purple umbrella\n"}
    fat = fat_image(folder / "fat.img", 16, fat_files, deleted=("DCIM/p2.jpg",))
    ext = ext4_image(folder / "ext.img", 16, ext_files, deleted=("p5.jpg",))
    disk = partitioned(folder / name, 48, "dos", [(1, 16, "6"), (24, 16, "83")])
    place(disk, 1 * MIB, fat)
    place(disk, 24 * MIB, ext)
    pictures = {
        "p1/DCIM/p1.jpg": fat_files["DCIM/p1.jpg"],
        "p1/DCIM/_2.jpg": fat_files["DCIM/p2.jpg"],  # FAT overwrites a deleted name's first letter
        "p1/top.jpg": fat_files["top.jpg"],
        "p2/home/u/p4.jpg": ext_files["home/u/p4.jpg"],
        "p2/p5.jpg": ext_files["p5.jpg"],
    }
    states = {name: "allocated" for name in pictures} | {"p1/DCIM/_2.jpg": "deleted", "p2/p5.jpg": "deleted"}
    return StandardDisk(disk, pictures, states)


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
