"""The demo: benign sample images generated on the spot, hashed, put in a
demo bank and matched.

Nothing here is a real photo: each sample is a synthetic scene (gradients,
shapes, texture and noise) drawn from a fixed seed, so the demo is the same on
every machine and needs no download. Some samples are deliberately awkward:
a PNG named .jpg, a truncated JPEG, a text file named .jpg, an empty file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from childsafe.banks import add_files_to_bank, create_bank, delete_bank, list_banks
from childsafe.config import Settings
from childsafe.index import Match, Matcher, index_root
from childsafe.parallel import default_workers
from childsafe.signals import FileHashes, hash_paths
from childsafe.store import open_database, record_audit

__all__ = ["synthetic_scene", "write_demo_samples", "run_demo", "DemoSummary"]


def synthetic_scene(seed: int, width: int = 640, height: int = 480) -> Image.Image:
    """A benign, photo-like RGB scene drawn from ``seed``: smooth colour
    gradients, a few shapes, fine texture and sensor-like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.zeros((height, width, 3), np.float32)
    for channel in range(3):
        fx, fy = rng.uniform(0.5, 3.0, 2)
        phase = rng.uniform(0, 2 * np.pi)
        base[..., channel] = 128 + 90 * np.sin(fx * x / width * np.pi + fy * y / height * np.pi + phase)
    image = Image.fromarray(base.clip(0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(4, 9))):
        x0, y0 = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        x1, y1 = x0 + int(rng.integers(30, width // 2)), y0 + int(rng.integers(30, height // 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    pixels = np.asarray(image, np.float32) + rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")


def write_demo_samples(folder: Path) -> list[Path]:
    """Write the demo samples into ``folder`` (created if missing); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    formats = [
        ("beach.jpg", "JPEG", {"quality": 90}),
        ("garden.png", "PNG", {}),
        ("harbour.webp", "WEBP", {"quality": 85}),
        ("kite.gif", "GIF", {}),
        ("lighthouse.bmp", "BMP", {}),
        ("meadow.tiff", "TIFF", {}),
        ("orchard.heic", "HEIF", {"quality": 85}),
        ("river.avif", "AVIF", {"quality": 80}),
    ]
    written: list[Path] = []
    for seed, (name, fmt, options) in enumerate(formats, start=1):
        path = folder / name
        synthetic_scene(seed).save(path, format=fmt, **options)
        written.append(path)
    copies = folder / "copies"
    copies.mkdir(exist_ok=True)
    # A smaller, recompressed copy of beach.jpg: a different file, a near-identical PDQ.
    small = synthetic_scene(1).resize((320, 240), Image.Resampling.LANCZOS)
    small.save(copies / "beach-small.jpg", format="JPEG", quality=70)
    # A mirrored copy: found through PDQ's rotations and flips.
    synthetic_scene(1).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(copies / "beach-mirrored.jpg", quality=85)
    # A PNG with a misleading name: the type comes from the bytes.
    synthetic_scene(2).save(copies / "garden-renamed.jpg", format="PNG")
    buffer = io.BytesIO()
    synthetic_scene(3).save(buffer, format="JPEG", quality=90)
    (copies / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    (copies / "not-an-image.jpg").write_text("just text, named like a photo\n")
    (copies / "empty.png").write_bytes(b"")
    written += sorted(copies.iterdir())
    return written


#: The demo bank, and the samples put in it (as if a hotline had listed them).
DEMO_BANK = "demo-known"
DEMO_KNOWN = ("beach.jpg", "garden.png", "orchard.heic")


@dataclass
class DemoSummary:
    """What the demo did."""

    samples: str
    database: str
    items: list[FileHashes] = field(default_factory=list)
    matches: dict[str, list[Match]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: where things are, and the SPEC ``hash`` object of each
        sample with its ``matches`` against the demo bank."""
        return {
            "samples": self.samples,
            "database": self.database,
            "bank": DEMO_BANK,
            "items": [
                {**i.to_dict(), "matches": [m.to_dict() for m in self.matches.get(i.path, [])]} for i in self.items
            ],
        }

    def describe(self) -> str:
        """A few lines for a person."""
        images = sum(1 for i in self.items if i.media_type == "image")
        errors = sum(1 for i in self.items if i.error)
        return (
            f"Hashed {len(self.items)} generated sample files in {self.samples}: "
            f"{images} images, {errors} with a reported error (on purpose: a truncated JPEG,\n"
            "a text file named .jpg, an empty file). The type comes from the bytes: garden-renamed.jpg is a PNG.\n"
            f"Database ready: {self.database}\n"
            f"Bank {DEMO_BANK!r} holds {', '.join(DEMO_KNOWN)}; matched files: "
            + ", ".join(
                f"{Path(p).name} ({'; '.join(sorted({m.signal + '/' + m.transform for m in ms}))})"
                for p, ms in self.matches.items()
                if ms
            )
        )


def run_demo(settings: Settings, out: Path | None = None) -> DemoSummary:
    """Generate the samples, put three of them in a fresh demo bank, hash and
    match them all, and record the run in the audit log."""
    folder = out or settings.home / "demo"
    write_demo_samples(folder)
    engine = open_database(settings.database_url)
    if any(bank.name == DEMO_BANK for bank in list_banks(engine)):
        delete_bank(engine, DEMO_BANK)
    create_bank(engine, DEMO_BANK, scheme="uk")
    add_files_to_bank(engine, DEMO_BANK, [folder / name for name in DEMO_KNOWN], settings.limits, "C")
    matcher = Matcher(engine, index_root(settings.home, settings.database_url))
    matcher.sync()
    items = list(hash_paths([str(folder)], settings.limits, min(2, default_workers()), dihedral=True))
    matches = {item.path: matcher.match_hashes(item) for item in items}
    record_audit(engine, "demo", {"files": len(items), "matched": sum(1 for m in matches.values() if m)})
    engine.dispose()
    return DemoSummary(str(folder), engine.url.render_as_string(hide_password=True), items, matches)
