"""The demo: a small case of benign evidence, a demo bank, and a scan.

The evidence is made on the spot from scikit-image's sample photos (a cup of
coffee, a cat, a rocket launch, ...), so the demo is the same on every
machine and downloads nothing. Some photos are put in a demo bank as if a
hotline had listed them; the evidence holds exact copies, edited copies
(resized, mirrored, brightened), a renamed file, copies inside archives, and
files that cannot be read, and the scan finds and reports them all. Two short
videos pan across photos: one, re-encoded, is a copy of a known video (found
by its vPDQ frames); the other is unknown and gets a contact sheet.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

from childsafe.banks import add_files_to_bank, create_bank, delete_bank, list_banks
from childsafe.config import Settings
from childsafe.errors import UsageError
from childsafe.parallel import default_workers
from childsafe.store import open_database
from childsafe.triage import ScanRequest, ScanResult, scan_evidence

__all__ = ["DEMO_BANK", "DEMO_MARKER", "DemoResult", "prepare_demo_folder", "write_demo_case", "run_demo"]

DEMO_BANK = "demo-known"
#: The file that marks a folder as made by the demo: only such a folder is
#: ever replaced (deleted and written again) by a later run.
DEMO_MARKER = ".childsafe-demo"
#: The photos the demo bank "knows", with the category it gives them.
KNOWN = {"coffee": "A", "chelsea": "B", "astronaut": "C"}
#: Photos that appear in the evidence but are in no bank.
OTHERS = ("rocket", "hubble_deep_field", "immunohistochemistry")
#: The known video (a pan across this photo) and its category; and the unknown one's photo.
KNOWN_VIDEO, KNOWN_VIDEO_CATEGORY, OTHER_VIDEO = "rocket", "B", "hubble_deep_field"


def _photos() -> dict[str, Image.Image]:
    try:
        import skimage.data
    except ImportError as exc:
        raise UsageError("the demo needs scikit-image's sample photos: pip install 'childsafe[demo]'") from exc
    return {name: Image.fromarray(getattr(skimage.data, name)()).convert("RGB") for name in (*KNOWN, *OTHERS)}


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _panning_video(photo: Image.Image, codec: str, container: str, seconds: int = 4, fps: int = 10) -> bytes:
    """A short video panning across ``photo`` (320 x 240), encoded with PyAV."""
    import av

    wide = np.asarray(photo.resize((640, 480)))
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=fps)
        assert isinstance(stream, av.video.stream.VideoStream)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for number in range(seconds * fps):
            frame = np.ascontiguousarray(np.roll(wide, 3 * number, axis=1)[:240, :320])
            output.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        output.mux(stream.encode())
    return buffer.getvalue()


def write_demo_case(folder: Path) -> tuple[Path, Path]:
    """Write ``folder/known`` (the originals for the bank) and
    ``folder/evidence`` (the case); returns both."""
    photos = _photos()
    known, evidence = folder / "known", folder / "evidence"
    for path in (known, evidence / "camera", evidence / "downloads", evidence / "backup"):
        path.mkdir(parents=True, exist_ok=True)
    for name in KNOWN:
        (known / f"{name}.jpg").write_bytes(_encode(photos[name], "JPEG", quality=90))
    (known / "clip.mp4").write_bytes(_panning_video(photos[KNOWN_VIDEO], "libx264", "mp4"))
    camera = evidence / "camera"
    (camera / "VID_0001.avi").write_bytes(_panning_video(photos[KNOWN_VIDEO], "mpeg4", "avi"))  # re-encoded copy
    (camera / "VID_0002.mp4").write_bytes(_panning_video(photos[OTHER_VIDEO], "libx264", "mp4"))  # unknown
    (camera / "IMG_0001.jpg").write_bytes((known / "coffee.jpg").read_bytes())  # exact copy
    (camera / "IMG_0002.jpg").write_bytes(_encode(photos["rocket"], "JPEG", quality=90))
    (camera / "IMG_0003.heic").write_bytes(_encode(photos["hubble_deep_field"], "HEIF", quality=85))
    downloads = evidence / "downloads"
    small = photos["chelsea"].resize((225, 150), Image.Resampling.LANCZOS)
    (downloads / "thumb.webp").write_bytes(_encode(small, "WEBP", quality=80))  # resized copy
    mirrored = photos["astronaut"].transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    (downloads / "mirror.png").write_bytes(_encode(mirrored, "PNG"))  # mirrored copy
    brighter = ImageEnhance.Brightness(photos["coffee"]).enhance(1.2)
    (downloads / "budget.xlsx").write_bytes(_encode(brighter, "JPEG", quality=80))  # edited, renamed
    (downloads / "slides.gif").write_bytes(_encode(photos["immunohistochemistry"], "GIF"))
    (downloads / "broken.jpg").write_bytes((known / "chelsea.jpg").read_bytes()[:4000])  # truncated
    (downloads / "readme.txt").write_text("a text file\n")
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("holiday/day1.jpg", (known / "chelsea.jpg").read_bytes())
        archive.writestr("holiday/day2.jpg", (camera / "IMG_0002.jpg").read_bytes())
    with tarfile.open(evidence / "backup" / "phone-2025.tar.gz", "w:gz") as archive:
        data = inner.getvalue()
        info = tarfile.TarInfo("photos.zip")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return known, evidence


@dataclass
class DemoResult:
    """Where the demo put things, and the scan's result."""

    folder: Path
    database: str
    scan: ScanResult

    def to_dict(self) -> dict[str, Any]:
        """The result as ``childsafe demo --json`` prints it."""
        return {"folder": str(self.folder), "database": self.database, **self.scan.reports_dict()}

    def describe(self) -> str:
        """A few lines for a person."""
        summary = self.scan.summary
        categories = ", ".join(
            f"{label}: {c.files} files ({c.unique} unique)" for label, c in summary.by_category.items()
        )
        return (
            f"Demo case scanned: {summary.files} items, {summary.matched_files} matched the demo bank"
            f" ({categories}); {summary.unmatched_images} images left for review; {summary.errors} items with errors.\n"
            f"Report: {self.scan.out / 'report.html'} (and report.json, items.csv, case.vics.json, manifest.json,"
            " contact-sheets/)\n"
            f"Evidence: {self.folder / 'evidence'}   Database: {self.database}"
        )


