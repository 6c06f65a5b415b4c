"""The review app in a real browser (Debian's Chromium through Playwright),
served by the real ``childsafe review`` command over a scanned case of benign
photos: the one-time login link, only reduced grey previews on the page and
on the wire, grading a group by keyboard and undoing it, an audited reveal,
names for every control in the accessibility tree, and a screenshot."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import skimage.data
from PIL import Image
from support import free_port, run_cli

from childsafe.config import Settings
from childsafe.review import GradeBook
from childsafe.store import audit_events, open_database

CHROMIUM = shutil.which("chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip


def _login_link(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if "/login?token=" in line:
            return line.strip()
        if not line and process.poll() is not None:
            break
    raise AssertionError("childsafe review printed no login link")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (./run tests installs it as root)")
def test_a_reviewer_grades_by_keyboard_sees_only_previews_and_a_reveal_is_audited(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    from playwright.sync_api import Response, sync_playwright

    evidence, out = tmp_path / "evidence", tmp_path / "case"
    evidence.mkdir()
    originals = {}
    for name in ("chelsea", "rocket", "astronaut"):
        path = evidence / f"{name}.jpg"
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(path, quality=90)
        originals[name] = path.read_bytes()
    assert run_cli(["bank", "create", "known", "--scheme", "uk"], cli_env).returncode == 0
    assert run_cli(["scan", str(evidence), "--case", "OP-BROWSER-1", "--out", str(out)], cli_env).returncode == 0
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "childsafe", "review", str(out), "--port", str(port), "--reviewer", "pc-smith"],
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    engine = open_database(Settings.from_env(cli_env).database_url)
    try:
        link = _login_link(process)
        assert link.startswith(f"http://127.0.0.1:{port}/login?token=")
        bodies: list[tuple[str, str, bytes]] = []  # url, type, body
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 900, "height": 1200})

            def keep(response: Response) -> None:
                if response.request.method == "GET" and response.status == 200:
                    bodies.append((response.url, response.headers.get("content-type", ""), response.body()))

            page.on("response", keep)
            assert page.request.get(f"http://127.0.0.1:{port}/").status == 403  # not before the link
            page.goto(link)
            assert page.locator("section.group").count() == 3
            page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
            page.screenshot(path=str(tmp_path / "review-queue.png"), full_page=True)
            # Only PNG previews came over the wire, none of them an original.
            pictures = [body for _, kind, body in bodies if kind.startswith("image/")]
            assert len(pictures) == 3 and all(body.startswith(b"\x89PNG") for body in pictures)
            assert all(Image.open(io.BytesIO(body)).mode == "L" for body in pictures)
            assert not any(original in body for _, _, body in bodies for original in originals.values())
            # Every control and picture has a name a screen reader can say (the browser's accessibility tree).
            tree = page.locator("body").aria_snapshot()
            roles = [line.strip() for line in tree.splitlines() if line.strip().startswith(("- button", "- img"))]
            assert len(roles) == 3 * 6 + 2  # a picture, 4 grades and a reveal a group; undo and export
            assert all('"' in line for line in roles), [line for line in roles if '"' not in line]
            # Grade the first group by keyboard: focus its first button, press 2 (B).
            page.locator("section.group").first.locator("button").first.focus()
            with page.expect_navigation():
                page.keyboard.press("2")
            assert page.locator("section.group").first.locator(".grade").inner_text() == "Grade: B"
            with GradeBook(out) as book:
                assert [g.category for g in book.grades().values()] == ["B"]
            with page.expect_navigation():
                page.keyboard.press("u")  # undo
            assert page.locator("section.group").first.locator(".grade").inner_text() == "Grade: not graded"
            # A reveal: audited, and then the colour preview of that item only.
            first = page.locator("section.group").first
            source = first.locator("img").get_attribute("src")
            assert source is not None and source.endswith("?mode=blurred")
            revealed_url = f"http://127.0.0.1:{port}{source.replace('mode=blurred', 'mode=revealed')}"
            assert page.request.get(revealed_url).status == 403
            before = len(audit_events(engine, "review.reveal"))
            with page.expect_navigation():
                first.get_by_role("button", name="Reveal (audited)").click()
            shown = page.request.get(revealed_url)
            assert shown.status == 200 and Image.open(io.BytesIO(shown.body())).mode == "RGB"
            assert len(audit_events(engine, "review.reveal")) == before + 1
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
        engine.dispose()
    assert (tmp_path / "review-queue.png").stat().st_size > 10_000
