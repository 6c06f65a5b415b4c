"""``report.html``: one self-contained page for a person to read — the
summary first, then every item — that shows no image.

Every value from the evidence (file names above all) is HTML-escaped: a file
can be named to attack whoever opens the report. A few lines of inline script
sort and filter the items table; without script it is still a plain table.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any, TextIO

from childsafe.index import Match
from childsafe.triage.case import CaseReport
from childsafe.triage.provenance import Provenance
from childsafe.triage.reports.registry import register

__all__ = ["HTML_REPORT"]

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem;color:#111;background:#fff}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #999;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#e8e8e8}td.n{text-align:right}code{font-size:.85em;word-break:break-all}
tr.matched td{background:#fdeaea}.incomplete{background:#fff6d6;padding:.5rem;border:2px solid #c90}tr.error td{background:#fff6d6}
#filter{padding:.3rem;width:20rem}th button{all:unset;cursor:pointer;text-decoration:underline}
"""

_SCRIPT = """
(function(){
 var table=document.getElementById('items'),body=table.tBodies[0],input=document.getElementById('filter');
 input.addEventListener('input',function(){var q=input.value.toLowerCase();
  for(var r of body.rows){r.hidden=q&&r.textContent.toLowerCase().indexOf(q)<0;}});
 table.querySelectorAll('th').forEach(function(th,i){var b=document.createElement('button');b.textContent=th.textContent;
  th.textContent='';th.appendChild(b);var asc=true;b.addEventListener('click',function(){
  var rows=Array.from(body.rows),num=th.dataset.type==='n';rows.sort(function(a,c){var x=a.cells[i].textContent,y=c.cells[i].textContent;
  if(num){x=parseFloat(x)||0;y=parseFloat(y)||0;return asc?x-y:y-x;}return asc?x.localeCompare(y):y.localeCompare(x);});
  asc=!asc;rows.forEach(function(r){body.appendChild(r);});});});
})();
"""


def _found(provenance: Provenance) -> str:
    """Where in a disk image an item was found, in one line under its path."""
    where = provenance.location
    parts = [provenance.state, f"in {where.image}"]
    if where.partition is not None:
        parts.append(f"partition {where.partition}")
    if where.offset is not None:
        parts.append(f"at byte {where.offset:,}")
    parts += [where.filesystem or "", f"inode {where.inode}" if where.inode else ""]
    times = (("created", where.created), ("modified", where.modified), ("accessed", where.accessed))
    parts += [f"{name} {time}" for name, time in times if time]
    return f"<br><small>{escape(', '.join(part for part in parts if part))}</small>"


def _cell(value: Any, numeric: bool = False) -> str:
    text = "" if value is None else str(value)
    return f'<td class="n">{escape(text)}</td>' if numeric else f"<td>{escape(text)}</td>"