def prepare_demo_folder(folder: Path) -> None:
    """Make ``folder`` ready for the demo: created if missing, used if empty,
    replaced if an earlier demo made it (it holds ``DEMO_MARKER``); any other
    folder, or a file, is refused with ``UsageError``, never deleted."""
    if folder.is_dir() and not folder.is_symlink() and (folder / DEMO_MARKER).is_file():
        shutil.rmtree(folder)
    elif folder.exists() or folder.is_symlink():
        if not folder.is_dir():
            raise UsageError(f"{folder} exists and is not a folder; choose a new {{field}}", field="out")
        if any(folder.iterdir()):
            raise UsageError(
                f"{folder} exists and is not empty, and no earlier demo made it; choose a new {{field}}", field="out"
            )
    folder.mkdir(parents=True, exist_ok=True)
    # Written first, so that a demo stopped half-way can still be replaced.
    (folder / DEMO_MARKER).write_text("made by `childsafe demo`: the next demo run here replaces this folder\n")


def run_demo(settings: Settings, out: Path | None = None) -> DemoResult:
    """Write the demo case, fill a fresh demo bank, scan, and return where the report is."""
    folder = out or settings.home / "demo"
    prepare_demo_folder(folder)
    known, evidence = write_demo_case(folder)
    engine = open_database(settings.database_url)
    try:
        if any(bank.name == DEMO_BANK for bank in list_banks(engine)):
            delete_bank(engine, DEMO_BANK)
        create_bank(engine, DEMO_BANK, scheme="uk")
        for name, category in KNOWN.items():
            add_files_to_bank(engine, DEMO_BANK, [known / f"{name}.jpg"], settings.limits, category)
        add_files_to_bank(engine, DEMO_BANK, [known / "clip.mp4"], settings.limits, KNOWN_VIDEO_CATEGORY)
        database = engine.url.render_as_string(hide_password=True)
    finally:
        engine.dispose()
    request = ScanRequest(
        evidence, "DEMO-0001", folder / "report", min(2, default_workers()), False, ("childsafe", "demo")
    )
    return DemoResult(folder, database, scan_evidence(request, settings))
