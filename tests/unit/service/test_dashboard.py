"""The service's dashboard page in-process (``support.InProcessApp``): the
sign-in with an API key and its signed session cookie, each part shown only
to the roles that may see it, match counts saved by the background loop, the
prevention counters' small-count suppression, and the campaign chart."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from PIL import Image
from sqlalchemy import insert
from support import InProcessApp

from childsafe.actions.keys import create_api_key, revoke_api_key
from childsafe.banks import NewEntry, add_entries, create_bank
from childsafe.config import ServiceOptions, Settings
from childsafe.deter.counters import count
from childsafe.service.app import create_app
from childsafe.service.routes.dashboard import COOKIE
from childsafe.store import audit_events, open_database
from childsafe.store.models import DeterCount

KNOWN_MD5 = "0" * 31 + "1"


class Dashboard:
    def __init__(self, app: InProcessApp, keys: dict[str, str], home: Path, settings: Settings) -> None:
        self.app, self.keys, self.home, self.settings = app, keys, home, settings

    def sign_in(self, key: str, headers: dict[str, str] | None = None) -> httpx.Response:
        response = self.app.request("POST", "/dashboard/login", data={"key": key}, headers=headers or {})
        self.app.client.cookies.clear()  # each test sends the cookie it means to
        return response

    def session(self, role: str) -> str:
        response = self.sign_in(self.keys[role])
        assert response.status_code == 303, response.text
        return str(response.cookies[COOKIE])

    def get(self, path: str, token: str | None = None) -> httpx.Response:
        return self.app.request("GET", path, headers={"Cookie": f"{COOKIE}={token}"} if token else {})


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    home = tmp_path_factory.mktemp("dashboard") / "home"
    environ = {"CHILDSAFE_HOME": str(home), "CHILDSAFE_MATCH_COUNT_SECONDS": "0.1"}
    settings, options = Settings.from_env(environ), ServiceOptions.from_env(environ)
    engine = open_database(settings.database_url)
    keys = {role: create_api_key(engine, f"{role}-key", role) for role in ("admin", "curator", "matcher", "deter")}
    create_bank(engine, "police", scheme="uk")
    add_entries(engine, "police", [NewEntry([("md5", KNOWN_MD5)], "A", "case-1", None)])
    engine.dispose()
    app = InProcessApp(create_app(settings, options))
    try:
        yield Dashboard(app, keys, home, settings)
    finally:
        app.close()


def test_without_a_session_the_dashboard_is_the_sign_in_form_and_charts_are_refused(dashboard: Dashboard) -> None:
    page = dashboard.get("/dashboard")
    assert page.status_code == 200
    assert 'name="key"' in page.text and 'type="password"' in page.text
    assert "police" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert dashboard.get("/dashboard/matches.png").status_code == 401
    assert dashboard.get("/dashboard/campaign.png?start=2026-01-05").status_code == 401
    # A token that is not a session, or one whose signature was changed, is no session.
    token = dashboard.session("curator")
    forged = token[:-4] + ("0000" if not token.endswith("0000") else "1111")
    for bad in ("nonsense", forged, token.replace("curator-key", "admin-key")):
        assert 'name="key"' in dashboard.get("/dashboard", bad).text


def test_a_wrong_key_is_refused_and_a_good_one_gives_a_strict_cookie_and_an_audit_event(
    dashboard: Dashboard,
) -> None:
    wrong = dashboard.sign_in("cs_not-a-key")
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
    assert COOKIE not in wrong.cookies
    right = dashboard.sign_in(dashboard.keys["curator"])
    assert right.status_code == 303 and right.headers["location"] == "/dashboard"
    cookie = right.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/dashboard" in cookie
    assert dashboard.keys["curator"] not in right.headers["set-cookie"]  # the key itself never reaches the browser
    engine = open_database(dashboard.settings.database_url)
    signins = [event for event in audit_events(engine) if event.action == "dashboard.signin"]
    engine.dispose()
    assert signins and signins[-1].detail == {"key": "curator-key", "role": "curator"}


def test_a_form_of_another_site_cannot_sign_anyone_in(dashboard: Dashboard) -> None:
    response = dashboard.sign_in(dashboard.keys["curator"], {"Origin": "https://elsewhere.example"})
    assert response.status_code == 403
    assert COOKIE not in response.cookies


def test_a_curator_sees_banks_and_the_matches_counted_but_not_prevention(dashboard: Dashboard) -> None:
    matcher = {"Authorization": f"Bearer {dashboard.keys['matcher']}"}
    for _ in range(3):
        answer = dashboard.app.request("GET", f"/v1/match?signal=md5&value={KNOWN_MD5}", headers=matcher)
        assert len(answer.json()["matches"]) == 1
    missed = dashboard.app.request("GET", f"/v1/match?signal=md5&value={'f' * 32}", headers=matcher)
    assert missed.json()["matches"] == []
    token = dashboard.session("curator")
    row = '<th scope="row">police</th><td>A</td><td class="number">3</td><td class="number">3</td>'
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the background loop saves counts every 0.1 s here (maybe 2, then 1)
        page = dashboard.get("/dashboard", token)
        if row in page.text:
            break
        time.sleep(0.1)
    assert page.status_code == 200
    assert '<th scope="row">police</th><td>uk</td>' in page.text
    assert row in page.text  # the three matches, once each; the miss is not counted
    assert "Prevention" not in page.text and "Campaign" not in page.text
    chart = dashboard.get("/dashboard/matches.png", token)
    assert chart.status_code == 200 and chart.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(chart.content)).size == (800, 420)
    assert dashboard.get("/dashboard/campaign.png?start=2026-01-05", token).status_code == 403


def test_deter_sees_prevention_totals_with_small_counts_suppressed_and_no_banks(dashboard: Dashboard) -> None:
    engine = open_database(dashboard.settings.database_url)
    for _ in range(12):
        count(engine, "GB", "placeholder-list", "shown")
    for _ in range(3):
        count(engine, "IE", "placeholder-list", "shown")
    engine.dispose()
    page = dashboard.get("/dashboard", dashboard.session("deter"))
    assert page.status_code == 200
    assert '<th scope="row">GB</th><td>Warnings shown</td><td class="number">12</td>' in page.text
    assert '<th scope="row">IE</th><td>Warnings shown</td><td class="number">&lt;10</td>' in page.text
    assert "police" not in page.text and "Recent matches" not in page.text
    assert dashboard.get("/dashboard/matches.png", dashboard.session("deter")).status_code == 403


def _weekly_counts(engine_url: str, outcome: str, region: str, counts: list[int]) -> str:
    """One count a week (on its Monday) ending last week; the campaign start: the Monday 10 weeks ago."""
    today = datetime.now(UTC).date()
    monday = today - timedelta(days=today.weekday())
    engine = open_database(engine_url)
    with engine.begin() as connection:
        for weeks_ago, number in zip(range(len(counts), 0, -1), counts, strict=True):
            day = (monday - timedelta(weeks=weeks_ago)).isoformat()
            connection.execute(
                insert(DeterCount).values(day=day, region=region, list_name="l", outcome=outcome, count=number)
            )
    engine.dispose()
    return (monday - timedelta(weeks=10)).isoformat()


def test_the_campaign_chart_is_drawn_from_the_counters_unless_a_period_holds_a_small_count(
    dashboard: Dashboard,
) -> None:
    before, after = [20, 22, 19, 21, 20, 23, 18, 22, 21, 20, 19, 22, 20, 21], [35, 38, 36, 40, 37, 39, 41, 38, 36, 40]
    start = _weekly_counts(dashboard.settings.database_url, "help_clicked", "GB-WLS", before + after)
    token = dashboard.session("admin")
    page = dashboard.get(f"/dashboard?start={start}&outcome=help_clicked&region=gb-wls&period=week", token)
    assert page.status_code == 200, page.text
    assert "Help links followed rose 85% (95% CI 58% to 116%; p &lt; 0.001)" in page.text
    assert (
        f"/dashboard/campaign.png?start={start}&amp;outcome=help_clicked&amp;period=week&amp;region=GB-WLS" in page.text
    )
    assert "Rate ratio, after / before" in page.text
    chart = dashboard.get(f"/dashboard/campaign.png?start={start}&outcome=help_clicked&region=GB-WLS", token)
    assert chart.status_code == 200 and chart.content.startswith(b"\x89PNG")
    # A week with 3 would be drawn as a dot a reader can count: not shown.
    small = _weekly_counts(dashboard.settings.database_url, "help_clicked", "GB-NIR", before[:-1] + [3] + after)
    refused = dashboard.get(f"/dashboard?start={small}&outcome=help_clicked&region=GB-NIR", token)
    assert "fewer than 10" in refused.text and "campaign.png" not in refused.text
    assert dashboard.get(f"/dashboard/campaign.png?start={small}&region=GB-NIR", token).status_code == 422
    bad = dashboard.get("/dashboard?start=yesterday", token)
    assert bad.status_code == 422 and "YYYY-MM-DD" in bad.text


def test_a_matcher_key_sees_nothing_and_a_revoked_key_ends_its_session(dashboard: Dashboard) -> None:
    page = dashboard.get("/dashboard", dashboard.session("matcher"))
    assert page.status_code == 403 and "sees no part of this dashboard" in page.text
    engine = open_database(dashboard.settings.database_url)
    key = create_api_key(engine, "short-lived", "curator")
    token = str(dashboard.sign_in(key).cookies[COOKIE])
    assert "police" in dashboard.get("/dashboard", token).text
    revoke_api_key(engine, "short-lived")
    engine.dispose()
    assert 'name="key"' in dashboard.get("/dashboard", token).text
