"""Carving pictures from unallocated space (childsafe/triage/carving.py):
pictures Pillow writes, planted among random bytes, are found at their exact
offsets and lengths; damaged or cut ones and random bytes are not."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image

from childsafe.triage.carving import BLOCK_BYTES, CarvedPicture, carve_pictures
from childsafe.triage.sources.unallocated import BlockRuns


def _scene(seed: int, size: tuple[int, int] = (96, 64)) -> Image.Image:
    """A benign generated picture: smooth gradients and a few bright squares."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    pixels = np.stack([(x * 2 + seed * 40) % 256, (y * 3) % 256, ((x + y) * seed) % 256], axis=-1).astype(np.uint8)
    for _ in range(3):
        top, left = int(rng.integers(0, size[1] - 10)), int(rng.integers(0, size[0] - 10))
        pixels[top : top + 8, left : left + 8] = rng.integers(0, 256, 3)
    return Image.fromarray(pixels)


def _encoded(picture: Image.Image, format: str, **options: object) -> bytes:
    out = io.BytesIO()
    picture.save(out, format=format, **options)
    return out.getvalue()


PICTURES = {
    "jpeg": (lambda: _encoded(_scene(1), "JPEG", quality=85), "image/jpeg"),
    "progressive jpeg": (lambda: _encoded(_scene(2), "JPEG", progressive=True), "image/jpeg"),
    "jpeg with restart markers": (lambda: _encoded(_scene(3), "JPEG", restart_marker_blocks=1), "image/jpeg"),
    "png": (lambda: _encoded(_scene(4), "PNG"), "image/png"),
    "gif": (lambda: _encoded(_scene(5).convert("P"), "GIF"), "image/gif"),
    "animated gif": (
        lambda: _encoded(_scene(6).convert("P"), "GIF", save_all=True, append_images=[_scene(7).convert("P")]),
        "image/gif",
    ),
    "lossy webp": (lambda: _encoded(_scene(8), "WEBP", quality=80), "image/webp"),
    "lossless webp": (lambda: _encoded(_scene(9), "WEBP", lossless=True), "image/webp"),
    "webp with alpha": (lambda: _encoded(_scene(10).convert("RGBA"), "WEBP"), "image/webp"),
    "bmp": (lambda: _encoded(_scene(11), "BMP"), "image/bmp"),
    "palette bmp": (lambda: _encoded(_scene(12).convert("P"), "BMP"), "image/bmp"),
}


def _disk(parts: list[bytes], seed: int = 0, gap: int = 5000) -> tuple[bytes, list[int]]:
    """Random bytes with ``parts`` planted between gaps; the offset of each."""
    rng = random.Random(seed)
    disk, offsets = bytearray(), []
    for part in parts:
        disk += rng.randbytes(rng.randrange(1, gap))
        offsets.append(len(disk))
        disk += part
    disk += rng.randbytes(gap)
    return bytes(disk), offsets


def _carve(disk: bytes, start: int = 0, end: int | None = None) -> list[CarvedPicture]:
    return list(
        carve_pictures(lambda offset, size: disk[offset : offset + size], start, len(disk) if end is None else end)
    )


@pytest.mark.parametrize("make,mime", list(PICTURES.values()), ids=list(PICTURES))
def test_a_planted_picture_is_carved_whole(make, mime: str) -> None:  # type: ignore[no-untyped-def]
    picture = make()
    disk, [offset] = _disk([picture])
    assert _carve(disk) == [CarvedPicture(offset, len(picture), mime)]


def test_every_picture_of_a_crowded_disk_is_found_once_in_order() -> None:
    pictures = [make() for make, _ in PICTURES.values()] * 3
    disk, offsets = _disk(pictures, seed=3)
    carved = _carve(disk)
    assert [(c.offset, c.length) for c in carved] == [(o, len(p)) for o, p in zip(offsets, pictures, strict=True)]
    for found in carved:  # each carved range decodes as what it says it is
        Image.open(io.BytesIO(disk[found.offset : found.offset + found.length])).load()


