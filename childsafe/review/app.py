"""The review workbench's web app (``childsafe review CASE_OUT``): a local
page over one scanned case where an investigator grades what no list knew,
group by group, seeing as little as grading needs.

- Access: the app listens on loopback unless given a TLS certificate and key
  (``check_bind``), and prints a one-time login link, the key to it:
  following it sets a session cookie (HttpOnly, SameSite=Strict, and Secure
  over TLS) and spends the link. Every other route answers 403 without that session.
- Least exposure: every picture is a preview rendered here (``previews.py``),
  reduced, grey and blurred unless the reviewer picks an abstract rendering;
  the original's bytes are never sent. A reveal (the reduced picture in
  colour) is asked for one item at a time, lasts ``REVEAL_SECONDS``, and is
  written to the audit log (who, which item, when).
- Grading: a group is graded at once (UK A/B/C, or the case's scheme, or
  ``not-indecent``), by button or by keyboard (``1``-``4``, ``u`` to undo
  the reviewer's last change); grades go to the case's ``review.sqlite``.
- Plain HTML, one small script and one style sheet served by the app (no
  CDN), and a strict Content-Security-Policy.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from sqlalchemy import Engine

from childsafe.config import Settings
from childsafe.errors import MediaError, UsageError
from childsafe.media.sniff import SNIFF_BYTES, sniff_type
from childsafe.review.export import export_graded, write_graded_reports
from childsafe.review.grades import Grade, GradeBook
from childsafe.review.groups import ReviewGroup, ReviewItem, group_items, load_review_items
from childsafe.review.previews import PREVIEW_MODES, render_preview
from childsafe.store import record_audit
from childsafe.triage.contact_sheets import SHEETS_FOLDER, sheet_name
from childsafe.triage.item_bytes import read_item_bytes

__all__ = [
    "check_bind",
    "ReviewSession",
    "create_review_app",
    "REVEAL_SECONDS",
    "SESSION_COOKIE",
    "PAGE_GROUPS",
    "BREAK_MINUTES",
]

#: How long a reveal lasts.
REVEAL_SECONDS = 60
SESSION_COOKIE = "childsafe_review"
#: Previews kept rendered (each a few tens of KB).
PREVIEW_CACHE = 2_000
#: Groups a page of the queue shows (a case may leave 20,000 pictures for review).
PAGE_GROUPS = 50
#: Minutes of reviewing after which the page suggests a break.
BREAK_MINUTES = 45.0

_CSP = (
    "default-src 'none'; img-src 'self'; script-src 'self'; style-src 'self'; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'"
)

_STYLE = """
body { font-family: sans-serif; margin: 1rem; color: #111; background: #fff; }
.group { border: 1px solid #555; margin: 0 0 1rem; padding: .5rem; }
.group:focus-within { outline: 3px solid #004aad; }
.group img { display: block; max-width: 320px; height: auto; }
.grades button { margin: .25rem; padding: .4rem .8rem; font-size: 1rem; }
.grade { font-weight: bold; }
.break { background: #fff3c4; border: 1px solid #7a5c00; padding: .5rem; }
"""

_SCRIPT = """
document.addEventListener('keydown', function (event) {
  var group = document.activeElement && document.activeElement.closest('.group');
  if (event.key === 'u') { document.getElementById('undo').submit(); return; }
  if (!group) { return; }
  var button = group.querySelector('button[data-key="' + event.key + '"]');
  if (button) { button.click(); }
});
"""


@dataclass
class ReviewSession:
    """One case under review: its groups, grades, the one-time login token,
    the live sessions, reveals and a cache of rendered previews."""

    case_out: Path
    reviewer: str
    engine: Engine
    settings: Settings
    login_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    sessions: set[str] = field(default_factory=set)
    reveals: dict[tuple[str, str], float] = field(default_factory=dict)
    previews: OrderedDict[tuple[str, str], bytes] = field(default_factory=OrderedDict)
    items: dict[str, ReviewItem] = field(default_factory=dict)
    groups: list[ReviewGroup] = field(default_factory=list)
    _by_id: dict[str, ReviewGroup] = field(default_factory=dict)
    #: When the app started (the session time shown), and after how many minutes a break is suggested.
    started: float = field(default_factory=time.monotonic)
    break_minutes: float = BREAK_MINUTES
    #: Served over TLS: the session cookie is then sent over TLS only.
    secure: bool = False

    def load(self) -> None:
        """Read the case's items to review and group them."""
        self.items = {item.id: item for item in load_review_items(self.case_out)}
        self.groups = group_items(self.items.values())
        self._by_id = {group.id: group for group in self.groups}

    def group(self, group_id: str) -> ReviewGroup | None:
        """The group called ``group_id``, if there is one."""
        return self._by_id.get(group_id)

    def preview(self, item_id: str, mode: str) -> bytes:
        """The item's preview as ``mode``, rendered once and cached."""
        key = (item_id, mode)
        if key in self.previews:
            self.previews.move_to_end(key)
            return self.previews[key]
        if self.items[item_id].media_type == "video":  # a video is shown by its contact sheet
            sheet = self.case_out / SHEETS_FOLDER / sheet_name(item_id)
            if not sheet.is_file():
                raise UsageError("this video has no contact sheet (no frame could be drawn)")
            data = sheet.read_bytes()
        else:
            data = read_item_bytes(self.case_out, item_id)
        png = render_preview(data, sniff_type(data[:SNIFF_BYTES]).mime, mode)
        self.previews[key] = png
        if len(self.previews) > PREVIEW_CACHE:
            self.previews.popitem(last=False)
        return png


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def check_bind(host: str, tls_cert: Path | None, tls_key: Path | None) -> bool:
    """Whether the app is served over TLS: on loopback it may be either; any
    other address needs a certificate and its key (both readable files), or
    a ``UsageError`` says so. The one-time login link is the key to the app."""
    if (tls_cert is None) != (tls_key is None):
        raise UsageError("give both {field} and the certificate's key, or neither", field="tls_cert")
    for given, name in ((tls_cert, "tls_cert"), (tls_key, "tls_key")):
        if given is not None and not given.is_file():
            raise UsageError(f"{{field}} {given} is not a readable file", field=name)
    if host not in LOOPBACK and tls_cert is None:
        raise UsageError(
            "{field} beyond this machine needs TLS: give a certificate and its key (or serve on 127.0.0.1)",
            field="host",
        )
    return tls_cert is not None


def create_review_app(session: ReviewSession) -> FastAPI:
    """The app over ``session``'s case (call ``session.load()`` first)."""
    app = FastAPI(title="childsafe review", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def strict_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    def signed_in(request: Request) -> None:
        if request.cookies.get(SESSION_COOKIE) not in session.sessions:
            raise HTTPException(403, "follow the login link the review command printed")

    def known_group(group_id: str) -> ReviewGroup:
        chosen = session.group(group_id)
        if chosen is None:
            raise HTTPException(404, "no such group")
        return chosen

    @app.get("/login")
    def login(token: str) -> Response:
        if not secrets.compare_digest(token, session.login_token):
            raise HTTPException(403, "this login link is spent or wrong: start the review command again")
        session.login_token = secrets.token_urlsafe(24)  # one time only
        cookie = secrets.token_urlsafe(24)
        session.sessions.add(cookie)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="strict", secure=session.secure)
        return response

    @app.get("/static/review.css")
    def style(request: Request) -> Response:
        signed_in(request)
        return PlainTextResponse(_STYLE, media_type="text/css")

    @app.get("/static/review.js")
    def script(request: Request) -> Response:
        signed_in(request)
        return PlainTextResponse(_SCRIPT, media_type="text/javascript")

    @app.get("/", response_class=HTMLResponse)
    def queue(request: Request, mode: str = "blurred", page: int = 1) -> str:
        signed_in(request)
        if mode not in PREVIEW_MODES or mode == "revealed":
            raise HTTPException(422, f"mode is one of {', '.join(m for m in PREVIEW_MODES if m != 'revealed')}")
        pages = max(1, -(-len(session.groups) // PAGE_GROUPS))
        if not 1 <= page <= pages:
            raise HTTPException(404, f"the queue has pages 1 to {pages}")
        with GradeBook(session.case_out) as book:
            grades, categories, severe = book.grades(), book.categories(), book.most_severe()
        return _queue_page(session, grades, categories, severe, mode, page, pages)

    @app.get("/preview/{item_id:path}")
    def preview(request: Request, item_id: str, mode: str = "blurred") -> Response:
        signed_in(request)
        if item_id not in session.items or mode not in PREVIEW_MODES:
            raise HTTPException(404, "no such item to review")
        if mode == "revealed":
            until = session.reveals.get((request.cookies[SESSION_COOKIE], item_id), 0.0)
            if time.monotonic() > until:
                raise HTTPException(403, "reveal this item first (it is audited)")
        try:
            png = session.preview(item_id, mode)
        except (UsageError, MediaError) as exc:
            raise HTTPException(409, str(exc)) from None
        return Response(png, media_type="image/png")

    @app.post("/reveal/{item_id:path}")
    def reveal(request: Request, item_id: str) -> Response:
        signed_in(request)
        if item_id not in session.items:
            raise HTTPException(404, "no such item to review")
        session.reveals[(request.cookies[SESSION_COOKIE], item_id)] = time.monotonic() + REVEAL_SECONDS
        detail = {"case": str(session.case_out), "item": item_id, "seconds": REVEAL_SECONDS}
        record_audit(session.engine, "review.reveal", detail, session.reviewer)
        return RedirectResponse(f"/preview/{item_id}?mode=revealed", status_code=303)

    @app.post("/grade")
    def grade(request: Request, group: str = Form(...), category: str = Form(...), page: int = Form(1)) -> Response:
        signed_in(request)
        chosen = known_group(group)
        with GradeBook(session.case_out) as book:
            try:
                book.grade(chosen.item_ids, category, session.reviewer)
            except UsageError as exc:
                raise HTTPException(422, str(exc)) from None
        return RedirectResponse(f"/?page={page}", status_code=303)

    @app.post("/confirm")
    def confirm(request: Request, group: str = Form(...), page: int = Form(1)) -> Response:
        """The two-person check: a second reviewer confirms a group's grade."""
        signed_in(request)
        chosen = known_group(group)
        with GradeBook(session.case_out) as book:
            try:
                book.confirm(chosen.item_ids, session.reviewer)
            except UsageError as exc:
                raise HTTPException(409, str(exc)) from None
        return RedirectResponse(f"/?page={page}", status_code=303)

    @app.post("/export", response_class=HTMLResponse)
    def export(request: Request, bank: str = Form(...)) -> str:
        """The grades into the case's reports, and the graded items into ``bank``."""
        signed_in(request)
        try:
            write_graded_reports(session.case_out, session.settings, session.reviewer)
            done = export_graded(session.engine, session.case_out, bank, session.reviewer)
        except UsageError as exc:
            raise HTTPException(422, str(exc)) from None
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Exported: childsafe review</title>'
            '<link rel="stylesheet" href="/static/review.css"></head><body><main><h1>Grades exported</h1>'
            f"<p>The case's reports now carry the grades. Bank {escape(done.bank)}: {done.added} added,"
            f" {done.already_in_bank} already there; left out: {done.not_indecent} not indecent,"
            f" {done.awaiting_confirmation} awaiting a second reviewer.</p>"
            + (f"<p>{escape(done.frames_note())}</p>" if done.videos_without_frames else "")
            + '<p><a href="/">Back to the queue</a></p></main></body></html>'
        )

    @app.post("/undo")
    def undo(request: Request) -> Response:
        signed_in(request)
        with GradeBook(session.case_out) as book:
            try:
                book.undo(session.reviewer)
            except UsageError as exc:
                raise HTTPException(409, str(exc)) from None
        return RedirectResponse("/", status_code=303)

    return app


def _queue_page(
    session: ReviewSession,
    grades: dict[str, Grade],
    categories: tuple[str, ...],
    severe: str | None,
    mode: str,
    page: int,
    pages: int,
) -> str:
    """One page of the queue: each group with its representative's preview,
    its grade and grade buttons; the session's time, and a break suggested
    after ``break_minutes``."""
    minutes = (time.monotonic() - session.started) / 60
    graded = sum(1 for group in session.groups if group.representative in grades)
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Review: childsafe</title>',
        '<link rel="stylesheet" href="/static/review.css"><script src="/static/review.js" defer></script></head><body>',
        f"<h1>Review of {escape(session.case_out.name)}</h1>",
        f"<p>{len(session.groups)} groups of {len(session.items)} pictures and videos no list knew. Previews are"
        " reduced and blurred; keys 1-4 grade the focused group, u undoes your last grade.</p>",
        f'<p class="session">Reviewing for {minutes:.0f} minutes; {graded} of {len(session.groups)} groups graded.'
        f" Page {page} of {pages}.</p>",
        '<p class="break" role="alert">You have been reviewing for a while: take a break.</p>'
        if minutes >= session.break_minutes
        else "",
        '<form id="undo" method="post" action="/undo"><button type="submit">Undo my last grade</button></form>',
        '<form method="post" action="/export"><label>Bank for the graded pictures <input name="bank" required'
        ' pattern="[A-Za-z0-9._-]+"></label> <button type="submit">Write the reports and add to the bank</button></form>',
        "<main>",
    ]
    for group in session.groups[(page - 1) * PAGE_GROUPS : page * PAGE_GROUPS]:
        shown = grades.get(group.representative)
        label = escape(session.items[group.representative].label)
        parts.append(f'<section class="group" aria-label="group of {len(group.item_ids)}: {label}">')
        parts.append(
            f'<img src="/preview/{escape(group.representative)}?mode={mode}" alt="{mode} preview of {label}"'
            ' width="320" height="320">'
        )
        copies = len(group.item_ids) - 1
        parts.append(f"<p>{label}{f' and {copies} near copies' if copies else ''}</p>")
        parts.append(f'<p class="grade">Grade: {escape(shown.category) if shown else "not graded"}</p>')
        if shown is not None and shown.category == severe and shown.confirmed_by is None:
            parts.append(
                f'<form method="post" action="/confirm"><input type="hidden" name="group" value="{escape(group.id)}">'
                f'<input type="hidden" name="page" value="{page}"><button type="submit">'
                f"Confirm {escape(shown.category)} (a second reviewer; graded by {escape(shown.reviewer)})</button></form>"
            )
        parts.append('<form class="grades" method="post" action="/grade">')
        parts.append(f'<input type="hidden" name="group" value="{escape(group.id)}">')
        parts.append(f'<input type="hidden" name="page" value="{page}">')
        for key, category in enumerate(categories, start=1):
            parts.append(
                f'<button type="submit" name="category" value="{escape(category)}" data-key="{key}">'
                f"{escape(category)} ({key})</button>"
            )
        parts.append("</form>")
        parts.append(
            f'<form method="post" action="/reveal/{escape(group.representative)}">'
            '<button type="submit">Reveal (audited)</button></form></section>'
        )
    parts.append('</main><nav aria-label="queue pages">')
    if page > 1:
        parts.append(f'<a href="/?page={page - 1}&amp;mode={mode}">Previous page</a> ')
    if page < pages:
        parts.append(f'<a href="/?page={page + 1}&amp;mode={mode}">Next page</a>')
    parts.append("</nav></body></html>")
    return "".join(parts)
