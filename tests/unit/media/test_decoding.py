"""Reading media: types from bytes, every format and mode, and hostile input."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from builders import bomb_png
from PIL import Image
from support import DATA

from childsafe.errors import DecodeError, MediaLimitError, UnsupportedMediaError
from childsafe.media import MediaLimits, decode_small_rgb, image_to_rgb, sniff_type
from childsafe.signals import PDQ_MATCH_THRESHOLD, hash_file, pdq_distance, pdq_hash
from childsafe.signals.full_resolution import full_resolution_hash


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


MODES = ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "I", "I;16", "F", "LAB", "HSV"]


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


def _deep(grey: np.ndarray, mode: str) -> Image.Image:
    """An 8-bit grey picture as a 16-bit, 32-bit or float one whose values
    lie outside 0..255, so only the stretch onto 0..255 makes it a picture."""
    values = grey.astype(np.float64)
    if mode in ("I;16", "I;16B"):
        deep = (1000 + values * 16).astype(">u2" if mode == "I;16B" else np.uint16)
        return Image.frombytes(mode, (grey.shape[1], grey.shape[0]), deep.tobytes())
    if mode == "F":
        return Image.fromarray((values / 255 * 15 - 3).astype(np.float32), "F")
    return Image.fromarray((values * 1000 - 50_000).astype(np.int32), "I")


def _stretched_at_full_size(image: Image.Image) -> Image.Image:
    """What decoding did before reducing came first: the whole picture
    stretched onto 0..255, then reduced."""
    values = np.asarray(image, dtype=np.float64)
    low, high = values.min(), values.max()
    grey = np.clip((values - low) * (255 / (high - low)) + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB").reduce(min(image.size) // 256)


DEEP_FILES = [("I;16", "PNG"), ("I;16", "TIFF"), ("I;16B", "TIFF"), ("F", "TIFF"), ("I", "TIFF")]


@pytest.mark.parametrize(("mode", "fmt"), DEEP_FILES, ids=[f"{m}-{f}" for m, f in DEEP_FILES])
def test_deep_images_are_reduced_then_stretched_as_before(coffee: Image.Image, mode: str, fmt: str) -> None:
    grey = np.asarray(coffee.convert("L").resize((1800, 1200), Image.Resampling.BICUBIC))
    deep = _deep(grey, mode)
    data = _encode(deep, fmt)
    assert Image.open(io.BytesIO(data)).mode == mode
    decoded = decode_small_rgb(data, sniff_type(data[:512]).mime, MediaLimits())
    before = _stretched_at_full_size(deep)
    assert decoded.size == before.size == (450, 300)
    # The range is now taken from the reduced picture: a few levels apart at most.
    assert np.abs(np.asarray(decoded, np.int16) - np.asarray(before, np.int16)).max() <= 4
    assert pdq_distance(pdq_hash(decoded).hex, pdq_hash(before).hex) <= 2


# Modes Pillow cannot reduce as they are, and what decoding them once did at
# full size before reducing.
CONVERTED_FIRST: dict[str, Callable[[Image.Image], Image.Image]] = {
    "1": lambda image: image.convert("RGB").reduce(7),
    "P": lambda image: image.convert("RGB").reduce(7),
    "LA": lambda image: image.reduce(7).convert("RGB"),
    "RGBA": lambda image: image.reduce(7).convert("RGB"),
    "I;16": lambda image: image_to_rgb(image.convert("I").reduce(7)),
}


@pytest.mark.parametrize("mode", CONVERTED_FIRST)
def test_modes_converted_in_strips_decode_as_if_converted_whole(coffee: Image.Image, mode: str) -> None:
    # 3000 x 2000 is reduced 7 times, in strips of 1,393 rows and a last shorter one.
    image = _in_mode(coffee.resize((3000, 2000), Image.Resampling.BICUBIC), mode)
    data = _encode(image, "TIFF")
    decoded = decode_small_rgb(data, "image/tiff", MediaLimits())
    assert np.array_equal(np.asarray(decoded), np.asarray(CONVERTED_FIRST[mode](image)))


def test_a_long_thin_picture_is_decoded_to_a_bounded_size() -> None:
    # 100 x 100,000: its shorter side alone would leave all 10 M pixels.
    stripes = np.tile(np.repeat(np.arange(0, 250, 50, dtype=np.uint8), 20), (100_000, 1))
    decoded = decode_small_rgb(_encode(Image.fromarray(stripes), "PNG"), "image/png", MediaLimits())
    assert decoded.width * decoded.height <= 64 * 256 * 256
    assert decoded.info["decoded_from"] == (100, 100_000)


def test_jpeg_is_decoded_small_not_full_size() -> None:
    big = Image.fromarray((np.random.default_rng(1).random((2400, 3200, 3)) * 255).astype(np.uint8))
    decoded = decode_small_rgb(_encode(big, "JPEG", quality=80), "image/jpeg", MediaLimits())
    assert 256 <= min(decoded.size) < 512


def test_png_is_reduced_after_decoding(coffee: Image.Image) -> None:
    big = coffee.resize((1800, 1200))
    decoded = decode_small_rgb(_encode(big, "PNG"), "image/png", MediaLimits())
    assert 256 <= min(decoded.size) < 512


def test_decompression_bomb_is_refused_before_decoding() -> None:
    data = bomb_png(30000, 30000)
    assert len(data) < 300_000
    with pytest.raises(MediaLimitError, match="30000x30000 pixels, over the 250,000,000-pixel limit"):
        decode_small_rgb(data, "image/png", MediaLimits())


@pytest.mark.parametrize(("fmt", "mime", "options"), FORMATS, ids=[f[0] for f in FORMATS])
def test_pixel_limit_applies_to_every_format_before_decoding(
    coffee: Image.Image, fmt: str, mime: str, options: dict[str, object]
) -> None:
    data = _encode(coffee, fmt, **options)
    if fmt not in ("WEBP", "AVIF"):
        # Cut the picture's data in half: refused all the same, so refused
        # before decoding. (libwebp and libavif will not open a cut file.)
        data = data[: len(data) // 2]
    with pytest.raises(MediaLimitError, match="600x400 pixels, .*CHILDSAFE_MAX_PIXELS"):
        decode_small_rgb(data, mime, MediaLimits(max_pixels=100_000))


def test_pixel_limit_is_configurable(coffee: Image.Image) -> None:
    with pytest.raises(MediaLimitError, match="600x400"):
        decode_small_rgb(_encode(coffee, "PNG"), "image/png", MediaLimits(max_pixels=100_000))
    assert decode_small_rgb(_encode(coffee, "PNG"), "image/png", MediaLimits(max_pixels=240_000)).size == (600, 400)


def test_slow_decoding_is_cut_off_by_the_time_limit() -> None:
    # 2-D noise compresses badly and decodes slowly; a tiny limit must stop it.
    noise = (np.random.default_rng(2).random((3000, 3000, 3)) * 255).astype(np.uint8)
    data = _encode(Image.fromarray(noise), "PNG", compress_level=1)
    with pytest.raises(MediaLimitError, match="longer than"):
        decode_small_rgb(data, "image/png", MediaLimits(decode_seconds=0.001))


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


UNDER_THE_LIMIT = DATA / "png" / "damaged-20000x10000.png"  # 200 M pixels, damaged data: a few bytes
OVER_THE_LIMIT = DATA / "png" / "damaged-20000x15000.png"  # 300 M pixels


def test_under_the_pixel_limit_damaged_data_is_what_stops_a_picture() -> None:
    # 200 M pixels is under CHILDSAFE_MAX_PIXELS, though over Pillow's own bomb limit (179 M).
    with pytest.raises(DecodeError, match="cannot decode image/png") as damaged:
        decode_small_rgb(UNDER_THE_LIMIT.read_bytes(), "image/png", MediaLimits())
    assert "pixel" not in str(damaged.value)


def test_over_the_pixel_limit_a_picture_is_refused_naming_the_setting() -> None:
    with pytest.raises(MediaLimitError, match=r"20000x15000 .*; raise CHILDSAFE_MAX_PIXELS to read it$"):
        decode_small_rgb(OVER_THE_LIMIT.read_bytes(), "image/png", MediaLimits())


def test_the_full_resolution_decode_is_under_the_same_pixel_limit() -> None:
    with pytest.raises(DecodeError, match="cannot decode image/png"):
        full_resolution_hash(UNDER_THE_LIMIT.read_bytes(), "image/png", MediaLimits())
    with pytest.raises(MediaLimitError, match="CHILDSAFE_MAX_PIXELS"):
        full_resolution_hash(OVER_THE_LIMIT.read_bytes(), "image/png", MediaLimits())


def test_a_truncated_jpeg_is_a_one_line_error() -> None:
    with pytest.raises(DecodeError) as truncated:
        decode_small_rgb((DATA / "jpeg" / "truncated.jpg").read_bytes(), "image/jpeg", MediaLimits())
    assert "\n" not in str(truncated.value)


def test_a_png_of_zeros_is_not_a_valid_png() -> None:
    with pytest.raises(DecodeError, match="not a valid PNG"):
        decode_small_rgb(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "image/png", MediaLimits())


def test_text_is_not_a_picture() -> None:
    with pytest.raises(UnsupportedMediaError):
        decode_small_rgb(b"hello", "text/plain", MediaLimits())
