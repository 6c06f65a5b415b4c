"""A referral's contents, whatever it goes to: the incident, who reports,
the file and its hashes, an EXIF summary, when it was uploaded and by whom
(the identifiers the platform gives), and the bank entries it matched.

Built from a preserved upload (``childsafe.actions.preservation``): the
evidence store holds the bytes, ``preserved_items`` why they were kept.
The report holds no bytes of the file and no credential; it is stored with
the referral (``Referral.report``) and turned into NCMEC's XML
(``ncmec.py``) or the NCA's JSON and CSV (``nca.py``).

EXIF: the summary names the camera, software and times; an image's GPS
position only when the operator asks (``CHILDSAFE_REFERRAL_GPS``), because
the summary is also stored here and shown to curators, and a position can
point at a child's home. The file that goes to NCMEC keeps all its EXIF.
"""

from __future__ import annotations

import io
import ipaddress
import mimetypes
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import Connection, Engine, select

from childsafe.actions.preservation import preserved_path
from childsafe.config import ReferralSettings, Settings
from childsafe.errors import NotFoundError, UsageError
from childsafe.signals import hash_file
from childsafe.store.models import Bank, BankEntry, PreservedItem

__all__ = [
    "ReferralReport",
    "Reporter",
    "ReportedFile",
    "Uploader",
    "MatchedEntry",
    "build_report",
    "exif_summary",
    "preserved_bytes",
]

#: The incident type of every childsafe report: a match of known material.
INCIDENT_TYPE = "Child Pornography (possession, manufacture, and distribution)"
#: At most this many uploader identifiers, of at most this many characters each.
MAX_UPLOADER_IDS = 20
MAX_ID_CHARS = 200

#: EXIF tags summarised (IFD0 and the Exif IFD): numbers from the EXIF standard.
_IFD0_TAGS = {271: "make", 272: "model", 305: "software", 306: "date_time"}
_EXIF_IFD = 0x8769
_EXIF_TAGS = {36867: "date_time_original", 36868: "date_time_digitized"}
_GPS_IFD = 0x8825


@dataclass(frozen=True)
class Reporter:
    """Who reports (from ``ReferralSettings``): a person and the platform."""

    name: str | None
    email: str | None
    organisation: str | None

    @property
    def first_and_last(self) -> tuple[str, str]:
        """The name split at its last space (NCMEC asks for both)."""
        first, _, last = (self.name or "").strip().rpartition(" ")
        return (first, last) if first else (last, "")


@dataclass(frozen=True)
class ReportedFile:
    """The preserved file: a name (its SHA-256 and the type's extension: the
    upload's own name is not kept), size, type and hashes."""

    name: str
    size: int
    mime: str
    md5: str | None
    sha1: str | None
    sha256: str
    pdq: str | None


@dataclass(frozen=True)
class Uploader:
    """Who uploaded it, as the platform identifies them: opaque identifiers
    (an account id, a user name) and an IP address where it has one."""

    ids: tuple[str, ...] = ()
    ip: str | None = None

    def checked(self) -> Uploader:
        """These identifiers, or ``UsageError`` for too many, too long or a bad address."""
        ids = tuple(i.strip() for i in self.ids if i.strip())
        if len(ids) > MAX_UPLOADER_IDS:
            raise UsageError(f"at most {MAX_UPLOADER_IDS} {{field}} values", field="uploader_ids")
        if any(len(i) > MAX_ID_CHARS or not i.isprintable() for i in ids):
            raise UsageError(
                f"each of {{field}} must be printable and at most {MAX_ID_CHARS} characters", field="uploader_ids"
            )
        ip = (self.ip or "").strip() or None
        if ip is not None:
            try:
                ip = str(ipaddress.ip_address(ip))
            except ValueError:
                raise UsageError("{field} is not an IP address", field="uploader_ip") from None
        return Uploader(ids, ip)


@dataclass(frozen=True)
class MatchedEntry:
    """A bank entry the upload matched: its bank, our id, the supplier's id and category."""

    bank: str
    entry_id: str
    source_id: str | None
    category: str | None