def test_pictures_back_to_back_and_across_a_block_boundary() -> None:
    picture = PICTURES["png"][0]()
    before = BLOCK_BYTES - len(picture) // 2  # the second picture straddles the first block's end
    disk = picture + bytes(before - len(picture)) + picture + picture + bytes(100)
    assert [c.offset for c in _carve(disk)] == [0, before, before + len(picture)]


@pytest.mark.parametrize("name", list(PICTURES))
def test_a_picture_cut_short_is_not_carved(name: str) -> None:
    picture = PICTURES[name][0]()
    disk = bytes(1000) + picture[: len(picture) - 3]
    assert _carve(disk) == []


def test_only_the_range_asked_for_is_searched() -> None:
    picture = PICTURES["jpeg"][0]()
    disk, [first, second] = _disk([picture, picture])
    assert [c.offset for c in _carve(disk, start=first + 1)] == [second]
    assert _carve(disk, end=second + len(picture) - 1) == [CarvedPicture(first, len(picture), "image/jpeg")]


def test_random_bytes_give_no_pictures() -> None:
    noise = random.Random(11).randbytes(8 * 1024 * 1024)
    # Headers planted without their structure: bare signatures are not pictures.
    planted = noise[:1000] + b"\xff\xd8\xff\xe0" + noise[1000:3000] + b"\x89PNG\r\n\x1a\n" + noise[3000:]
    planted += b"GIF89a" + noise[:500] + b"BM" + noise[:4] + bytes(4) + noise[:2000]
    assert _carve(planted) == []


def test_an_exif_thumbnail_is_part_of_its_picture_not_a_second_find() -> None:
    thumbnail = PICTURES["jpeg"][0]()
    outer = _scene(20, (200, 150))
    exif = Image.Exif()
    exif[0x010E] = "purple umbrella"  # ImageDescription; benign placeholder text
    picture = _encoded(outer, "JPEG", exif=exif.tobytes() + thumbnail)
    disk, [offset] = _disk([picture])
    assert _carve(disk) == [CarvedPicture(offset, len(picture), "image/jpeg")]


def test_a_picture_longer_than_the_limit_is_dropped_not_cut() -> None:
    picture = PICTURES["bmp"][0]()
    disk, _ = _disk([picture])
    found = list(carve_pictures(lambda o, n: disk[o : o + n], 0, len(disk), max_bytes=len(picture) - 1))
    assert found == []


def test_a_jpeg_cut_inside_its_image_data_does_not_swallow_the_next_one() -> None:
    picture = PICTURES["jpeg"][0]()
    cut = picture[: len(picture) // 2]  # ends inside the entropy-coded data
    disk = bytes(100) + cut + picture + bytes(100)
    assert _carve(disk) == [CarvedPicture(100 + len(cut), len(picture), "image/jpeg")]


def test_a_bmp_whose_header_overstates_its_size_ends_where_its_rows_end() -> None:
    picture = bytearray(PICTURES["bmp"][0]())
    picture[2:6] = (len(picture) + 4096).to_bytes(4, "little")  # the stated size runs into what follows
    disk = bytes(100) + picture + random.Random(5).randbytes(8192)
    [found] = _carve(disk)
    assert (found.offset, found.length) == (100, len(picture))
    Image.open(io.BytesIO(disk[found.offset : found.offset + found.length])).load()


def test_free_blocks_are_those_no_run_covers_overlapping_and_nested_runs_included() -> None:
    runs = BlockRuns()
    assert runs.free(10, 19) == [(10, 10)]  # nothing used: all of it
    for start, length in [(12, 3), (13, 1), (20, 5), (14, 2), (0, 11), (18, 0)]:
        runs.add(start, length)
    # used: 0-10, 12-15 (with a nested run and an overlapping one), 20-24; an empty run adds nothing
    assert runs.free(0, 30) == [(11, 1), (16, 4), (25, 6)]
    assert runs.free(5, 22) == [(11, 1), (16, 4)]
    assert runs.free(30, 29) == []
