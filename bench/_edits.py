"""The edits of bench/detect_quality.py: what offenders and ordinary sharing
apps do to images. Each class is one function ``(image, rng, others) ->
image`` whose parameters are drawn at random per image from a range, so that
nothing is tuned to one value; ``others`` are other originals (for collages).
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

Edit = Callable[[Image.Image, random.Random, list[Image.Image]], Image.Image]

WORDS = "holiday summer friends party beach sunset weekend family city lake garden walk".split()


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))


def recompress(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=rng.randint(30, 90))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def downscale(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    factor = rng.uniform(0.2, 0.8)
    return image.resize((max(8, round(image.width * factor)), max(8, round(image.height * factor))), Image.LANCZOS)


def thumbnail(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    copy = image.copy()
    side = rng.randint(96, 256)
    copy.thumbnail((side, side), Image.LANCZOS)
    return copy


def upscale(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    factor = rng.uniform(1.2, 2.0)
    return image.resize((round(image.width * factor), round(image.height * factor)), Image.BICUBIC)


def _crop(image: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    w, h = image.size
    return image.crop((round(w * left), round(h * top), round(w * (1 - right)), round(h * (1 - bottom))))


def crop_centre(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    share = rng.uniform(0.03, 0.25)
    return _crop(image, share, share, share, share)


def crop_off_centre(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    return _crop(image, *(rng.uniform(0.03, 0.25) for _ in range(4)))


def border_solid(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    pad = round(min(image.size) * rng.uniform(0.05, 0.2))
    return ImageOps.expand(image, border=pad, fill=_colour(rng))


def border_blurred(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    pad = round(min(image.size) * rng.uniform(0.08, 0.25))
    size = (image.width + 2 * pad, image.height + 2 * pad)
    background = image.resize(size).filter(ImageFilter.GaussianBlur(radius=rng.uniform(12, 30)))
    background.paste(image, (pad, pad))
    return background


def letterbox(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    aspect = rng.choice([16 / 9, 9 / 16, 1.0, 4 / 3])
    w, h = image.size
    if w / h > aspect:
        canvas = Image.new("RGB", (w, round(w / aspect)), (0, 0, 0))
    else:
        canvas = Image.new("RGB", (round(h * aspect), h), (0, 0, 0))
    canvas.paste(image, ((canvas.width - w) // 2, (canvas.height - h) // 2))
    return canvas


def screenshot(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    """A phone screenshot: a tall canvas, status and navigation bars with
    icons and text, the picture scaled to the width somewhere in between."""
    width = rng.randint(360, 720)
    height = round(width * rng.uniform(1.8, 2.2))
    background = rng.choice([(255, 255, 255), (0, 0, 0), (18, 18, 18), (240, 240, 240)])
    ink = (0, 0, 0) if sum(background) > 380 else (230, 230, 230)
    canvas = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(canvas)
    bar = round(height * 0.04)
    draw.text((10, bar // 3), f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}", fill=ink)
    for k in range(3):
        draw.rectangle((width - 20 - 14 * k, bar // 3, width - 12 - 14 * k, bar - 4), fill=ink)
    scaled = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    top = rng.randint(bar * 2, max(bar * 2, height - scaled.height - bar * 3))
    canvas.paste(scaled, (0, top))
    draw.text((10, top - bar), rng.choice(WORDS), fill=ink)
    draw.text((10, min(height - bar * 2, top + scaled.height + 8)), " ".join(rng.sample(WORDS, 3)), fill=ink)
    for k in range(3):
        x = width * (k + 1) // 4
        draw.ellipse((x - 8, height - bar, x + 8, height - bar + 16), outline=ink)
    return canvas


def rotate_quarter(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    return image.transpose(rng.choice([Image.ROTATE_90, Image.ROTATE_180, Image.ROTATE_270]))


def mirror(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    return ImageOps.mirror(image) if rng.random() < 0.7 else ImageOps.flip(image)


def small_rotation(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    angle = rng.uniform(1, 10) * rng.choice([-1, 1])
    return image.rotate(angle, resample=Image.BICUBIC, expand=rng.random() < 0.5, fillcolor=(0, 0, 0))


def tone(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    edited = ImageEnhance.Brightness(image).enhance(rng.uniform(0.6, 1.4))
    edited = ImageEnhance.Contrast(edited).enhance(rng.uniform(0.6, 1.4))
    gamma = rng.uniform(0.6, 1.6)
    edited = edited.point(lambda v: round(255 * (v / 255) ** gamma))
    return ImageEnhance.Color(edited).enhance(rng.uniform(0.0, 2.0))


def greyscale(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    return ImageOps.grayscale(image).convert("RGB")


def blur(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius=rng.uniform(1, 4)))


def sharpen(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    return image.filter(ImageFilter.UnsharpMask(radius=rng.uniform(1, 3), percent=rng.randint(100, 250)))


def noise(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    import numpy as np

    pixels = np.asarray(image, dtype=np.float32)
    noisy = pixels + np.random.default_rng(rng.randint(0, 2**31)).normal(0, rng.uniform(5, 25), pixels.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def text_overlay(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    copy = image.copy()
    draw = ImageDraw.Draw(copy)
    size = max(12, round(min(image.size) * rng.uniform(0.05, 0.12)))
    text = " ".join(rng.sample(WORDS, rng.randint(1, 3)))
    x, y = rng.randint(0, image.width // 3), rng.randint(0, image.height - size - 1)
    draw.text((x, y), text, fill=_colour(rng), font_size=size, stroke_width=2, stroke_fill=(0, 0, 0))
    return copy


def logo_overlay(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    copy = image.copy()
    draw = ImageDraw.Draw(copy)
    side = round(min(image.size) * rng.uniform(0.1, 0.2))
    corner = rng.choice([(0, 0), (1, 0), (0, 1), (1, 1)])
    x = 8 if corner[0] == 0 else image.width - side - 8
    y = 8 if corner[1] == 0 else image.height - side - 8
    draw.rounded_rectangle((x, y, x + side, y + side), radius=side // 5, fill=_colour(rng))
    draw.ellipse((x + side // 4, y + side // 4, x + 3 * side // 4, y + 3 * side // 4), fill=_colour(rng))
    return copy


def aspect_stretch(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    factor = rng.uniform(0.8, 1.25)
    return image.resize((round(image.width * factor), image.height), Image.BICUBIC)


def collage(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    rows, cols = rng.choice([(1, 2), (2, 1), (2, 2), (3, 3)])
    cell_w, cell_h = rng.choice([(400, 300), (320, 320), (300, 400)])
    gap = rng.choice([0, 4, 10])
    canvas = Image.new("RGB", (cols * cell_w + (cols + 1) * gap, rows * cell_h + (rows + 1) * gap), (255, 255, 255))
    place = rng.randrange(rows * cols)
    fillers = rng.sample(others, rows * cols - 1) if len(others) >= rows * cols - 1 else others * (rows * cols)
    canvas.info["contains"] = [id(filler) for filler in fillers[: rows * cols - 1]]  # other originals in it
    for k in range(rows * cols):
        picture = image if k == place else fillers[k - (k > place)]
        cell = ImageOps.fit(picture, (cell_w, cell_h), Image.LANCZOS) if rng.random() < 0.5 else picture.resize(
            (cell_w, cell_h), Image.LANCZOS)  # fmt: skip
        canvas.paste(cell, (gap + (k % cols) * (cell_w + gap), gap + (k // cols) * (cell_h + gap)))
    return canvas


def caption(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    """A meme: white bars above and/or below with black text in them."""
    bar = round(image.height * rng.uniform(0.1, 0.22))
    where = rng.choice(["top", "bottom", "both"])
    top = bar if where in ("top", "both") else 0
    bottom = bar if where in ("bottom", "both") else 0
    canvas = Image.new("RGB", (image.width, image.height + top + bottom), (255, 255, 255))
    canvas.paste(image, (0, top))
    draw = ImageDraw.Draw(canvas)
    size = max(10, round(bar * 0.45))
    if top:
        draw.text((10, bar // 4), " ".join(rng.sample(WORDS, 3)).upper(), fill=(0, 0, 0), font_size=size)
    if bottom:
        draw.text((10, top + image.height + bar // 4), " ".join(rng.sample(WORDS, 2)).upper(), fill=(0, 0, 0),
                  font_size=size)  # fmt: skip
    return canvas


CLASSES: dict[str, Edit] = {
    "recompress": recompress,
    "downscale": downscale,
    "thumbnail": thumbnail,
    "upscale": upscale,
    "crop-centre": crop_centre,
    "crop-off-centre": crop_off_centre,
    "border-solid": border_solid,
    "border-blurred": border_blurred,
    "letterbox": letterbox,
    "screenshot": screenshot,
    "rotate-90-180-270": rotate_quarter,
    "mirror": mirror,
    "small-rotation": small_rotation,
    "tone": tone,
    "greyscale": greyscale,
    "blur": blur,
    "sharpen": sharpen,
    "noise": noise,
    "text-overlay": text_overlay,
    "logo-overlay": logo_overlay,
    "aspect-stretch": aspect_stretch,
    "collage": collage,
    "caption": caption,
}

#: Classes that combine with another in the "combination" class.
COMBINABLE = [name for name in CLASSES if name not in ("collage", "screenshot")]


def combination(image: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    first, second = rng.sample(COMBINABLE, 2)
    return CLASSES[second](CLASSES[first](image, rng, others), rng, others)


CLASSES["combination-of-two"] = combination
