"""Triage of seized media: evidence sources and containers, reading without
extracting, resumable parallel scans, and the case reports."""

from childsafe.triage.scan import (
    ScanProgress,
    ScanRequest,
    ScanResult,
    bank_snapshot,
    read_case_manifest,
    rewrite_case_reports,
    scan_evidence,
)

__all__ = [
    "ScanProgress",
    "ScanRequest",
    "ScanResult",
    "bank_snapshot",
    "read_case_manifest",
    "rewrite_case_reports",
    "scan_evidence",
]
