"""The E01 fast path (``ewf_chunks.py``): its chunks, inflated with zlib,
give the very bytes libewf gives, compressed or stored, over several
segments; a damaged chunk, or a layout it does not read, is left to libewf.
The E01 files are made by ``ewfacquire`` from a raw disk of generated
pictures with random bytes in its free space (so some chunks are stored,
some compressed)."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from disk_builders import MIB, need, run, standard_disk

from childsafe.triage.sources.base import open_evidence
from childsafe.triage.sources.ewf import EwfFormat
from childsafe.triage.sources.ewf_chunks import EwfMedia


def _e01(tmp_path: Path, *options: str) -> Path:
    need("ewfacquire")
    disk = standard_disk(tmp_path / "raw")
    with open(disk.path, "r+b") as handle:  # incompressible bytes between the partitions: stored chunks
        handle.seek(17 * MIB)
        handle.write(random.Random(5).randbytes(4 * MIB))
    folder = tmp_path / "e01"
    folder.mkdir()
    run("ewfacquire", "-u", "-q", *options, "-t", folder / "exhibit", disk.path)
    return folder / "exhibit.E01"


@contextmanager
def _media(path: Path) -> Iterator[EwfMedia]:
    with open_evidence(str(path)) as stream:
        opened = EwfFormat().open(stream, str(path))
        try:
            assert isinstance(opened.media, EwfMedia)
            yield opened.media
        finally:
            opened.close()


def _whole(read_at: object, size: int) -> str:
    digest = hashlib.sha256()
    for offset in range(0, size, 3 * MIB + 17):  # reads that straddle chunks
        digest.update(read_at(offset, 3 * MIB + 17))  # type: ignore[operator]
    return digest.hexdigest()


@pytest.mark.parametrize("options", [("-c", "fast"), ("-c", "best"), ("-c", "none", "-S", "10MiB")])
def test_the_chunks_give_what_libewf_gives(tmp_path: Path, options: tuple[str, ...]) -> None:
    with _media(_e01(tmp_path, *options)) as media:
        _agrees_with_libewf(media, options)


def _agrees_with_libewf(media: EwfMedia, options: tuple[str, ...]) -> None:
    assert media.chunks is not None and media.chunks.count * media.chunks.chunk_size >= media.size
    if "-S" in options:
        assert len(media.chunks.files) >= 4 and len(set(media.chunks.segment.tolist())) == len(media.chunks.files)
    flags = {bool(flag) for flag in media.chunks.compressed}
    assert flags == {False} if "none" in options else True in flags
    size = media.chunks.chunk_size
    for number in range(0, media.chunks.count, 7):  # each chunk, checked and inflated by zlib
        assert media.chunks.chunk(number) == media.libewf.read_at(number * size, size), number
    assert _whole(media.read_at, media.size) == _whole(media.libewf.read_at, media.size)
    rng = random.Random(9)
    for _ in range(300):
        offset, length = rng.randrange(media.size), rng.choice([1, 512, 4096, 40_000])
        assert media.read_at(offset, length) == media.libewf.read_at(offset, length), (offset, length)


def test_a_damaged_chunk_is_read_by_libewf_and_the_others_by_zlib(tmp_path: Path) -> None:
    path = _e01(tmp_path, "-c", "none")
    with _media(path) as media:
        assert media.chunks is not None
        number = 20 * MIB // media.chunks.chunk_size  # a stored chunk of random bytes between the partitions
        where = int(media.chunks.offset[number]) + 100
    with open(path, "r+b") as handle:
        handle.seek(where)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with _media(path) as media:
        _damaged_chunk_read_by_libewf(media, number)


def _damaged_chunk_read_by_libewf(media: EwfMedia, number: int) -> None:
    assert media.chunks is not None
    assert media.chunks.chunk(number) is None and media.chunks.chunk(number - 1) is not None
    start = number * media.chunks.chunk_size
    try:
        expected: bytes | str = media.libewf.read_at(start, media.chunks.chunk_size)
    except OSError as exc:
        expected = str(exc)
    try:
        got: bytes | str = media.read_at(start, media.chunks.chunk_size)
    except OSError as exc:
        got = str(exc)
    assert got == expected


def test_a_layout_it_does_not_read_is_left_to_libewf(tmp_path: Path) -> None:
    with _media(_e01(tmp_path, "-c", "fast", "-f", "encase1")) as media:  # EnCase 1: chunks in the table section
        assert media.chunks is None
        assert media.read_at(0, 4096) == media.libewf.read_at(0, 4096) != bytes(4096)
