"""What the first bytes of a disk or a volume say it holds: a partition
table, a file system, or an encrypted volume.

Pure byte checks, no library: they decide whether content is opened as a raw
disk image at all (``raw_image.py``), and which volumes are reported as
encrypted instead of handed to The Sleuth Kit (``volumes.py``). Each check
looks at more than one magic number where the magic alone is short (the
ext superblock's is two bytes), so that an ordinary file is not taken for a
disk.
"""

from __future__ import annotations

__all__ = ["HEAD_BYTES", "partition_table", "table_size", "filesystem", "encryption", "looks_like_disk"]

#: How much of a disk or volume the checks look at (the ext and HFS+ superblocks are at byte 1,024).
HEAD_BYTES = 4096

_ENCRYPTION = (
    (3, b"-FVE-FS-", "BitLocker"),
    (0, b"LUKS\xba\xbe", "LUKS"),
)


def _boot_signature(head: bytes) -> bool:
    return head[510:512] == b"\x55\xaa"


def _mbr_entries_sane(head: bytes) -> bool:
    """Four partition entries, each empty or with a boot flag of 0x00/0x80,
    a type, and a start and length; at least one not empty."""
    used = 0
    for number in range(4):
        entry = head[446 + 16 * number : 462 + 16 * number]
        if entry[0] not in (0x00, 0x80):
            return False
        kind = entry[4]
        start = int.from_bytes(entry[8:12], "little")
        length = int.from_bytes(entry[12:16], "little")
        if kind == 0:
            if start or length:
                return False
            continue
        if start == 0 or length == 0:
            return False
        used += 1
    return used > 0


def partition_table(head: bytes) -> str | None:
    """``gpt`` or ``mbr`` when ``head`` (the disk's first sectors) starts with one."""
    if len(head) < 1024:
        return None
    if head[512:520] == b"EFI PART" and _boot_signature(head):
        return "gpt"
    if _boot_signature(head) and filesystem(head) is None and _mbr_entries_sane(head):
        return "mbr"
    return None


def table_size(head: bytes) -> int | None:
    """The disk size in bytes the partition table at the start of ``head``
    implies (the end of its last partition; for GPT, of its backup header), so
    that a disk cut short can still have its table read."""
    kind = partition_table(head)
    if kind == "gpt":
        return (int.from_bytes(head[512 + 32 : 512 + 40], "little") + 1) * 512
    if kind == "mbr":
        ends = []
        for number in range(4):
            entry = head[446 + 16 * number : 462 + 16 * number]
            ends.append(int.from_bytes(entry[8:12], "little") + int.from_bytes(entry[12:16], "little"))
        return max(ends) * 512
    return None


def _fat(head: bytes) -> bool:
    if not _boot_signature(head) or head[0] not in (0xEB, 0xE9):
        return False
    bytes_per_sector = int.from_bytes(head[11:13], "little")
    sectors_per_cluster = head[13]
    if bytes_per_sector not in (512, 1024, 2048, 4096) or sectors_per_cluster not in (1, 2, 4, 8, 16, 32, 64, 128):
        return False
    return head[54:59] == b"FAT12" or head[54:59] == b"FAT16" or head[54:57] == b"FAT" or head[82:87] == b"FAT32"


def _ext(head: bytes) -> bool:
    superblock = head[1024:2048]
    if len(superblock) < 1024 or superblock[56:58] != b"\x53\xef":
        return False
    inodes = int.from_bytes(superblock[0:4], "little")
    blocks = int.from_bytes(superblock[4:8], "little")
    log_block_size = int.from_bytes(superblock[24:28], "little")
    revision = int.from_bytes(superblock[76:80], "little")
    return inodes > 0 and blocks > 0 and log_block_size <= 6 and revision <= 1


def filesystem(head: bytes) -> str | None:
    """The kind of file system that starts at the start of ``head``, if any:
    ``ntfs``, ``exfat``, ``fat``, ``ext``, ``hfs+``, ``apfs``."""
    if head[3:11] == b"NTFS    " and _boot_signature(head):
        return "ntfs"
    if head[3:11] == b"EXFAT   " and _boot_signature(head):
        return "exfat"
    if _fat(head):
        return "fat"
    if _ext(head):
        return "ext"
    if head[1024:1026] in (b"H+", b"HX") and head[1026:1028] in (b"\x00\x04", b"\x00\x05"):
        return "hfs+"
    if head[32:36] == b"NXSB":
        return "apfs"
    return None


def encryption(head: bytes) -> str | None:
    """``BitLocker`` or ``LUKS`` when ``head`` starts an encrypted volume."""
    for offset, magic, name in _ENCRYPTION:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None


def looks_like_disk(head: bytes) -> bool:
    """Whether ``head`` starts a raw disk or volume: a partition table, a file
    system, or an encrypted volume (reported as such)."""
    return partition_table(head) is not None or filesystem(head) is not None or encryption(head) is not None