@dataclass(frozen=True)
class HtmlReport:
    filename: str = "report.html"

    def write(self, case: CaseReport, out: TextIO) -> None:
        summary = case.summary
        out.write('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">')
        out.write(f"<title>Case {escape(case.case_id)}: childsafe report</title><style>{_STYLE}</style></head><body>\n")
        out.write(
            f"<h1>Case {escape(case.case_id)}</h1>\n<p>Evidence <code>{escape(case.evidence)}</code>, scanned by "
            f"{escape(case.tool['name'])} {escape(case.tool['version'])} from {escape(case.started_at)} to "
            f"{escape(case.finished_at or '(not finished)')}. This report shows no image.</p>\n"
        )
        if not case.complete:
            out.write(
                '<p class="incomplete"><strong>Incomplete:</strong> the scan is still running or was stopped before'
                " it finished; this report holds the items read so far. Resume the scan to complete it.</p>\n"
            )
        out.write("<h2>Summary</h2>\n<table><tbody>\n")
        for label, count in (
            ("Items (archive members included)", summary.files),
            ("Images", summary.images),
            ("Videos", summary.videos),
            ("Items with an error", summary.errors),
            ("Items matching a bank", summary.matched_files),
            ("Distinct matched media (by SHA-1)", summary.matched_unique),
            ("Images left for review (unmatched)", summary.unmatched_images),
        ):
            out.write(f'<tr><th scope="row">{label}</th>{_cell(count, True)}</tr>\n')
        out.write(
            "</tbody></table>\n<h2>By category</h2>\n<table><thead><tr><th>Category</th><th>Files</th>"
            "<th>Unique</th></tr></thead><tbody>\n"
        )
        for label, counts in summary.by_category.items():
            out.write(f"<tr>{_cell(label)}{_cell(counts.files, True)}{_cell(counts.unique, True)}</tr>\n")
        if not summary.by_category:
            out.write('<tr><td colspan="3">No matches.</td></tr>\n')
        if summary.videos_by_category:
            out.write(
                "</tbody></table>\n<h2>Videos by category</h2>\n<table><thead><tr><th>Category</th><th>Videos</th>"
                "<th>Unique</th></tr></thead><tbody>\n"
            )
            for label, counts in summary.videos_by_category.items():
                out.write(f"<tr>{_cell(label)}{_cell(counts.files, True)}{_cell(counts.unique, True)}</tr>\n")
        if summary.by_state is not None:
            out.write(
                "</tbody></table>\n<h2>Found in disk images, by state</h2>\n<table><thead><tr><th>State</th>"
                "<th>Items</th><th>Matched</th></tr></thead><tbody>\n"
            )
            for state, state_counts in summary.by_state.items():
                out.write(
                    f"<tr>{_cell(state)}{_cell(state_counts.files, True)}{_cell(state_counts.matched, True)}</tr>\n"
                )
        out.write(
            "</tbody></table>\n<h2>Banks matched against</h2>\n<table><thead><tr><th>Bank</th><th>Scheme</th>"
            "<th>Entries</th><th>Content digest</th></tr></thead><tbody>\n"
        )
        for bank in case.banks:
            out.write(
                f"<tr>{_cell(bank.name)}{_cell(bank.scheme)}{_cell(bank.entries, True)}"
                f"<td><code>{escape(bank.digest)}</code></td></tr>\n"
            )
        out.write(
            '</tbody></table>\n<h2>Items</h2>\n<p><label for="filter">Filter: </label>'
            '<input id="filter" type="search" placeholder="path, category, bank, error..."></p>\n'
        )
        out.write(
            '<table id="items"><thead><tr><th>Path</th><th data-type="n">Size</th><th>Type</th>'
            "<th>Category</th><th>Matches</th><th>SHA-1</th><th>PDQ quality</th><th>Error</th></tr></thead><tbody>\n"
        )
        for item in case.items():
            row = case.item_dict(item)
            matches = "; ".join(_match_text(m) for m in item.matches)
            css = "matched" if item.matches else ("error" if row["error"] else "")
            raw = f"<br><small>raw bytes <code>{item.path_bytes}</code></small>" if item.path_bytes else ""
            if item.provenance is not None:
                raw += _found(item.provenance)
            out.write(
                f'<tr class="{css}" id="item-{escape(item.id)}"><td><code>{escape(row["path"])}</code>{raw}</td>'
                f"{_cell(row['size'], True)}"
                f"{_cell(row['mime'])}{_cell(row['category'])}{_cell(matches)}<td><code>{escape(row['sha1'] or '')}</code></td>"
                f"{_cell(row['pdq_quality'], True)}{_cell(row['error'])}</tr>\n"
            )
        out.write("</tbody></table>\n<h2>Duplicates</h2>\n<ul>\n")
        for sha1, paths in case.duplicates():
            listed = ", ".join(f"<code>{escape(p)}</code>" for p in paths)
            out.write(f"<li><code>{escape(sha1)}</code>: {len(paths)} copies: {listed}</li>\n")
        out.write(f"</ul>\n<script>{_SCRIPT}</script>\n</body></html>\n")


def _match_text(match: Match) -> str:
    """One match for a person: how it matched, and for videos how much and where."""
    text = f"{match.bank} #{match.entry_id} {match.signal}"
    if match.query_percent is not None:  # a video by its frames
        ranges = ", ".join(f"{start:g}-{end:g} s" for start, end in match.query_ranges or [])
        return f"{text} {match.query_percent:g}% of this video, {match.compared_percent:g}% of the known one ({ranges})"
    text += f" d={match.distance} {match.transform}"
    return text if match.timestamp is None else f"{text} at {match.timestamp:g} s"


HTML_REPORT = register(HtmlReport())
