"""Disk images for the tests, built on the fly with Debian's tools from
benign generated pictures (``sfdisk``, ``mkfs.vfat`` + mtools, ``mkfs.ext4
-d`` + ``debugfs``, ``mkntfs`` + ``ntfscp``), on sparse files. A test whose
tool is missing is skipped, saying which package has it (``./run tests``
installs them)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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
    "mkfs.exfat": "exfatprogs",
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


def exfat_image(path: Path, size_mib: int, label: str = "EXHIBIT") -> Path:
    """An empty exFAT file system (no tool here writes files into one without mounting it)."""
    need("mkfs.exfat")
    sparse(path, size_mib * MIB)
    run("mkfs.exfat", "-L", label, path)
    return path
