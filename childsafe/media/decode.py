"""Decode an image safely and small, ready for perceptual hashing.

Decoding, not hashing, is the cost of PDQ: a 12-megapixel JPEG takes a tenth
of a second to decode at full size, and pdqhash another half second on the
full array. PDQ reduces every image to 64 x 64 anyway, so we ask the decoder
for a small image: JPEG's DCT scaling (``draft``) decodes at 1/2, 1/4 or 1/8
size for almost nothing, and other formats are ``reduce``d (box filter) right
after decoding. The hash stays within a few bits of a full-resolution hash
(measured in docs/benchmarks.md).

Memory is bounded for every format and bit depth: the declared size is
checked against ``limits.max_pixels`` before any pixel is decoded, Pillow
holds the decoded picture once, and nothing else is made at full size
(modes Pillow cannot reduce are converted a strip at a time, and 16-bit and
float pictures are stretched onto 0..255 only once reduced).
"""

from __future__ import annotations

import io
import math
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import numpy as np
from PIL import Image, UnidentifiedImageError

from childsafe.errors import DecodeError, MediaLimitError, ResourceLimitError, UnsupportedMediaError
from childsafe.media.limits import MediaLimits

__all__ = ["decode_small_rgb", "image_to_rgb", "PILLOW_FORMATS"]

#: The Pillow plugin for each MIME type we decode. Pillow is told to use only
#: that plugin, so bytes are never offered to a parser they were not sniffed as.
PILLOW_FORMATS: dict[str, str] = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/bmp": "BMP",
    "image/tiff": "TIFF",
    "image/webp": "WEBP",
    "image/heic": "HEIF",
    "image/avif": "AVIF",
}

# Pillow's own decompression-bomb check (a warning above ~89 M pixels, an
# error above ~179 M) is switched off: ``_open`` checks every image's declared
# size against ``limits.max_pixels`` (CHILDSAFE_MAX_PIXELS, 250 M by default)
# before any pixel is decoded, so one limit, the documented one, applies to
# every format. Pillow's limit is a module global and cannot be set per call;
# no other childsafe module opens images.
Image.MAX_IMAGE_PIXELS = None

# Modes Image.reduce() reduces without a second full-size copy. Others are
# converted a strip at a time first (``_reduce``).
_DIRECTLY_REDUCIBLE_MODES = {"L", "RGB", "RGBX", "CMYK", "YCbCr", "I", "F"}
# Rows of a strip are chosen to convert about this many pixels at a time.
_STRIP_PIXELS = 1 << 22
# A decode has at most this many squares of the target side's area: only a
# picture more than 16 to 64 times longer than wide is reduced below the
# target side for it, so the stretch and pdqhash always get a bounded array.
_MAX_TARGET_SQUARES = 64


def _register_heif() -> None:
    # pillow-heif adds HEIC/HEIF to Pillow's plugin registry; AVIF is Pillow's own.
    from pillow_heif import register_heif_opener

    register_heif_opener()


_register_heif()


