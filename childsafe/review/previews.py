"""Previews for review with the least exposure: rendered on the server from
the picture (or a video's contact sheet), reduced, and by default blurred
and grey, so a reviewer sees enough to judge and no more; never the
original's bytes.

Blur and greyscale alone did not lower viewers' distress in a 2026 study
(Lewitzka et al., Psychological Research), while cartoon-like renderings
did in another (DIS '24), so two abstract renderings are offered as well:
``edges`` (a line drawing) and ``posterised`` (a few flat grey tones).
``revealed`` is the reduced picture itself, for a reveal the caller has
allowed and audited (the review app's job, not this module's).
"""

from __future__ import annotations

import io
from dataclasses import replace

from PIL import Image, ImageFilter, ImageOps

from childsafe.errors import UsageError
from childsafe.media.decode import decode_small_rgb
from childsafe.media.limits import MediaLimits

__all__ = ["PREVIEW_MODES", "PREVIEW_SIDE", "render_preview"]

#: How a preview may be rendered, the least revealing first (the default).
PREVIEW_MODES = ("blurred", "posterised", "edges", "revealed")
#: The longest side of a preview, in pixels.
PREVIEW_SIDE = 320
#: Grey tones of a posterised preview.
POSTER_TONES = 4


def render_preview(
    data: bytes, mime: str, mode: str = "blurred", side: int = PREVIEW_SIDE, limits: MediaLimits | None = None
) -> bytes:
    """A PNG of the picture ``data`` (type ``mime``), at most ``side`` pixels
    on its longest side, rendered as ``mode`` (``PREVIEW_MODES``). The
    decode is bounded as any decode is (``MediaLimits``: a bomb or a hang
    raises ``MediaError``); an unknown mode is a ``UsageError``."""
    if mode not in PREVIEW_MODES:
        raise UsageError(f"a preview is one of {', '.join(PREVIEW_MODES)}, not {mode!r:.40}")
    # Decoded about as small as the preview (JPEG's DCT scaling does most of it), then fitted.
    picture = decode_small_rgb(data, mime, replace(limits or MediaLimits(), pdq_min_side=side))
    picture.thumbnail((side, side), Image.Resampling.LANCZOS)
    shown = _rendered(picture, mode)
    out = io.BytesIO()
    shown.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _rendered(picture: Image.Image, mode: str) -> Image.Image:
    if mode == "revealed":
        return picture
    grey = ImageOps.grayscale(picture)
    # A blur in proportion to the preview: shapes stay, detail goes.
    radius = max(2.0, max(grey.size) / 60)
    if mode == "blurred":
        return grey.filter(ImageFilter.GaussianBlur(radius))
    if mode == "posterised":
        smooth = grey.filter(ImageFilter.GaussianBlur(radius / 2))
        levels = [round(255 * step / (POSTER_TONES - 1)) for step in range(POSTER_TONES)]
        return smooth.point(lambda value: levels[min(POSTER_TONES - 1, value * POSTER_TONES // 256)])
    # edges: a dark line drawing on white of the softened picture's main contours (faint ones dropped).
    contours = grey.filter(ImageFilter.GaussianBlur(radius / 2)).filter(ImageFilter.FIND_EDGES)
    lines = ImageOps.autocontrast(contours, cutoff=2).point(lambda value: 255 if value > 64 else 0)
    return ImageOps.invert(lines)
