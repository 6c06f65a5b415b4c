"""The review app in a real browser (Debian's Chromium through Playwright),
served by the real ``childsafe review`` command over scanned cases of benign
photos: the one-time login link, only reduced grey previews on the page and
on the wire, grading a group by keyboard and undoing it, an audited reveal
that the page says lasts until when and that ends on the page too, the break
prompt after the time set, the export, the error pages, and the grade keys
of each scheme (UK, Project VIC's 0-5 as Autopsy has them, NCMEC).

Every page is checked with axe-core's rules (the copy that the
``axe-playwright-python`` package ships): no violation of impact serious or
critical. Tab reaches every control, in page order, each with a visible
focus ring. Each page is also kept as a screenshot, for a person to look at."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import skimage.data
from PIL import Image
from support import CHROMIUM, axe_checked, free_port, run_cli
from support import CHROMIUM_FLAGS as FLAGS

from childsafe.config import Settings
from childsafe.review import GradeBook
from childsafe.store import audit_events, open_database

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (./run tests installs it as root)"
)
#: The break time the first test serves with (minutes): long enough for its first page, short enough to wait out.
BREAK_MINUTES = 0.3


def _scanned_case(tmp_path: Path, cli_env: dict[str, str], scheme: str) -> tuple[dict[str, str], Path, list[bytes]]:
    """A case of three benign photos scanned against an empty bank of ``scheme``
    (in a home of its own: a case's scheme is that of the banks it met)."""
    env = {**cli_env, "CHILDSAFE_HOME": str(tmp_path / f"home-{scheme}")}
    evidence, out = tmp_path / f"evidence-{scheme}", tmp_path / f"case-{scheme}"
    evidence.mkdir()
    originals = []
    for name in ("chelsea", "rocket", "astronaut"):
        path = evidence / f"{name}.jpg"
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(path, quality=90)
        originals.append(path.read_bytes())
    assert run_cli(["bank", "create", "known", "--scheme", scheme], env).returncode == 0
    assert run_cli(["scan", str(evidence), "--case", f"OP-{scheme.upper()}-1", "--out", str(out)], env).returncode == 0
    return env, out, originals


@contextmanager
def _review_app(env: dict[str, str], out: Path, *options: str) -> Iterator[tuple[str, str]]:
    """``childsafe review`` serving ``out``: its login link and its address."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "childsafe", "review", str(out), "--port", str(port), "--reviewer", "pc-smith",
         *options],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        deadline, link = time.monotonic() + 60, ""
        while time.monotonic() < deadline and not link:
            line = process.stdout.readline()
            if "/login?token=" in line:
                link = line.strip()
            elif not line and process.poll() is not None:
                break
        assert link.startswith(f"http://127.0.0.1:{port}/login?token="), "childsafe review printed no login link"
        yield link, f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def _tab_order(page: Any) -> tuple[int, list[dict[str, Any]]]:
    """How many controls the page has, and each element Tab reaches from the
    top of the page, in order: its place among the controls, its focus ring,
    and whether it is in view."""
    controls = page.evaluate(
        """() => { const all = document.querySelectorAll('a[href], button, input:not([type=hidden])');
                  all.forEach((element, place) => { element.dataset.place = place; }); return all.length; }"""
    )
    page.evaluate("document.activeElement && document.activeElement.blur()")
    reached: list[dict[str, Any]] = []
    for _ in range(controls + 2):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """() => { const e = document.activeElement;
                       if (!e || e === document.body || e.dataset.place === undefined) { return null; }
                       const style = getComputedStyle(e), box = e.getBoundingClientRect();
                       return {place: Number(e.dataset.place), outline: style.outlineStyle,
                               width: parseFloat(style.outlineWidth),
                               seen: box.width > 0 && box.left >= 0 && box.right <= innerWidth
                                     && box.top >= 0 && box.bottom <= innerHeight}; }"""
        )
        if focused is None:
            break
        reached.append(focused)
    return controls, reached


@pytest.mark.slow
@needs_chromium
def test_a_reviewer_grades_by_keyboard_sees_only_previews_and_every_page_passes_axe(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    from playwright.sync_api import Response, sync_playwright

    env, out, originals = _scanned_case(tmp_path, cli_env, "uk")
    shots = tmp_path / "shots"
    engine = open_database(Settings.from_env(env).database_url)
    try:
        with _review_app(env, out, "--break-minutes", str(BREAK_MINUTES)) as (link, base), sync_playwright() as pw:
            started = time.monotonic()  # the app's session began before it printed its link: the break is due by then
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 900, "height": 1200})
            bodies: list[tuple[str, bytes]] = []  # type, body

            def keep(response: Response) -> None:
                if response.request.method == "GET" and response.status == 200:
                    bodies.append((response.headers.get("content-type", ""), response.body()))

            page.on("response", keep)
            assert page.request.get(f"{base}/").status == 403  # not before the link
            page.goto(link)
            groups = page.locator("section.group")
            assert groups.count() == 3
            assert page.locator(".break").count() == 0  # not yet: BREAK_MINUTES have not passed
            assert (
                page.locator(".session").inner_text().startswith("Reviewing for under a minute; 0 of 3 groups graded")
            )
            axe_checked(page, shots, "01-queue")
            # Only PNG previews came over the wire, none of them an original.
            pictures = [body for kind, body in bodies if kind.startswith("image/")]
            assert len(pictures) == 3 and all(body.startswith(b"\x89PNG") for body in pictures)
            assert all(Image.open(io.BytesIO(body)).mode == "L" for body in pictures)
            assert not any(original in body for _, body in bodies for original in originals)
            # Every control and picture has a name a screen reader can say (the browser's accessibility tree).
            tree = page.locator("body").aria_snapshot()
            roles = [line.strip() for line in tree.splitlines() if line.strip().startswith(("- button", "- img"))]
            assert len(roles) == 3 * 6 + 2  # a picture, 4 grades and a reveal a group; undo and export
            assert all('"' in line for line in roles), [line for line in roles if '"' not in line]
            assert '- button "B (key 2)"' in tree and '- button "not-indecent (key 4)"' in tree
            # Keyboard only: Tab reaches every control, in page order, each in view with a focus ring.
            controls, reached = _tab_order(page)
            assert [focused["place"] for focused in reached] == list(
                range(controls)
            ) and controls == 3 * 5 + 7  # skip link, undo, 3 renderings, bank, export
            assert all(f["outline"] != "none" and f["width"] >= 2 and f["seen"] for f in reached), reached

            # Grade the first group by keyboard: focus its first button, press 2 (B).
            groups.first.locator("button").first.focus()
            with page.expect_navigation():
                page.keyboard.press("2")
            assert groups.first.locator(".grade").inner_text() == "Grade: B"
            with GradeBook(out) as book:
                assert [g.category for g in book.grades().values()] == ["B"]
            # The page came back with the focus on the next group: the next key grades it.
            assert page.evaluate("document.activeElement.closest('.group').id") == "group-2"
            axe_checked(page, shots, "02-queue-graded")
            with page.expect_navigation():
                page.keyboard.press("u")  # undo
            assert groups.first.locator(".grade").inner_text() == "Grade: not graded"
            assert page.evaluate("document.activeElement.closest('.group').id") == "group-1"
            with page.expect_navigation():
                page.keyboard.press("u")  # nothing left to undo: a page that says so, and the way back
            assert page.locator("h1").inner_text() == "409 Conflict"
            assert "pc-smith has no change to undo." in page.locator("main").inner_text()
            axe_checked(page, shots, "03-error-nothing-to-undo")
            with page.expect_navigation():
                page.get_by_role("link", name="Back to the queue").click()

            # A reveal: audited; the page says until when, in colour; then hidden again on the page.
            page.clock.install()  # the page's own timers, run forward below
            page.reload()
            first = groups.first
            source = first.locator("img").get_attribute("src")
            assert source is not None and source.endswith("?mode=blurred")
            revealed_url = f"{base}{source.replace('mode=blurred', 'mode=revealed')}"
            assert page.request.get(revealed_url).status == 403
            before = len(audit_events(engine, "review.reveal"))
            with page.expect_navigation():
                first.get_by_role("button", name="Reveal (audited)").click()
            assert len(audit_events(engine, "review.reveal")) == before + 1
            note = first.locator(".revealed").inner_text()
            assert note.startswith("Revealed in colour until ") and "(60 s, audited)" in note, note
            until = time.strptime(note.split("until ", 1)[1][:8], "%H:%M:%S")
            wall = time.localtime(time.time() + 60)
            assert abs((until.tm_hour * 3600 + until.tm_min * 60 + until.tm_sec)
                       - (wall.tm_hour * 3600 + wall.tm_min * 60 + wall.tm_sec)) % 86_340 <= 60  # fmt: skip
            assert first.locator("img").get_attribute("src") == source.replace("mode=blurred", "mode=revealed")
            shown = page.request.get(revealed_url)
            assert shown.status == 200 and Image.open(io.BytesIO(shown.body())).mode == "RGB"
            assert groups.nth(1).locator(".revealed").count() == 0  # that item only
            axe_checked(page, shots, "04-revealed")
            page.clock.run_for(61_000)
            assert first.locator("img").get_attribute("src") == source
            assert first.locator(".revealed").inner_text() == "The reveal has ended: the preview is hidden again."
            axe_checked(page, shots, "05-reveal-ended")

            # The export: grade a group C by key, then write the reports and the bank.
            groups.first.locator("button").first.focus()
            with page.expect_navigation():
                page.keyboard.press("3")
            page.get_by_label("Bank for the graded pictures").fill("graded-here")
            with page.expect_navigation():
                page.get_by_role("button", name="Write the reports and add to the bank").click()
            assert "Bank graded-here: 1 added" in page.locator("main").inner_text()
            axe_checked(page, shots, "06-exported")

            # Errors: a page of the queue that is not there, no session, a spent login link.
            assert page.goto(f"{base}/?page=99").status == 404
            assert "the queue has pages 1 to 1." in page.locator("main").inner_text()
            axe_checked(page, shots, "07-error-404")
            stranger = browser.new_page()
            assert stranger.goto(f"{base}/").status == 403
            assert "follow the login link the review command printed." in stranger.locator("main").inner_text()
            axe_checked(stranger, shots, "08-error-403-no-session")
            assert stranger.goto(link).status == 403
            assert "this login link is spent or wrong" in stranger.locator("main").inner_text()
            axe_checked(stranger, shots, "09-login-link-spent")

            # The break: after BREAK_MINUTES the page suggests one, as an alert.
            time.sleep(max(0.0, started + BREAK_MINUTES * 60 + 0.5 - time.monotonic()))
            page.goto(f"{base}/")
            assert page.get_by_role("alert").inner_text().endswith("take a break.")
            axe_checked(page, shots, "10-break")
            # The abstract renderings, picked by their links.
            for mode in ("posterised", "edges"):
                with page.expect_navigation():
                    page.get_by_role("link", name=mode, exact=True).click()
                assert page.get_by_role("link", name=mode, exact=True).get_attribute("aria-current") == "page"
                assert all(
                    src.endswith(f"mode={mode}")
                    for src in page.locator("img").evaluate_all("i => i.map(e => e.src)")[1:]
                )
                axe_checked(page, shots, f"11-queue-{mode}")
            browser.close()
        # The next scan of the same evidence finds the picture graded C, in the bank it went to.
        again = tmp_path / "case-again"
        evidence = tmp_path / "evidence-uk"
        assert run_cli(["scan", str(evidence), "--case", "OP-UK-2", "--out", str(again)], env).returncode == 0
        items = json.loads((again / "report.json").read_text())["items"]
        matched = [item for item in items if item["matches"]]
        assert len(matched) == 1 and matched[0]["grade"] is None  # a new case: found, not graded
        assert {(match["bank"], match["category"]) for match in matched[0]["matches"]} == {("graded-here", "C")}
    finally:
        engine.dispose()


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize(
    ("scheme", "keys", "presses"),
    [
        # Project VIC as Autopsy keys it: 0-4 its categories, 5 not pertinent (not indecent).
        ("us-vics", [("0", "0"), ("1", "1"), ("2", "2"), ("3", "3"), ("4", "4"), ("5", "not-indecent")],
         [("0", "0"), ("5", "not-indecent"), ("1", "1")]),
        ("ncmec", [("1", "A1"), ("2", "A2"), ("3", "B1"), ("4", "B2"), ("5", "not-indecent")],
         [("3", "B1"), ("5", "not-indecent"), ("1", "A1")]),
    ],
)  # fmt: skip
def test_grade_buttons_and_keys_follow_the_cases_scheme(
    cli_env: dict[str, str], tmp_path: Path, scheme: str, keys: list[tuple[str, str]], presses: list[tuple[str, str]]
) -> None:
    from playwright.sync_api import sync_playwright

    env, out, _ = _scanned_case(tmp_path, cli_env, scheme)
    env["CHILDSAFE_REVIEW_BREAK_MINUTES"] = "0.0001"  # the setting, at once: the break prompt shows from the start
    with _review_app(env, out) as (link, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 900, "height": 1200})
        page.goto(link)
        assert page.get_by_role("alert").inner_text().endswith("take a break.")
        assert f"Keys {keys[0][0]} to {keys[-1][0]} grade the group" in page.locator("header").inner_text()
        groups = page.locator("section.group")
        for place in range(groups.count()):
            buttons = groups.nth(place).locator(".grades button")
            shown = [(b.get_attribute("data-key"), b.get_attribute("value")) for b in buttons.all()]
            assert shown == keys
            names = [b.inner_text() for b in buttons.all()]
            assert names == [f"{category} (key {key})" for key, category in keys]
        axe_checked(page, tmp_path / "shots", f"queue-{scheme}")
        # Grade each group by its key; each stores that key's category, and the focus goes on to the next group.
        groups.first.locator("button").first.focus()
        for place, (key, category) in enumerate(presses):
            with page.expect_navigation():
                page.keyboard.press(key)
            assert groups.nth(place).locator(".grade").inner_text() == f"Grade: {category}"
        with GradeBook(out) as book:
            assert book.scheme == scheme
            grades = book.grades()
        # A group's id is its first item's: that item holds the category its key gave.
        group_ids = [groups.nth(place).locator("form.grades input[name=group]").get_attribute("value")
                     for place in range(len(presses))]  # fmt: skip
        assert [grades[str(group_id)].category for group_id in group_ids] == [category for _, category in presses]
        axe_checked(page, tmp_path / "shots", f"queue-{scheme}-graded")
        browser.close()
