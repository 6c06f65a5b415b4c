"""What the referral tests share besides fixtures: NCMEC's test
credentials, the preserved upload's record and a benign picture with EXIF."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

USER, PASSWORD = "reporter", "correct horse battery"


@dataclass(frozen=True)
class Preserved:
    """A matched upload the service preserved: its bytes and SHA-256, and the bank entry it matched."""

    data: bytes
    sha256: str
    entry_id: str


def picture_with_exif() -> bytes:
    """A benign generated JPEG with a camera and a GPS position in its EXIF."""
    exif = Image.Exif()
    exif[271], exif[272] = "TestMaker", "Model 1"
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 30.0)}
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 120, 40)).save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()
