"""Decode an image safely and small, ready for perceptual hashing.

Decoding, not hashing, is the cost of PDQ: a 12-megapixel JPEG takes a tenth
of a second to decode at full size, and pdqhash another half second on the
full array. PDQ reduces every image to 64 x 64 anyway, so we ask the decoder
for a small image: JPEG's DCT scaling (``draft``) decodes at 1/2, 1/4 or 1/8
size for almost nothing, and other formats are ``reduce``d (box filter) right
after decoding. The hash stays within a few bits of a full-resolution hash
(measured in docs/benchmarks.md).
"""

from __future__ import annotations

import io
import signal
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import numpy as np
from PIL import Image, UnidentifiedImageError

from childsafe.errors import DecodeError, MediaLimitError, UnsupportedMediaError
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

# Modes that Image.reduce() accepts; others are converted to RGB first.
_REDUCIBLE_MODES = {"L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"}


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
    hashes agree with hash lists made by them.
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
    return image.convert("RGB")


def _open(data: bytes, mime: str, limits: MediaLimits) -> Image.Image:
    plugin = PILLOW_FORMATS.get(mime)
    if plugin is None:
        raise UnsupportedMediaError(f"{mime} is not an image type childsafe decodes")
    with warnings.catch_warnings():
        # We apply our own pixel limit below, with a clearer message.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=[plugin])
        except Image.DecompressionBombError as exc:
            raise MediaLimitError("image dimensions exceed the decompression-bomb limit") from exc
    width, height = image.size
    if width <= 0 or height <= 0:
        raise DecodeError("image has no pixels")
    if width * height > limits.max_pixels:
        raise MediaLimitError(
            f"image is {width}x{height} pixels, over the {limits.max_pixels:,}-pixel limit (decompression bomb?)"
        )
    return image


def decode_small_rgb(data: bytes, mime: str, limits: MediaLimits) -> Image.Image:
    """Decode ``data`` (sniffed as ``mime``) to an RGB image whose shorter side
    is about ``limits.pdq_min_side`` (never upscaled). GIFs give their first frame.
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
            if image.mode not in _REDUCIBLE_MODES:
                image = image_to_rgb(image)
            factor = min(image.size) // target
            if factor >= 2:
                image = image.reduce(factor)
            small = image_to_rgb(image)
            small.info["decoded_from"] = source_size
            return small
    except _DecodeTimeout as exc:
        raise MediaLimitError(f"decoding took longer than {limits.decode_seconds:g} s") from exc
    except (UnsupportedMediaError, MediaLimitError, DecodeError):
        raise
    except UnidentifiedImageError as exc:
        raise DecodeError(f"cannot decode {mime}: not a valid {PILLOW_FORMATS[mime]} image") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports damaged data with these; keep only the gist, one line.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DecodeError(f"cannot decode {mime}: {reason}") from exc
    except (MemoryError, Image.DecompressionBombError) as exc:
        raise MediaLimitError("image too large to decode") from exc
