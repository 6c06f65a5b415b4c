"""The service's dashboard in a real browser (Debian's Chromium through
Playwright), served by a real ``childsafe serve``: signing in with the
keyboard, every page passing axe-core with nothing serious or critical, the
charts loading under the page's strict CSP, and a screenshot of each page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert
from support import CHROMIUM, Server, axe_checked
from support import CHROMIUM_FLAGS as FLAGS

from childsafe.banks import NewEntry, add_entries, create_bank
from childsafe.config import Settings
from childsafe.store import open_database
from childsafe.store.models import DeterCount, MatchCount

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (./run tests installs it as root)"),
]

WEEKLY = [20, 22, 19, 21, 20, 23, 18, 22, 21, 20, 19, 22, 20, 21, 35, 38, 36, 40, 37, 39, 41, 38, 36, 40]


def _figures(env: dict[str, str]) -> str:
    """A bank, 30 days of match counts and 24 weeks of help clicks; the campaign's start."""
    engine = open_database(Settings.from_env(env).database_url)
    create_bank(engine, "police", scheme="uk")
    add_entries(engine, "police", [NewEntry([("md5", "0" * 31 + "1")], "A")])
    today = datetime.now(UTC).date()
    monday = today - timedelta(days=today.weekday())
    with engine.begin() as connection:
        for weeks_ago, number in zip(range(len(WEEKLY), 0, -1), WEEKLY, strict=True):
            day = (monday - timedelta(weeks=weeks_ago)).isoformat()
            connection.execute(
                insert(DeterCount).values(day=day, region="GB", list_name="l", outcome="help_clicked", count=number)
            )
        for days_ago in range(0, 30, 2):
            day = (today - timedelta(days=days_ago)).isoformat()
            connection.execute(insert(MatchCount).values(day=day, bank="police", category="A", count=days_ago % 4 + 1))
    engine.dispose()
    return (monday - timedelta(weeks=10)).isoformat()


def test_the_dashboard_by_keyboard_passes_axe_and_draws_its_charts(cli_env: dict[str, str], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    start = _figures(cli_env)
    server = Server(cli_env)
    shots = tmp_path / "shots"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1000, "height": 1200})
            page.goto(f"{server.url}/dashboard")
            axe_checked(page, shots, "01-sign-in")
            page.keyboard.press("Tab")  # the key field is the first control
            page.keyboard.type("cs_wrong")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert "unknown or revoked" in page.locator("[role=alert]").inner_text()
            axe_checked(page, shots, "02-sign-in-refused")
            page.locator("#key").fill(server.keys["admin"])
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert page.locator("h1").inner_text() == "childsafe dashboard"
            headings = [text.strip() for text in page.locator("h2").all_inner_texts()]
            assert headings == ["Banks", "Recent matches", "Prevention"]
            axe_checked(page, shots, "03-dashboard")  # waits for the match chart to load
            assert page.evaluate("document.querySelector('img[src=\"/dashboard/matches.png\"]').naturalWidth") == 800
            # The campaign form, filled and sent from the keyboard.
            page.locator("#start").fill(start)
            page.locator("#region").fill("GB")
            with page.expect_navigation():
                page.locator("#region").press("Enter")
            assert "Help links followed rose" in page.locator(".headline").first.inner_text()
            axe_checked(page, shots, "04-campaign")
            assert page.locator("img[src^='/dashboard/campaign.png']").evaluate("image => image.naturalWidth") == 800
            # Signing out ends the session in this browser.
            with page.expect_navigation():
                page.get_by_role("button", name="Sign out").press("Enter")
            assert page.locator("#key").count() == 1
            browser.close()
    finally:
        server.stop()
