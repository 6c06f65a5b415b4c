"""Previews for review (``childsafe/review/previews.py``): reduced, grey and
blurred by default, or abstract (posterised, edges); the picture itself only
as ``revealed``; never the original's bytes. Benign scikit-image photos."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skimage.data
from builders import bomb_png
from PIL import Image, ImageFilter, ImageOps

from childsafe.errors import MediaError, UsageError
from childsafe.review.previews import POSTER_TONES, PREVIEW_MODES, PREVIEW_SIDE, render_preview


def _jpeg(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="JPEG", quality=92)
    return out.getvalue()


ASTRONAUT = _jpeg(skimage.data.astronaut())  # 512 x 512


def _shown(mode: str, data: bytes = ASTRONAUT, mime: str = "image/jpeg") -> Image.Image:
    png = render_preview(data, mime, mode)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return Image.open(io.BytesIO(png))


def _detail(picture: Image.Image) -> float:
    """Mean strength of fine detail (a Laplacian-like filter) of a grey picture."""
    return float(np.asarray(ImageOps.grayscale(picture).filter(ImageFilter.FIND_EDGES), dtype=np.float64).mean())


@pytest.mark.parametrize("mode", PREVIEW_MODES)
def test_every_preview_is_reduced_and_only_the_revealed_one_has_colour(mode: str) -> None:
    shown = _shown(mode)
    assert max(shown.size) == PREVIEW_SIDE and shown.size[0] == shown.size[1]
    assert shown.mode == ("RGB" if mode == "revealed" else "L")


def test_the_default_blurs_away_most_detail() -> None:
    blurred, revealed = _shown("blurred"), _shown("revealed")
    assert _detail(blurred) < 0.25 * _detail(revealed)
    # Still the picture's shapes: the blurred preview follows the grey picture's light and dark.
    grey = np.asarray(ImageOps.grayscale(revealed), dtype=np.float64)
    assert np.corrcoef(grey.ravel(), np.asarray(blurred, dtype=np.float64).ravel())[0, 1] > 0.8


def test_the_abstract_renderings_are_a_few_tones_or_lines() -> None:
    posterised = np.asarray(_shown("posterised"))
    assert 2 <= len(np.unique(posterised)) <= POSTER_TONES
    edges = np.asarray(_shown("edges"))
    assert set(np.unique(edges).tolist()) <= {0, 255} and (edges == 255).mean() > 0.6  # dark lines on white


def test_a_revealed_preview_is_the_reduced_picture_never_the_original_bytes() -> None:
    small = io.BytesIO()
    Image.fromarray(skimage.data.chelsea()[:120, :160]).save(small, format="PNG")
    original = small.getvalue()
    png = render_preview(original, "image/png", "revealed")
    assert png != original
    difference = np.abs(np.asarray(Image.open(io.BytesIO(png)), dtype=int) - skimage.data.chelsea()[:120, :160])
    assert difference.mean() < 2  # the picture as it is at that size


def test_an_unknown_mode_and_a_bomb_are_refused() -> None:
    with pytest.raises(UsageError, match="a preview is one of blurred, posterised, edges, revealed"):
        render_preview(ASTRONAUT, "image/jpeg", "sharp")
    with pytest.raises(MediaError):
        render_preview(bomb_png(30000, 30000), "image/png")
