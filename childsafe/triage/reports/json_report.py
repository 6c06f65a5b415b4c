"""``report.json``: the case as docs/spec.md defines it, streamed item by item,
plus ``duplicates`` (content found more than once, by SHA-1)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TextIO

from childsafe.triage.case import CaseReport
from childsafe.triage.reports.registry import register

__all__ = ["JSON_REPORT"]


@dataclass(frozen=True)
class JsonReport:
    filename: str = "report.json"

    def write(self, case: CaseReport, out: TextIO) -> None:
        head = {
            "case_id": case.case_id,
            "status": "complete" if case.complete else "incomplete",
            "tool": case.tool,
            "started_at": case.started_at,
            "finished_at": case.finished_at,
            "evidence": {"path": case.evidence},
            "banks": [{"name": b.name, "entries": b.entries, "scheme": b.scheme} for b in case.banks],
            "summary": case.summary.to_dict(),
        }
        out.write(json.dumps(head, ensure_ascii=False, indent=1)[:-2])  # reopen the object for "items"
        out.write(',\n "items": [')
        for number, item in enumerate(case.items()):
            out.write(",\n  " if number else "\n  ")
            out.write(json.dumps(case.item_dict(item), ensure_ascii=False))
        out.write('\n ],\n "duplicates": [')
        for number, (sha1, paths) in enumerate(case.duplicates()):
            out.write(",\n  " if number else "\n  ")
            out.write(json.dumps({"sha1": sha1, "paths": paths}, ensure_ascii=False))
        out.write("\n ]\n}\n")


JSON_REPORT = register(JsonReport())
