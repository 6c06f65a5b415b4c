"""Reports for the UK's National Crime Agency, under the Online Safety (CSEA
Content Reporting by Regulated User-to-User Service Providers) Regulations
2026 (SI 2026/268, in force from 7 April 2026), by its online portal or,
once the NCA publishes one, its API.

The package follows Schedule 1 ("CSEA information to be included in
reports"), paragraph by paragraph, as far as childsafe knows each thing:

1. the authorised person submitting the report (``authorised_person``);
2. the detected content: hash values, EXIF data, when it was uploaded and
   detected, how, and what it matched (``content``);
3. a priority the authorised person assesses (regulation 14) - theirs to
   give in the portal (``priority``: null);
4. the user: identifiers the platform holds, the IP address and port
   number with their time, connections with other accounts (``user``);
5. identity documents the provider holds for the user (null: not known here);
6. other information reasonably available (``other_information``);
7. the declaration that all information reasonably available is included,
   made by the authorised person in the portal (``declaration``: null).

The field list is written from the Schedule's headings and the
Regulations' definitions (``exif data``, ``hash value``, ``IP address``,
``port number``, ``connections with other accounts``) as published; the
NCA's portal is the authority on its own form (docs/referrals.md).

The package is a JSON document and a CSV of the same fields
(``section,field,value``), ready to be entered in the portal. ``NcaClient``
is the interface an API client will implement; until the NCA publishes its
API the only implementation says so - no endpoint is guessed.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Protocol

from childsafe.errors import UsageError
from childsafe.fileio import atomic_binary_file
from childsafe.referrals.model import ReferralReport

__all__ = ["NcaClient", "UnpublishedNcaApi", "nca_csv", "nca_package", "write_package"]

PACKAGE_FORMAT = "childsafe-nca-package/1"
REGULATIONS = "The Online Safety (CSEA Content Reporting by Regulated User-to-User Service Providers) Regulations 2026"


def nca_package(report: ReferralReport, referral_id: int) -> dict[str, Any]:
    """The package of one report, as a JSON object (Schedule 1's order)."""
    file = report.file
    return {
        "format": PACKAGE_FORMAT,
        "regulations": f"{REGULATIONS} (SI 2026/268), Schedule 1",
        "referral_id": referral_id,
        "authorised_person": {
            "name": report.reporter.name,
            "email": report.reporter.email,
            "organisation": report.reporter.organisation,
        },
        "content": {
            "file_name": file.name,
            "size_bytes": file.size,
            "media_type": file.mime,
            "hash_values": {"md5": file.md5, "sha1": file.sha1, "sha256": file.sha256, "pdq": file.pdq},
            "exif": dict(report.exif),
            "uploaded_at": report.upload_time.isoformat(),
            "detected_at": report.upload_time.isoformat(),
            "incident_at": report.incident_time.isoformat(),
            "detection_method": "hash match against a list of known child sexual abuse material",
            "matched_entries": [
                {"bank": m.bank, "entry_id": m.entry_id, "source_id": m.source_id, "category": m.category}
                for m in report.matches
            ],
        },
        "priority": None,
        "user": {
            "identifiers": list(report.uploader.ids),
            "ip_address": report.uploader.ip,
            "ip_address_at": report.upload_time.isoformat() if report.uploader.ip else None,
            "port_number": None,
            "connections_with_other_accounts": None,
        },
        "identity_documents": None,
        "other_information": f"Uploaded through the platform's API key {report.uploaded_with_key}.",
        "declaration": None,
    }


def nca_csv(package: dict[str, Any]) -> str:
    """The package as CSV rows ``section,field,value`` (lists as one row an
    item, nested objects flattened with dots; empty for unknown)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "field", "value"])
    for section, value in package.items():
        for field, item in _flatten(value, ""):
            writer.writerow([section, field, _cell(item)])
    return out.getvalue()


def _flatten(value: Any, prefix: str) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        rows: list[tuple[str, Any]] = []
        for key, item in value.items():
            rows += _flatten(item, f"{prefix}.{key}" if prefix else key)
        return rows
    if isinstance(value, list):
        rows = []
        for number, item in enumerate(value, 1):
            rows += _flatten(item, f"{prefix}.{number}" if prefix else str(number))
        return rows
    return [(prefix, value)]


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # A cell starting with = + - @ is a formula to a spreadsheet: quoted out.
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text


def write_package(report: ReferralReport, referral_id: int, out: Path) -> list[Path]:
    """Write ``referral-ID.json`` and ``referral-ID.csv`` into the folder
    ``out`` (made if needed), readable by their owner only."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{{field}} {out} is not a folder", field="out")
    out.mkdir(parents=True, exist_ok=True)
    package = nca_package(report, referral_id)
    written = []
    for name, text in (
        (f"referral-{referral_id}.json", json.dumps(package, indent=2) + "\n"),
        (f"referral-{referral_id}.csv", nca_csv(package)),
    ):
        path = out / name
        with atomic_binary_file(path, permissions=0o600) as handle:
            handle.write(text.encode("utf-8"))
        written.append(path)
    return written


class NcaClient(Protocol):
    """What an NCA API client does, when the NCA publishes its API: send a
    package (``nca_package``'s object, and the file's bytes) and return the
    NCA's reference for it. Raise ``RemoteError`` for a failure, as
    ``childsafe.referrals.ncmec.CyberTipline`` does, through
    ``childsafe.http_client``."""

    def submit(self, package: dict[str, Any], content: bytes) -> str: ...


class UnpublishedNcaApi:
    """The only ``NcaClient`` for now: it says the API is not there."""

    def submit(self, package: dict[str, Any], content: bytes) -> str:
        """Always ``UsageError``: nothing is sent to an address nobody published."""
        raise UsageError(
            "the NCA API is not configured: the NCA has not published its API; write the package "
            "(destination nca with an output folder) and enter it in the NCA's portal"
        )
