"""The review workbench's web app (``childsafe review CASE_OUT``): a local
page over one scanned case where an investigator grades what no list knew,
group by group, seeing as little as grading needs.

- Access: the app listens on loopback unless given a TLS certificate and key
  (``check_bind``), and prints a one-time login link, the key to it:
  following it sets a session cookie (HttpOnly, SameSite=Strict, and Secure
  over TLS) and spends the link. Every other route (but the style
  sheet) answers 403 without that session.
- Least exposure: every picture is a preview rendered here (``previews.py``),
  reduced, grey and blurred unless the reviewer picks an abstract rendering;
  the original's bytes are never sent. A reveal (the reduced picture in
  colour) is asked for one item at a time, lasts ``REVEAL_SECONDS``, and is
  written to the audit log (who, which item, when). The page says until
  when, and puts the hidden preview back when it ends.
- Grading: a group is graded at once (UK A/B/C, or the case's scheme, or
  ``not-indecent``), by button or by keyboard (the scheme's keys,
  ``grade_keys``: ``1``-``4`` for UK, ``0``-``5`` for Project VIC; ``u`` to
  undo the reviewer's last change); grades go to the case's
  ``review.sqlite``. After a grade the next group has the focus.
- Plain HTML, one small script and one style sheet served by the app (no
  CDN), and a strict Content-Security-Policy; errors are pages too. Usable by
  keyboard alone, and checked with axe-core's rules in a browser
  (tests/e2e/test_review_browser.py).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from html import escape
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Form, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

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
#: Minutes of reviewing after which the page suggests a break, unless the
#: setting ``CHILDSAFE_REVIEW_BREAK_MINUTES`` or the command says otherwise.
BREAK_MINUTES = Settings.review_break_minutes
#: The renderings a reviewer may pick for the queue (a reveal is asked per item).
QUEUE_MODES = tuple(mode for mode in PREVIEW_MODES if mode != "revealed")

_CSP = (
    "default-src 'none'; img-src 'self'; script-src 'self'; style-src 'self'; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'"
)

# Colours meet WCAG AA contrast on white (4.5:1 or more); the focus ring is
# 3 px and of 3:1 or more against what surrounds it, so the keyboard's place
# is always seen.
_STYLE = """
body { font-family: sans-serif; line-height: 1.4; margin: 0 auto; max-width: 62rem; padding: 0 1rem 2rem;
  color: #111; background: #fff; }
a { color: #0b4fa8; }
:focus-visible { outline: 3px solid #0b4fa8; outline-offset: 2px; }
.skip { position: absolute; left: -100rem; }
.skip:focus { position: static; display: inline-block; margin: .5rem 0; }
header { border-bottom: 1px solid #555; margin-bottom: 1rem; }
.tools { display: flex; flex-wrap: wrap; gap: .5rem 2rem; align-items: center; margin: 0 0 1rem; }
.tools form { margin: 0; }
.tools input { font-size: 1rem; padding: .3rem; border: 1px solid #555; }
.hint { color: #444; font-size: .9rem; }
.group { border: 1px solid #555; margin: 0 0 1rem; padding: .5rem 1rem; }
.group:focus-within { border-color: #0b4fa8; box-shadow: 0 0 0 2px #0b4fa8; }
.group h2 { font-size: 1.1rem; margin: .25rem 0 .5rem; }
.group img { display: block; width: 320px; max-width: 100%; height: auto; background: #ddd; }
.grades { display: flex; flex-wrap: wrap; gap: .5rem; margin: .5rem 0; }
button { font-size: 1rem; padding: .4rem .8rem; color: #111; background: #f2f2f2; border: 1px solid #555;
  border-radius: 4px; cursor: pointer; }
button:hover { background: #e0e0e0; }
kbd { font-family: monospace; border: 1px solid #555; border-radius: 3px; padding: 0 .3rem; background: #fff; }
.grade { font-weight: bold; }
.break { background: #fff3c4; border: 1px solid #7a5c00; padding: .5rem; }
.revealed { background: #e8f0ff; border: 1px solid #0b4fa8; padding: .25rem .5rem; }
nav ul { list-style: none; padding: 0; display: flex; gap: 1.5rem; }
a[aria-current] { font-weight: bold; color: #111; text-decoration: none; }
"""

# Keys grade the group that has the focus (a key outside any group does
# nothing), never while a field is typed in (a bank's name has a "u") nor with
# a modifier (the browser's own shortcuts). After a grade the app sends the
# page back with the next group's first button focused (``autofocus``), so a
# reviewer goes through the queue by keys alone. A reveal's preview turns
# back to the hidden one when the reveal runs out (the server refuses the
# revealed one from then on too).
_SCRIPT = """
document.addEventListener('keydown', function (event) {
  if (event.ctrlKey || event.altKey || event.metaKey || event.repeat) { return; }
  if (event.target.closest && event.target.closest('input, textarea, select')) { return; }
  if (event.key === 'u') { document.getElementById('undo').submit(); return; }
  var group = document.activeElement && document.activeElement.closest('.group');
  if (!group) { return; }
  var button = group.querySelector('button[data-key="' + event.key + '"]');
  if (button) { event.preventDefault(); button.click(); }
});
document.querySelectorAll('.group[data-reveal-seconds]').forEach(function (group) {
  setTimeout(function () {
    var img = group.querySelector('img');
    img.src = img.getAttribute('data-hidden-src');
    img.alt = img.getAttribute('data-hidden-alt');
    group.querySelector('.revealed').textContent = 'The reveal has ended: the preview is hidden again.';
    group.removeAttribute('data-reveal-seconds');
  }, Number(group.getAttribute('data-reveal-seconds')) * 1000);
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
    #: Each group's place in the queue, and each item's group (to send the page back to a group).
    _place: dict[str, int] = field(default_factory=dict)
    _group_of: dict[str, str] = field(default_factory=dict)
    #: When the app started (the session time shown), and after how many minutes a break is suggested.
    started: float = field(default_factory=time.monotonic)
    break_minutes: float = BREAK_MINUTES
    #: How long a reveal lasts.
    reveal_seconds: float = REVEAL_SECONDS
    #: Served over TLS: the session cookie is then sent over TLS only.
    secure: bool = False

    def __post_init__(self) -> None:
        if not self.break_minutes > 0:  # also refuses NaN
            raise UsageError("{field} must be above 0", field="break_minutes")

    def load(self) -> None:
        """Read the case's items to review and group them."""
        self.items = {item.id: item for item in load_review_items(self.case_out)}
        self.groups = group_items(self.items.values())
        self._by_id = {group.id: group for group in self.groups}
        self._place = {group.id: place for place, group in enumerate(self.groups)}
        self._group_of = {item: group.id for group in self.groups for item in group.item_ids}

    def group(self, group_id: str) -> ReviewGroup | None:
        """The group called ``group_id``, if there is one."""
        return self._by_id.get(group_id)

    def place(self, group_id: str) -> int:
        """The group's place in the queue, from 0."""
        return self._place[group_id]

    def place_of_item(self, item_id: str) -> int:
        """The place in the queue of the group that holds ``item_id``."""
        return self._place[self._group_of[item_id]]

    def reveal_left(self, cookie: str, item_id: str) -> float:
        """Seconds left of the reveal of ``item_id`` to the session ``cookie`` (0: not revealed)."""
        return max(0.0, self.reveals.get((cookie, item_id), 0.0) - time.monotonic())

    def start_reveal(self, cookie: str, item_id: str) -> None:
        """Reveal ``item_id`` to the session ``cookie`` for ``reveal_seconds``,
        forgetting reveals that have ended (a long session reveals many)."""
        now = time.monotonic()
        for key in [key for key, until in self.reveals.items() if until <= now]:
            del self.reveals[key]
        self.reveals[(cookie, item_id)] = now + self.reveal_seconds

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

    # The app is read in a browser: its errors are pages that say what happened
    # and lead back, not the JSON bodies of an API.
    @app.exception_handler(StarletteHTTPException)
    async def error_page(request: Request, exc: StarletteHTTPException) -> Response:
        return HTMLResponse(_error_page(exc.status_code, str(exc.detail)), exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request_page(request: Request, exc: RequestValidationError) -> Response:
        names = sorted({str(error["loc"][-1]) for error in exc.errors()})
        return HTMLResponse(_error_page(422, f"this request lacks, or has a wrong, {', '.join(names)}"), 422)

    def signed_in(request: Request) -> str:
        """The session's cookie; 403 without a live session."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie not in session.sessions:
            raise HTTPException(403, "follow the login link the review command printed")
        return cookie

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
    def style() -> Response:
        # Without a session too: it holds nothing of the case, and the pages
        # that say a login link is spent, or that a session is needed, use it.
        return PlainTextResponse(_STYLE, media_type="text/css")

    @app.get("/favicon.ico")
    def no_icon() -> Response:
        return Response(status_code=204)  # browsers ask for one; none, rather than a 404 in their console

    @app.get("/static/review.js")
    def script(request: Request) -> Response:
        signed_in(request)
        return PlainTextResponse(_SCRIPT, media_type="text/javascript")

    @app.get("/", response_class=HTMLResponse)
    def queue(request: Request, mode: str = "blurred", page: int = 1, at: int = 0) -> str:
        """A page of the queue; ``at``: the group (from 1) whose first grade button has the focus."""
        cookie = signed_in(request)
        if mode not in QUEUE_MODES:
            raise HTTPException(422, f"a preview's mode is one of {', '.join(QUEUE_MODES)}")
        pages = max(1, -(-len(session.groups) // PAGE_GROUPS))
        if not 1 <= page <= pages:
            raise HTTPException(404, f"the queue has pages 1 to {pages}")
        with GradeBook(session.case_out) as book:
            grades, keys, severe = book.grades(), book.keys(), book.most_severe()
            scheme = book.scheme
        return _queue_page(session, cookie, grades, QueueView(scheme, keys, severe, mode, page, pages, at))

    @app.get("/preview/{item_id:path}")
    def preview(request: Request, item_id: str, mode: str = "blurred") -> Response:
        cookie = signed_in(request)
        if item_id not in session.items or mode not in PREVIEW_MODES:
            raise HTTPException(404, "no such item to review")
        if mode == "revealed" and not session.reveal_left(cookie, item_id):
            raise HTTPException(403, "reveal this item first (it is audited)")
        try:
            png = session.preview(item_id, mode)
        except (UsageError, MediaError) as exc:
            raise HTTPException(409, str(exc)) from None
        return Response(png, media_type="image/png")

    @app.post("/reveal/{item_id:path}")
    def reveal(request: Request, item_id: str, mode: str = Form("blurred")) -> Response:
        """The item's colour preview for ``reveal_seconds``, audited; the page comes back to its group."""
        cookie = signed_in(request)
        if item_id not in session.items:
            raise HTTPException(404, "no such item to review")
        session.start_reveal(cookie, item_id)
        detail = {"case": str(session.case_out), "item": item_id, "seconds": session.reveal_seconds}
        record_audit(session.engine, "review.reveal", detail, session.reviewer)
        return _back_to(session.place_of_item(item_id), mode)

    @app.post("/grade")
    def grade(
        request: Request, group: str = Form(...), category: str = Form(...), mode: str = Form("blurred")
    ) -> Response:
        """Grade a group; the page comes back at the next group, focused, for the next key."""
        signed_in(request)
        chosen = known_group(group)
        with GradeBook(session.case_out) as book:
            try:
                book.grade(chosen.item_ids, category, session.reviewer)
            except UsageError as exc:
                raise HTTPException(422, str(exc)) from None
        return _back_to(min(session.place(chosen.id) + 1, len(session.groups) - 1), mode)

    @app.post("/confirm")
    def confirm(request: Request, group: str = Form(...), mode: str = Form("blurred")) -> Response:
        """The two-person check: a second reviewer confirms a group's grade."""
        signed_in(request)
        chosen = known_group(group)
        with GradeBook(session.case_out) as book:
            try:
                book.confirm(chosen.item_ids, session.reviewer)
            except UsageError as exc:
                raise HTTPException(409, str(exc)) from None
        return _back_to(session.place(chosen.id), mode)

    @app.post("/export", response_class=HTMLResponse)
    def export(request: Request, bank: str = Form(...)) -> str:
        """The grades into the case's reports, and the graded items into ``bank``."""
        signed_in(request)
        try:
            write_graded_reports(session.case_out, session.settings, session.reviewer)
            done = export_graded(session.engine, session.case_out, bank, session.reviewer)
        except UsageError as exc:
            raise HTTPException(422, str(exc)) from None
        return _document(
            "Grades exported",
            "<main><h1>Grades exported</h1>"
            f"<p>The case's reports now carry the grades. Bank {escape(done.bank)}: {done.added} added,"
            f" {done.already_in_bank} already there; left out: {done.not_indecent} not indecent,"
            f" {done.awaiting_confirmation} awaiting a second reviewer.</p>"
            + (f"<p>{escape(done.frames_note())}</p>" if done.videos_without_frames else "")
            + '<p><a href="/">Back to the queue</a></p></main>',
        )

    @app.post("/undo")
    def undo(request: Request, mode: str = Form("blurred")) -> Response:
        """Take back the reviewer's last change; the page comes back to the group it touched."""
        signed_in(request)
        with GradeBook(session.case_out) as book:
            try:
                restored = book.undo(session.reviewer)
            except UsageError as exc:
                raise HTTPException(409, str(exc)) from None
        return _back_to(session.place_of_item(restored[0]) if restored else 0, mode)

    return app


def _back_to(place: int, mode: str) -> RedirectResponse:
    """Back to the queue, at the page of the group at ``place`` (from 0) with
    the focus on that group, in the same rendering. (Not by the address's
    fragment: Chromium takes the focus off the page when it scrolls to one.)"""
    mode = mode if mode in QUEUE_MODES else "blurred"
    return RedirectResponse(f"/?page={place // PAGE_GROUPS + 1}&mode={mode}&at={place + 1}", status_code=303)


def _document(title: str, body: str, *, script: bool = False) -> str:
    """A whole page of the app: its language, ``title``, the style sheet (and
    the script), and ``body``, HTML already escaped."""
    script_tag = '<script src="/static/review.js" defer></script>' if script else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{escape(title)}: childsafe review</title><link rel="stylesheet" href="/static/review.css">'
        f"{script_tag}</head><body>{body}</body></html>"
    )


def _error_page(status: int, message: str) -> str:
    """The page of an error: what it is, what to do, and the way back."""
    phrase = HTTPStatus(status).phrase
    return _document(
        f"{status} {phrase}",
        f"<main><h1>{status} {escape(phrase)}</h1><p>{escape(message)}.</p>"
        '<p><a href="/">Back to the queue</a></p></main>',
    )


#: How the page names each rendering: "Previews are reduced and ...".
_MODE_WORDS = {"blurred": "blurred", "posterised": "posterised", "edges": "drawn as their edges"}


def _duration(minutes: float) -> str:
    """A session's time as a person says it, in whole minutes."""
    whole = int(minutes)
    return "under a minute" if whole == 0 else "1 minute" if whole == 1 else f"{whole} minutes"


@dataclass(frozen=True)
class QueueView:
    """What a page of the queue shows besides the groups: the case's scheme,
    its grades with their keys (``GradeBook.keys``), the category the
    two-person check applies to, the rendering, the page, and the group
    (from 1) that has the focus (0: none)."""

    scheme: str
    keys: tuple[tuple[str, str], ...]
    severe: str | None
    mode: str
    page: int
    pages: int
    at: int = 0


def _queue_page(session: ReviewSession, cookie: str, grades: dict[str, Grade], view: QueueView) -> str:
    """One page of the queue: each group with its representative's preview
    (in colour while this session's reveal of it lasts, saying until when),
    its grade and grade buttons with their keys; the session's time, and a
    break suggested after ``break_minutes``."""
    minutes = (time.monotonic() - session.started) / 60
    graded = sum(1 for group in session.groups if group.representative in grades)
    first = (view.page - 1) * PAGE_GROUPS
    shown_groups = session.groups[first : first + PAGE_GROUPS]
    mode_field = f'<input type="hidden" name="mode" value="{view.mode}">'
    parts = [
        '<a class="skip" href="#groups">Skip to the groups</a><header>',
        f"<h1>Review of {escape(session.case_out.name)}</h1>",
        f"<p>{len(session.groups)} groups of {len(session.items)} pictures and videos no list knew, graded in the"
        f" case's {escape(view.scheme)} scheme. Previews are reduced and {_MODE_WORDS[view.mode]}. Keys"
        f" <kbd>{view.keys[0][0]}</kbd> to <kbd>{view.keys[-1][0]}</kbd> grade the group that has the focus (each"
        " button shows its key), <kbd>u</kbd> undoes your last grade, <kbd>Tab</kbd> goes from control to control.</p>",
        f'<p class="session">Reviewing for {_duration(minutes)}; {graded} of {len(session.groups)} groups graded.'
        f" Page {view.page} of {view.pages}.</p>",
        f'<p class="break" role="alert">You have been reviewing for {_duration(minutes)}: take a break.</p>'
        if minutes >= session.break_minutes
        else "",
        '</header><main><div class="tools">',
        f'<form id="undo" method="post" action="/undo">{mode_field}'
        '<button type="submit">Undo my last grade <span class="key">(key <kbd>u</kbd>)</span></button></form>',
        "<p>Previews: ",
        " ".join(
            f'<a href="/?page={view.page}&amp;mode={mode}"{" aria-current=page" if mode == view.mode else ""}>{mode}</a>'
            for mode in QUEUE_MODES
        ),
        "</p>",
        '<form method="post" action="/export"><label for="bank">Bank for the graded pictures</label>'
        ' <input id="bank" name="bank" required pattern="[A-Za-z0-9._-]+" aria-describedby="bank-hint">'
        ' <button type="submit">Write the reports and add to the bank</button>'
        ' <span id="bank-hint" class="hint">Letters, digits, dot, dash and underscore.</span></form></div>',
        f'<h2 id="groups" tabindex="-1">Groups {first + 1} to {first + len(shown_groups)}</h2>',
    ]
    for place, group in enumerate(shown_groups, start=first + 1):
        parts.append(_group_section(session, cookie, grades, view, place, group))
    parts.append("</main>")
    if view.pages > 1:
        parts.append('<nav aria-label="Queue pages"><ul>')
        if view.page > 1:
            parts.append(f'<li><a href="/?page={view.page - 1}&amp;mode={view.mode}">Previous page</a></li>')
        if view.page < view.pages:
            parts.append(f'<li><a href="/?page={view.page + 1}&amp;mode={view.mode}">Next page</a></li>')
        parts.append("</ul></nav>")
    title = f"Review of {session.case_out.name}, page {view.page} of {view.pages}"
    return _document(title, "".join(parts), script=True)


def _group_section(
    session: ReviewSession, cookie: str, grades: dict[str, Grade], view: QueueView, place: int, group: ReviewGroup
) -> str:
    """One group of the queue (``place`` counts from 1 over the whole queue)."""
    shown = grades.get(group.representative)
    label = escape(session.items[group.representative].label)
    copies = len(group.item_ids) - 1
    item_path = escape(quote(group.representative, safe="/"))
    hidden_src = f"/preview/{item_path}?mode={view.mode}"
    hidden_alt = f"{view.mode} preview of {label}"
    left = session.reveal_left(cookie, group.representative)
    mode_field = f'<input type="hidden" name="mode" value="{view.mode}">'
    parts = [
        f'<section class="group" id="group-{place}" aria-labelledby="group-{place}-name"'
        + (f' data-reveal-seconds="{left:.1f}">' if left else ">"),
        f'<h3 id="group-{place}-name">Group {place}: {label}{f" and {copies} near copies" if copies else ""}</h3>',
    ]
    if left:
        # Until when, by this machine's clock: the reviewer reads it off the page.
        until = time.strftime("%H:%M:%S", time.localtime(time.time() + left))
        parts.append(
            f'<img src="/preview/{item_path}?mode=revealed" alt="colour preview of {label} (revealed)"'
            f' data-hidden-src="{hidden_src}" data-hidden-alt="{hidden_alt}" width="320" height="320">'
            f'<p class="revealed" role="status">Revealed in colour until {until} ({session.reveal_seconds:.0f} s,'
            " audited); then hidden again.</p>"
        )
    else:
        parts.append(f'<img src="{hidden_src}" alt="{hidden_alt}" width="320" height="320">')
    parts.append(f'<p class="grade">Grade: {escape(shown.category) if shown else "not graded"}</p>')
    if shown is not None and shown.category == view.severe and shown.confirmed_by is None:
        parts.append(
            f'<form method="post" action="/confirm"><input type="hidden" name="group" value="{escape(group.id)}">'
            f'{mode_field}<button type="submit">'
            f"Confirm {escape(shown.category)} (a second reviewer; graded by {escape(shown.reviewer)})</button></form>"
        )
    parts.append(f'<form class="grades" method="post" action="/grade">{mode_field}')
    parts.append(f'<input type="hidden" name="group" value="{escape(group.id)}">')
    for number, (key, category) in enumerate(view.keys):
        focus = " autofocus" if place == view.at and number == 0 else ""
        parts.append(
            f'<button type="submit" name="category" value="{escape(category)}" data-key="{key}"'
            f' aria-keyshortcuts="{key}"{focus}>{escape(category)} <span class="key">(key <kbd>{key}</kbd>)</span></button>'
        )
    parts.append("</form>")
    parts.append(
        f'<form method="post" action="/reveal/{item_path}">{mode_field}'
        '<button type="submit">Reveal (audited)</button></form></section>'
    )
    return "".join(parts)
