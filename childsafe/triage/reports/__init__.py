"""Case report writers, one module each (report.json, report.html,
items.csv, case.vics.json); manifest.json is written last by the scan, over
the others' files."""

from childsafe.triage.reports import html_report, items_csv, json_report, vics_case  # noqa: F401  (registers them)
from childsafe.triage.reports.registry import ReportWriter, register, writers

__all__ = ["ReportWriter", "register", "writers"]
