"""The dashboard page (``GET /dashboard``) and its sign-in, for people with a
browser rather than a script: banks, recent matches, prevention counters and
a campaign chart (``childsafe.service.dashboard``).

A browser cannot send ``Authorization: Bearer``, so the request guard lets
``/dashboard`` through and these routes check a session cookie instead: one
API key given once to the sign-in form, a signed session
(``actions.keys.key_session``) kept in an HttpOnly, SameSite=Strict cookie
(Secure over HTTPS). Wrong keys count against the client address's failed
attempts as the guard counts them. Pages are plain HTML with no script, under
a strict Content-Security-Policy, and never cached.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from childsafe import __version__
from childsafe.actions.keys import key_session, role_allows, session_key
from childsafe.errors import UsageError
from childsafe.service.dashboard import (
    OUTCOME_SUBJECTS,
    RECENT_DAYS,
    CampaignQuery,
    campaign_chart,
    dashboard_view,
    matches_chart,
)
from childsafe.service.dependencies import context_of
from childsafe.store import record_audit

router = APIRouter(prefix="/dashboard", include_in_schema=False)

COOKIE = "childsafe_dashboard"
#: How long a dashboard session lasts.
SESSION_HOURS = 8
_CSP = (
    "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "Cache-Control": "no-store",
    # Not no-referrer: with it, Chromium sends "Origin: null" on the page's own form posts.
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
_templates = Environment(loader=PackageLoader("childsafe.service", "templates"), autoescape=select_autoescape(["html"]))
_STYLE = files("childsafe.service").joinpath("templates/dashboard.css").read_bytes()


def _page(template: str, status: int = 200, **values: Any) -> HTMLResponse:
    html = _templates.get_template(template).render(version=__version__, **values)
    return HTMLResponse(html, status, headers=_HEADERS)


def _login_page(problem: str | None = None, status: int = 200) -> HTMLResponse:
    return _page("login.html", status, title="Sign in to the dashboard", problem=problem, session_hours=SESSION_HOURS)


def _signed_in(request: Request) -> tuple[str, str] | None:
    """``(key name, role)`` of the request's session cookie, if valid; the
    name then goes into the request log as a key's would."""
    token = request.cookies.get(COOKIE)
    found = session_key(context_of(request).engine, token) if token else None
    if found is not None:
        request.state.key_name = found[0]
    return found


def _from_another_site(request: Request) -> bool:
    """Whether a form post came from another site's page (a cross-site post
    could sign a person in with someone else's key)."""
    origin = request.headers.get("origin")
    return origin is not None and urlsplit(origin).netloc != request.headers.get("host")


_OTHER_SITE = "A form of another site may not post here: sign in on this page."


def _today() -> date:
    return datetime.now(UTC).date()


@router.get("/style.css")
async def dashboard_style() -> Response:
    """The dashboard's one style sheet (served here: no CDN)."""
    return Response(_STYLE, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


@router.get("")
async def dashboard_page(
    request: Request,
    start: str | None = None,
    outcome: str = "help_clicked",
    region: str | None = None,
    period: str = "week",
) -> HTMLResponse:
    """The dashboard, or the sign-in form without a session."""
    found = await run_in_threadpool(_signed_in, request)
    if found is None:
        return _login_page()
    name, role = found
    campaign, problem = None, None
    if start and role_allows(role, "deter"):
        try:
            campaign = _campaign_query(start, outcome, region, period)
        except UsageError as exc:
            problem = str(exc)
    context = context_of(request)
    async with context.current_index() as matcher:
        sizes = matcher.sizes()
    view = await run_in_threadpool(dashboard_view, context.engine, sizes, name, role, _today(), campaign)
    return _page(
        "dashboard.html",
        422 if problem else (200 if view.sees_anything else 403),
        title="childsafe dashboard",
        view=view,
        key_name=name,
        role=role,
        days=RECENT_DAYS,
        outcome_names=OUTCOME_SUBJECTS,
        campaign_form={"start": start or "", "outcome": outcome, "region": region or "", "period": period},
        campaign_problem=problem,
        campaign_query=urlencode(campaign.as_query()) if campaign else "",
    )


def _campaign_query(start: str, outcome: str, region: str | None, period: str) -> CampaignQuery:
    """The campaign a page or chart asks for by its query string (a blank region: all)."""
    try:
        first = date.fromisoformat(start)
    except ValueError:
        raise UsageError(f"the campaign start must be a date as YYYY-MM-DD, not {start!r:.40}") from None
    return CampaignQuery(first, outcome, (region or "").strip().upper() or None, period)


@router.post("/login")
async def dashboard_login(request: Request, key: Annotated[str, Form(max_length=200)] = "") -> Response:
    """Check the key once; a session cookie and back to the dashboard, or the form again."""
    if _from_another_site(request):
        return _login_page(_OTHER_SITE, 403)
    context = context_of(request)
    session = await run_in_threadpool(key_session, context.engine, key.strip(), SESSION_HOURS * 3600)
    if session is None:
        address = request.client.host if request.client else "unknown"
        wait = await run_in_threadpool(context.failure_limits.take, f"addr:{address}")
        if wait:
            return _login_page(f"Too many wrong keys from this address: try again in {wait} s.", 429)
        return _login_page("That key is unknown or revoked.", 401)
    token, name, role = session
    request.state.key_name = name
    await run_in_threadpool(
        record_audit, context.engine, "dashboard.signin", {"key": name, "role": role}, f"api:{name}"
    )
    response = RedirectResponse("/dashboard", 303, headers=_HEADERS)
    response.set_cookie(
        COOKIE, token, max_age=SESSION_HOURS * 3600, path="/dashboard", httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    return response


@router.post("/logout")
async def dashboard_logout(request: Request) -> Response:
    """Forget the session cookie."""
    if _from_another_site(request):
        return _login_page(_OTHER_SITE, 403)
    response = RedirectResponse("/dashboard", 303, headers=_HEADERS)
    response.delete_cookie(COOKIE, path="/dashboard", httponly=True, samesite="strict")
    return response


async def _chart_viewer(request: Request, permission: str) -> None:
    found = await run_in_threadpool(_signed_in, request)
    if found is None:
        raise HTTPException(401, "sign in at /dashboard first")
    if not role_allows(found[1], permission):
        raise HTTPException(403, f"a {found[1]} key may not see this chart")


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers=_HEADERS)


@router.get("/matches.png")
async def dashboard_matches_chart(request: Request) -> Response:
    """Matches a day over the last 30 days, by category."""
    await _chart_viewer(request, "curate")
    return _png(await run_in_threadpool(matches_chart, context_of(request).engine, _today()))


@router.get("/campaign.png")
async def dashboard_campaign_chart(
    request: Request, start: str, outcome: str = "help_clicked", region: str | None = None, period: str = "week"
) -> Response:
    """The campaign's interrupted time series chart."""
    await _chart_viewer(request, "deter")
    query = _campaign_query(start, outcome, region, period)
    return _png(await run_in_threadpool(campaign_chart, context_of(request).engine, query))
