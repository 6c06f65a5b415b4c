"""The warning page and the deterrence routes on a real ``childsafe serve``
process, and the page in a real headless Chromium (Debian's package) driven
by Playwright."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Server, deter_counters, redirect_of

from childsafe.store import open_database

CHROMIUM = shutil.which("chromium")


@pytest.fixture
def warning_server(cli_env: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    running = Server({**cli_env, "CHILDSAFE_DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}"})
    yield running
    running.stop()


def test_warning_routes_on_the_service(warning_server: Server) -> None:
    public = warning_server.client(None)
    page = public.get("/warning", params={"region": "GB-WLS", "lang": "cy"})
    assert (
        page.status_code == 200
        and "Stop It Now Wales" in page.text
        and "/warning/help/stopitnow-wales/phone" in page.text
    )
    wales = redirect_of(warning_server.url, "/warning/help/stopitnow-wales/phone", {"region": "GB-WLS"})
    assert wales == (303, "tel:08081000900")
    assert public.get("/warning/help/stopitnow-wales/phone", params={"region": "US"}).status_code == 404
    deter = warning_server.client("deter")
    assert deter.post("/v1/deter/outcome", json={"outcome": "abandoned", "region": "GB"}).status_code == 204
    assert deter.post("/v1/deter/outcome", json={"outcome": "shown"}).status_code == 422  # shown is counted by check
    assert public.post("/v1/deter/outcome", json={"outcome": "abandoned"}).status_code == 401
    stats = deter.get("/v1/deter/stats").json()
    assert {(s["region"], s["list"], s["outcome"]) for s in stats} == {
        ("GB-WLS", "-", "help_clicked"),
        ("GB", "-", "abandoned"),
    }


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (./run tests installs it as root)")
def test_warning_page_in_a_real_browser(warning_server: Server, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    engine = open_database(f"sqlite:///{tmp_path / 'service.db'}")
    flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"]  # fmt: skip
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
            page = browser.new_page(viewport={"width": 800, "height": 900})
            # The help service's own site is outside; the browser gets a stand-in for it.
            page.route(
                "https://www.stopitnow.org.uk/**",
                lambda route: route.fulfill(body="<h1>Stop It Now</h1>", content_type="text/html"),
            )
            for region, helpline, tel in (
                ("US", "1-888-773-8368", "tel:18887738368"),
                ("GB", "0808 1000 900", "tel:08081000900"),
            ):
                page.goto(f"{warning_server.url}/warning?region={region}&lang=en")
                assert page.locator("html").get_attribute("lang") == "en"
                assert "illegal" in page.locator("h1").inner_text()
                call = page.get_by_role("link", name=f"Call {helpline}")
                assert call.count() == 1
                href = call.get_attribute("href")
                assert href is not None
                answer = page.request.get(f"{warning_server.url}{href}", max_redirects=0)
                assert answer.status == 303 and answer.headers["location"] == tel
                page.keyboard.press("Tab")  # keyboard users reach the help first
                focused = page.evaluate("document.activeElement.getAttribute('href')")
                assert focused.startswith("/warning/help/")
                page.screenshot(path=str(tmp_path / f"warning-{region}.png"), full_page=True)
            before = deter_counters(engine).get(("GB", "-", "help_clicked"), 0)
            page.get_by_role("link", name="Visit the Stop It Now UK and Ireland website").click()
            page.wait_for_url("https://www.stopitnow.org.uk/**")
            assert page.locator("h1").inner_text() == "Stop It Now"
            assert deter_counters(engine)[("GB", "-", "help_clicked")] == before + 1
            browser.close()
    finally:
        engine.dispose()
    assert (tmp_path / "warning-GB.png").stat().st_size > 10_000
