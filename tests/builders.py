"""Builders of benign test input: generated pictures, and archives written
byte by byte where a library would refuse to write what a seizure may hold
(names that are not UTF-8, flags that lie, RAR). Used by tests of both
layers and by tests/data/make_data.py, which writes the fixed edge cases
under tests/data/ with them."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image


def png(seed: int, side: int = 48) -> bytes:
    """A benign generated picture (random colours), as PNG bytes."""
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, body, CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width x height zeros: tiny on disk, huge decoded."""
    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def flat_png(width: int, height: int, rows: int | None = None) -> bytes:
    """A PNG of one colour, ``width`` x ``height``, with pixel data for
    ``rows`` rows (all by default). Written by hand: Pillow would need the
    whole picture in memory to write it, and a test needs only its bytes."""
    row = b"\x00" + bytes([90, 140, 200]) * width  # filter byte "none", then the pixels
    packer = zlib.compressobj(1)
    data = b"".join(packer.compress(row) for _ in range(height if rows is None else rows)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def zip_of(files: Iterable[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of (name, content) members, written by ``zipfile``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in files:
            archive.writestr(name, data)
    return buffer.getvalue()


def set_utf8_flag(data: bytes) -> bytes:
    """Set the UTF-8 flag (bit 11) in every local header and directory record of a zip."""
    out = bytearray(data)
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        position = out.find(signature)
        while position >= 0:
            (flags,) = struct.unpack_from("<H", out, position + flags_at)
            struct.pack_into("<H", out, position + flags_at, flags | 0x800)
            position = out.find(signature, position + 4)
    return bytes(out)


def tar_member(name: str, data: bytes) -> bytes:
    """One GNU tar member (header, content, padding), without the end blocks."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info.tobuf(tarfile.GNU_FORMAT) + data + bytes(-len(data) % 512)


def tar_of(members: list[tuple[bytes, bytes]]) -> bytes:
    """A GNU tar of (name as bytes, content) members: names need not be UTF-8."""
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape"
    ) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name.decode("utf-8", "surrogateescape"))
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_tar_with_giant_long_name(path: Path, claim: int, before: bytes, after: bytes) -> None:
    """before.png, a GNU long-name header of ``claim`` bytes (all there), the
    member it names, then after.png; written a MiB at a time."""
    long_name = tarfile.TarInfo("././@LongLink")
    long_name.type = tarfile.GNUTYPE_LONGNAME
    long_name.size = claim
    with path.open("wb") as out:
        out.write(tar_member("before.png", before))
        out.write(long_name.tobuf(tarfile.GNU_FORMAT))
        chunk = b"n" * (1 << 20)
        for _ in range(claim // len(chunk)):
            out.write(chunk)
        out.write(tar_member("described.bin", b"the member the long name was for"))
        out.write(tar_member("after.png", after))
        out.write(bytes(1024))


def libarchive_write(format_name: str, files: Iterable[tuple[str | bytes, bytes]], codec: str = "utf-8") -> bytes:
    """An archive in a format libarchive writes (7zip, iso9660, cpio, cpio_newc)."""
    import libarchive

    out = io.BytesIO()
    with libarchive.custom_writer(out.write, format_name, header_codec=codec) as writer:
        for name, data in files:
            writer.add_file_from_memory(name, len(data), data)
    return out.getvalue()


# RAR: libarchive cannot write it, so stored (uncompressed) archives are written here
# following the published formats (RAR 5.0: www.rarlab.com/technote.htm; RAR 4: technote.txt of RAR 4).


def _vint(number: int) -> bytes:
    """RAR 5 variable-length integer: 7 bits a byte, low bits first, high bit = more."""
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _rar5_block(kind: int, fields: bytes, data: bytes | None = None) -> bytes:
    flags = 0x0002 if data is not None else 0  # data area present
    body = _vint(kind) + _vint(flags) + (_vint(len(data)) if data is not None else b"") + fields
    size = _vint(len(body))
    return struct.pack("<I", zlib.crc32(size + body)) + size + body + (data or b"")


def rar5(files: Iterable[tuple[bytes, bytes]]) -> bytes:
    """A stored RAR 5 archive of (name as bytes, content) members."""
    out = b"Rar!\x1a\x07\x01\x00" + _rar5_block(1, _vint(0))  # main header, no archive flags
    for name, data in files:
        fields = (
            _vint(0x0002 | 0x0004)  # file flags: modification time and CRC32 present
            + _vint(len(data))
            + _vint(0o100644)  # attributes
            + struct.pack("<II", 1_700_000_000, zlib.crc32(data))
            + _vint(0)  # compression: version 0, method 0 (stored)
            + _vint(1)  # host: Unix
            + _vint(len(name))
            + name
        )
        out += _rar5_block(2, fields, data)
    return out + _rar5_block(5, _vint(0))  # end of archive


def _rar4_block(kind: int, flags: int, fields: bytes, data: bytes = b"") -> bytes:
    header = struct.pack("<BHH", kind, flags, 7 + len(fields)) + fields
    return struct.pack("<H", zlib.crc32(header) & 0xFFFF) + header + data


def rar4(files: Iterable[tuple[bytes, bytes, bool]]) -> bytes:
    """A stored RAR 4 archive of (name as bytes, content, encrypted?) members."""
    out = b"Rar!\x1a\x07\x00" + _rar4_block(0x73, 0, bytes(6))  # marker, archive header
    for name, data, encrypted in files:
        flags = 0x8000 | (0x0004 if encrypted else 0)  # sizes follow; 0x4: encrypted with a password
        fields = struct.pack(
            "<IIBIIBBHI", len(data), len(data), 3, zlib.crc32(data), 0x5A6B3C21, 20, 0x30, len(name), 0o100644 << 16
        )
        out += _rar4_block(0x74, flags, fields + name, data)
    return out + _rar4_block(0x7B, 0x4000, b"")  # end of archive


def jpeg_of(array: np.ndarray) -> bytes:
    """An RGB array as a JPEG (quality 90)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_file(path: Path, data: bytes) -> None:
    """``data`` at ``path``, making its folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def jpeg_of_image(image: Image.Image) -> bytes:
    """A picture as a JPEG (quality 90)."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def coffee() -> Image.Image:
    """scikit-image's coffee photograph (benign)."""
    import skimage.data

    return Image.fromarray(skimage.data.coffee())


def panning_frames(count: int, size: tuple[int, int] = (320, 240), step: int = 4, seed: int = 0) -> list[np.ndarray]:
    """``count`` RGB frames panning across a benign scikit-image picture (``seed`` picks which)."""
    import skimage.data

    scenes = (skimage.data.astronaut, skimage.data.coffee, skimage.data.chelsea, skimage.data.rocket)
    width, height = size
    base = np.asarray(Image.fromarray(scenes[seed % len(scenes)]()).resize((width * 2, height * 2)))
    return [np.ascontiguousarray(np.roll(base, index * step, axis=1)[:height, :width]) for index in range(count)]


def video_of(
    frames: Iterable[np.ndarray],
    fps: float | Fraction = 25,
    codec: str = "libx264",
    container: str = "mp4",
    bitrate: int | None = None,
    options: dict[str, str] | None = None,
) -> bytes:
    """A video of RGB ``frames`` encoded with PyAV (its wheel bundles FFmpeg and x264)."""
    import av

    frames = list(frames)
    height, width = frames[0].shape[:2]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container, options=options or {}) as output:
        stream = output.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if bitrate is not None:
            stream.bit_rate = bitrate
        for array in frames:
            output.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        output.mux(stream.encode())
    return buffer.getvalue()