@dataclass(frozen=True)
class ReferralReport:
    """Everything a report says. Times are UTC-aware."""

    incident_type: str
    incident_time: datetime
    upload_time: datetime
    reporter: Reporter
    file: ReportedFile
    exif: dict[str, str]
    uploader: Uploader
    uploaded_with_key: str
    matches: tuple[MatchedEntry, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as stored with the referral and shown by the API."""
        record = asdict(self)
        record["incident_time"] = self.incident_time.isoformat()
        record["upload_time"] = self.upload_time.isoformat()
        record["uploader"]["ids"] = list(self.uploader.ids)
        record["matches"] = [asdict(m) for m in self.matches]
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ReferralReport:
        """The report ``to_dict`` gave."""
        return cls(
            incident_type=record["incident_type"],
            incident_time=datetime.fromisoformat(record["incident_time"]),
            upload_time=datetime.fromisoformat(record["upload_time"]),
            reporter=Reporter(**record["reporter"]),
            file=ReportedFile(**record["file"]),
            exif=dict(record["exif"]),
            uploader=Uploader(tuple(record["uploader"]["ids"]), record["uploader"]["ip"]),
            uploaded_with_key=record["uploaded_with_key"],
            matches=tuple(MatchedEntry(**m) for m in record["matches"]),
        )


def preserved_bytes(home: Path, sha256: str) -> bytes:
    """The preserved content with this SHA-256 (read-only); ``NotFoundError``
    when the evidence store no longer has it (purged after its retention)."""
    path = preserved_path(home, sha256)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"the evidence store has no content {sha256} (purged?)") from None


def build_report(
    engine: Engine,
    settings: Settings,
    sha256: str,
    uploader: Uploader,
    incident_time: datetime | None = None,
) -> ReferralReport:
    """The report of the preserved upload with this SHA-256: its hashes
    computed again from the evidence store (what is sent is what is kept),
    the entries of every bank that preserved it, and the uploader the
    caller names. The incident time defaults to the upload's."""
    sha256 = sha256.strip().lower()
    with engine.connect() as connection:
        items = connection.execute(
            select(PreservedItem)
            .where(PreservedItem.sha256 == sha256, PreservedItem.purged_at.is_(None))
            .order_by(PreservedItem.id)
        ).all()
        if not items:
            raise NotFoundError(f"no preserved upload has SHA-256 {sha256:.64}", field="preserved")
        matches = [_matched_entry(connection, item.bank, item.entry_id) for item in items]
    path = preserved_path(settings.home, sha256)
    if not path.is_file():
        raise NotFoundError(f"the evidence store has no content {sha256} (purged?)")
    hashes = hash_file(path, settings.limits)
    first = items[0]
    extension = mimetypes.guess_extension(first.mime) or ""
    reported = ReportedFile(
        name=f"{sha256}{extension}", size=first.size, mime=first.mime, md5=hashes.md5, sha1=hashes.sha1,
        sha256=sha256, pdq=hashes.pdq,
    )  # fmt: skip
    referrals: ReferralSettings = settings.referrals
    return ReferralReport(
        incident_type=INCIDENT_TYPE,
        incident_time=incident_time or first.preserved_at,
        upload_time=first.preserved_at,
        reporter=Reporter(referrals.reporter_name, referrals.reporter_email, referrals.reporter_organisation),
        file=reported,
        exif=exif_summary(path.read_bytes(), gps=referrals.exif_gps),
        uploader=uploader.checked(),
        uploaded_with_key=first.key_name,
        matches=tuple(matches),
    )


def _matched_entry(connection: Connection, bank: str, entry_id: str) -> MatchedEntry:
    row = None
    if entry_id.isdigit():
        row = connection.execute(
            select(BankEntry.source_id, BankEntry.category)
            .join(Bank, Bank.id == BankEntry.bank_id)
            .where(Bank.name == bank, BankEntry.id == int(entry_id))
        ).first()
    # An entry removed since the match is still reported, without what it no longer says.
    return MatchedEntry(bank, entry_id, row.source_id if row else None, row.category if row else None)


def exif_summary(data: bytes, *, gps: bool) -> dict[str, str]:
    """Camera make and model, software and times from an image's EXIF, its
    size in pixels, and (``gps``) its position as ``lat,lon`` in degrees.
    Only headers are read, never the pixels; ``{}`` for what Pillow cannot
    open (a video, damaged content)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            summary = {"width": str(image.width), "height": str(image.height)}
            exif = image.getexif()
            for tag, name in _IFD0_TAGS.items():
                if tag in exif and _text(exif[tag]):
                    summary[name] = _text(exif[tag])
            for tag, name in _EXIF_TAGS.items():
                value = exif.get_ifd(_EXIF_IFD).get(tag)
                if value is not None and _text(value):
                    summary[name] = _text(value)
            if gps:
                position = _gps_position(exif.get_ifd(_GPS_IFD))
                if position:
                    summary["gps"] = position
            return summary
    except Exception:  # noqa: BLE001 - any content Pillow cannot read has no summary, and never stops a report
        return {}


def _text(value: Any) -> str:
    """An EXIF value as short printable text (control characters cannot go into XML)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return "".join(c for c in str(value) if c.isprintable()).strip()[:200]


def _gps_position(gps: dict[int, Any]) -> str | None:
    """``lat,lon`` from the GPS IFD (tags 1-4: reference and degrees, minutes, seconds)."""
    try:
        latitude = _degrees(gps[2]) * (-1 if str(gps.get(1, "N")).upper().startswith("S") else 1)
        longitude = _degrees(gps[4]) * (-1 if str(gps.get(3, "E")).upper().startswith("W") else 1)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return f"{latitude:.6f},{longitude:.6f}"


def _degrees(parts: Any) -> float:
    degrees, minutes, seconds = (float(p) for p in parts)
    return degrees + minutes / 60 + seconds / 3600
