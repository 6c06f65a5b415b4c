"""Reading media: types from bytes, every format and mode, and hostile input."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from childsafe.errors import DecodeError, MediaLimitError, UnsupportedMediaError
from childsafe.media import MediaLimits, decode_small_rgb, image_to_rgb, sniff_type
from childsafe.signals import PDQ_MATCH_THRESHOLD, hash_file, pdq_distance, pdq_hash


@pytest.fixture(scope="module")
def coffee() -> Image.Image:
    """A benign photo bundled with scikit-image."""
    return Image.fromarray(skimage.data.coffee())


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


FORMATS = [
    ("JPEG", "image/jpeg", {"quality": 90}),
    ("PNG", "image/png", {}),
    ("GIF", "image/gif", {}),
    ("WEBP", "image/webp", {"quality": 90}),
    ("BMP", "image/bmp", {}),
    ("TIFF", "image/tiff", {}),
    ("HEIF", "image/heic", {"quality": 90}),
    ("AVIF", "image/avif", {"quality": 90}),
]


@pytest.mark.parametrize(("fmt", "mime", "options"), FORMATS, ids=[f[0] for f in FORMATS])
def test_each_format_is_sniffed_decoded_and_hashed_close_to_the_original(
    coffee: Image.Image, fmt: str, mime: str, options: dict[str, object]
) -> None:
    data = _encode(coffee, fmt, **options)
    assert sniff_type(data[:512]).mime == mime
    decoded = decode_small_rgb(data, mime, MediaLimits())
    assert decoded.mode == "RGB"
    assert pdq_distance(pdq_hash(decoded).hex, pdq_hash(coffee).hex) <= 20


def test_gif_gives_its_first_frame(coffee: Image.Image) -> None:
    second = Image.fromarray(skimage.data.chelsea()).resize(coffee.size)
    buffer = io.BytesIO()
    coffee.save(buffer, format="GIF", save_all=True, append_images=[second])
    decoded = decode_small_rgb(buffer.getvalue(), "image/gif", MediaLimits())
    assert pdq_distance(pdq_hash(decoded).hex, pdq_hash(coffee).hex) <= 20
    assert pdq_distance(pdq_hash(decoded).hex, pdq_hash(second).hex) > 60


MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "I", "I;16", "F", "LAB", "HSV"]


def _in_mode(image: Image.Image, mode: str) -> Image.Image:
    if mode == "I;16":
        grey = np.asarray(image.convert("L"), np.uint16) * 257  # the full 16-bit range
        return Image.fromarray(grey)
    if mode == "F":
        return Image.fromarray(np.asarray(image.convert("L"), np.float32) / 255.0, "F")
    return image.convert(mode)


def _pdq_limit(mode: str) -> int:
    return PDQ_MATCH_THRESHOLD if mode != "1" else 40  # 1-bit dithering loses more


@pytest.mark.parametrize("mode", MODES)
def test_every_pillow_mode_converts_and_hashes_close_to_the_original(coffee: Image.Image, mode: str) -> None:
    image = _in_mode(coffee, mode)
    assert image.mode == mode
    rgb = image_to_rgb(image)
    assert rgb.mode == "RGB"
    assert pdq_distance(pdq_hash(rgb).hex, pdq_hash(coffee).hex) <= _pdq_limit(mode)


# Every mode a file format can store as it is (PA and HSV exist only in memory).
STORED_MODES = [
    ("1", "TIFF"),
    ("L", "TIFF"),
    ("LA", "PNG"),
    ("P", "PNG"),
    ("RGB", "TIFF"),
    ("RGBA", "PNG"),
    ("CMYK", "TIFF"),
    ("YCbCr", "JPEG"),
    ("I", "TIFF"),
    ("I;16", "PNG"),
    ("F", "TIFF"),
    ("LAB", "TIFF"),
]


@pytest.mark.parametrize(("mode", "fmt"), STORED_MODES)
def test_every_stored_mode_decodes_from_a_file(coffee: Image.Image, mode: str, fmt: str) -> None:
    data = _encode(_in_mode(coffee, mode), fmt)
    mime = sniff_type(data[:512]).mime
    decoded = decode_small_rgb(data, mime, MediaLimits())
    assert decoded.mode == "RGB"
    assert pdq_distance(pdq_hash(decoded).hex, pdq_hash(coffee).hex) <= _pdq_limit(mode)


def test_jpeg_is_decoded_small_not_full_size() -> None:
    big = Image.fromarray((np.random.default_rng(1).random((2400, 3200, 3)) * 255).astype(np.uint8))
    decoded = decode_small_rgb(_encode(big, "JPEG", quality=80), "image/jpeg", MediaLimits())
    assert 256 <= min(decoded.size) < 512


def test_png_is_reduced_after_decoding(coffee: Image.Image) -> None:
    big = coffee.resize((1800, 1200))
    decoded = decode_small_rgb(_encode(big, "PNG"), "image/png", MediaLimits())
    assert 256 <= min(decoded.size) < 512


def _bomb_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width x height zeros: tiny on disk, huge decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding() -> None:
    data = _bomb_png(30000, 30000)
    assert len(data) < 300_000
    with pytest.raises(MediaLimitError, match="decompression|pixel"):
        decode_small_rgb(data, "image/png", MediaLimits())


def test_pixel_limit_is_configurable(coffee: Image.Image) -> None:
    with pytest.raises(MediaLimitError, match="600x400"):
        decode_small_rgb(_encode(coffee, "PNG"), "image/png", MediaLimits(max_pixels=100_000))


def test_slow_decoding_is_cut_off_by_the_time_limit() -> None:
    # 2-D noise compresses badly and decodes slowly; a tiny limit must stop it.
    noise = (np.random.default_rng(2).random((3000, 3000, 3)) * 255).astype(np.uint8)
    data = _encode(Image.fromarray(noise), "PNG", compress_level=1)
    with pytest.raises(MediaLimitError, match="longer than"):
        decode_small_rgb(data, "image/png", MediaLimits(decode_seconds=0.001))


def test_truncated_and_corrupt_images_give_one_line_errors(coffee: Image.Image) -> None:
    jpeg = _encode(coffee, "JPEG")
    with pytest.raises(DecodeError) as truncated:
        decode_small_rgb(jpeg[: len(jpeg) // 2], "image/jpeg", MediaLimits())
    assert "\n" not in str(truncated.value)
    with pytest.raises(DecodeError, match="not a valid PNG"):
        decode_small_rgb(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "image/png", MediaLimits())
    with pytest.raises(UnsupportedMediaError):
        decode_small_rgb(b"hello", "text/plain", MediaLimits())


SNIFFS = [
    (b"\xff\xd8\xff\xe0", "image", "image/jpeg"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "image", "image/heic"),
    (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "image", "image/avif"),
    (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "image", "image/heic"),
    (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", "video", "video/mp4"),
    (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ", "video", "video/quicktime"),
    (b"RIFF\x00\x00\x00\x00AVI LIST", "video", "video/x-msvideo"),
    (b"\x1a\x45\xdf\xa3\x01", "video", "video/x-matroska"),
    (b"PK\x03\x04", "other", "application/zip"),
    (b"hello world\n", "other", "text/plain"),
    (b"", "other", "application/x-empty"),
    (bytes(range(256)), "other", "application/octet-stream"),
]


@pytest.mark.parametrize(("head", "kind", "mime"), SNIFFS, ids=[s[2] for s in SNIFFS])
def test_type_comes_from_the_bytes(head: bytes, kind: str, mime: str) -> None:
    sniffed = sniff_type(head)
    assert (sniffed.kind, sniffed.mime) == (kind, mime)


def test_image_named_wrongly_is_hashed_as_what_it_is(tmp_path: Path, coffee: Image.Image) -> None:
    path = tmp_path / "holiday.txt"
    coffee.save(path, format="PNG")
    result = hash_file(path)
    assert (result.media_type, result.mime, result.error) == ("image", "image/png", None)
    assert result.pdq is not None