class _DecodeTimeout(Exception):
    pass


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Interrupt decoding after ``seconds`` of wall time.

    Uses SIGALRM, so it works only in a process's main thread (where the CLI
    and pool workers decode); elsewhere decoding runs unbounded. Pillow decodes
    in chunks with Python between them, which is where the alarm lands.
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise _DecodeTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def image_to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB, the input pdqhash expects.

    Alpha is dropped, not composited, as Meta's reference tools do, so our
    hashes agree with hash lists made by them. 16-bit, 32-bit and float
    pictures are copied as 64-bit floats to stretch their range: reduce them
    first (``decode_small_rgb`` does).
    """
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        # Integer and float images: stretch their range onto 0..255 (Pillow's
        # own conversion clips everything above 255 to white).
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        if image.mode == "F" and low >= 0 and high <= 1:
            scaled = values * 255.0  # floats in 0..1, as scientific tools write them
        elif low >= 0 and high <= 255:
            scaled = values
        elif high > low:
            scaled = (values - low) * (255.0 / (high - low))
        else:
            scaled = np.zeros_like(values)
        grey = Image.fromarray(np.clip(scaled + 0.5, 0, 255).astype(np.uint8), "L")
        return grey.convert("RGB")
    if image.mode == "La":
        image = image.convert("LA")  # premultiplied (TIFF); Pillow converts it to nothing else
    return image.convert("RGB")


def _reducible(strip: Image.Image) -> Image.Image:
    """``strip`` in a mode ``Image.reduce`` takes, keeping what the hash needs."""
    if strip.mode.startswith("I;16"):
        return strip.convert("I")  # exact; the stretch onto 0..255 comes after reducing
    if strip.mode in ("LA", "RGBA"):
        return strip  # reduce() weighs colour by alpha itself
    return image_to_rgb(strip)


def _reduce(image: Image.Image, factor: int) -> Image.Image:
    """``image`` reduced ``factor`` times by a box filter, with no second
    full-size copy of it."""
    if image.mode in _DIRECTLY_REDUCIBLE_MODES:
        return image.reduce(factor)
    # Pillow reduces no 16-bit, palette or 1-bit picture and copies LA and RGBA
    # whole to weigh by alpha; converting the whole picture first would cost
    # up to four times its decoded size (I;16 to I, P to RGB). Hand-written
    # because Pillow has no streaming conversion: a strip of rows at a time,
    # a whole number of the factor high, so the result equals reducing the whole.
    width, height = image.size
    rows = max(1, _STRIP_PIXELS // (width * factor)) * factor
    pieces = [
        (top, _reducible(image.crop((0, top, width, min(top + rows, height)))).reduce(factor))
        for top in range(0, height, rows)
    ]
    reduced = Image.new(pieces[0][1].mode, (math.ceil(width / factor), math.ceil(height / factor)))
    for top, piece in pieces:
        reduced.paste(piece, (0, top // factor))
    return reduced


def _reduce_factor(size: tuple[int, int], target: int) -> int:
    """The reduction that brings the shorter side down to ``target``..2x
    ``target`` (or the area down to ``_MAX_TARGET_SQUARES`` squares of it)."""
    width, height = size
    by_side = min(width, height) // target
    by_area = math.ceil(math.sqrt(width * height / (_MAX_TARGET_SQUARES * target * target)))
    return max(by_side, by_area)


def _open(data: bytes, mime: str, limits: MediaLimits) -> Image.Image:
    plugin = PILLOW_FORMATS.get(mime)
    if plugin is None:
        raise UnsupportedMediaError(f"{mime} is not an image type childsafe decodes")
    # Opening parses headers only, for every plugin we use (libheif and
    # libavif too decode only in load()), so the size is checked before any
    # pixel is decoded. The first frame of an animation or multi-page file is
    # the one opened, and the only one ever loaded.
    image = Image.open(io.BytesIO(data), formats=[plugin])
    width, height = image.size
    if width <= 0 or height <= 0:
        raise DecodeError("image has no pixels")
    if width * height > limits.max_pixels:
        raise MediaLimitError(
            f"image is {width}x{height} pixels, over the {limits.max_pixels:,}-pixel limit "
            "(decompression bomb?); raise CHILDSAFE_MAX_PIXELS to read it"
        )
    return image


def decode_small_rgb(data: bytes, mime: str, limits: MediaLimits) -> Image.Image:
    """Decode ``data`` (sniffed as ``mime``) to an RGB image whose shorter side
    is about ``limits.pdq_min_side`` (never upscaled; less for a picture over
    16 to 64 times longer than wide). GIFs give their first frame.
    The size of the picture it was decoded from is in its ``info["decoded_from"]``.

    Raises a ``MediaError`` subclass with a one-line message on any problem.
    """
    try:
        with _deadline(limits.decode_seconds):
            image = _open(data, mime, limits)
            source_size = image.size
            target = limits.pdq_min_side
            if image.format == "JPEG":
                # Asks libjpeg for the largest DCT scaling that keeps both sides >= target.
                image.draft("RGB", (target, target))
            image.load()
            factor = _reduce_factor(image.size, target)
            if factor >= 2:
                image = _reduce(image, factor)
            small = image_to_rgb(image)
            small.info["decoded_from"] = source_size
            return small
    except _DecodeTimeout as exc:
        raise ResourceLimitError(f"decoding took longer than {limits.decode_seconds:g} s") from exc
    except (UnsupportedMediaError, MediaLimitError, DecodeError):
        raise
    except UnidentifiedImageError as exc:
        raise DecodeError(f"cannot decode {mime}: not a valid {PILLOW_FORMATS[mime]} image") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports damaged data with these; keep only the gist, one line.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DecodeError(f"cannot decode {mime}: {reason}") from exc
    except (MemoryError, Image.DecompressionBombError) as exc:
        raise ResourceLimitError("image too large to decode") from exc
