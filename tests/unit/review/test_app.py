"""The review web app in-process (``childsafe/review/app.py``) over a real
scanned case of benign photos and a video: a one-time login, 403 without it,
only reduced grey previews unless a reveal (audited, per item) is asked,
groups graded at once and undone, and a strict Content-Security-Policy."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import skimage.data
from builders import panning_frames, video_of
from PIL import Image
from support import InProcessApp, invoke

from childsafe.config import Settings
from childsafe.errors import UsageError
from childsafe.review import GradeBook
from childsafe.review.app import BREAK_MINUTES, SESSION_COOKIE, ReviewSession, create_review_app
from childsafe.store import audit_events, open_database


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("review-app")
    home, evidence, out = root / "home", root / "evidence", root / "case"
    evidence.mkdir()
    for name in ("coffee", "chelsea", "rocket"):
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(evidence / f"{name}.jpg", quality=90)
    Image.fromarray(skimage.data.chelsea()).resize((300, 200)).save(evidence / "chelsea-small.png")  # a near copy
    (evidence / "clip.mp4").write_bytes(video_of(panning_frames(50, seed=3), 25))
    for args in (["bank", "create", "known", "--scheme", "uk"], ["bank", "add", "known", str(evidence / "coffee.jpg")]):
        assert invoke(args, home).exit_code == 0
    done = invoke(["scan", str(evidence), "--case", "OP-APP-1", "--out", str(out), "--workers", "1"], home)
    assert done.exit_code == 0, done.output
    return {"home": home, "out": out, "evidence": evidence}


@pytest.fixture
def app(case: dict[str, Any]) -> Iterator[tuple[InProcessApp, ReviewSession]]:
    settings = Settings.from_env({"CHILDSAFE_HOME": str(case["home"])})
    engine = open_database(settings.database_url)
    session = ReviewSession(case["out"], "pc-smith", engine, settings)
    session.load()
    client = InProcessApp(create_review_app(session))
    try:
        yield client, session
    finally:
        client.close()
        engine.dispose()


def _login(client: InProcessApp, session: ReviewSession) -> None:
    token = session.login_token
    answer = client.request("GET", f"/login?token={token}")
    assert answer.status_code == 303 and SESSION_COOKIE in answer.headers["set-cookie"]
    assert (
        "httponly" in answer.headers["set-cookie"].lower() and "samesite=strict" in answer.headers["set-cookie"].lower()
    )
    assert client.request("GET", f"/login?token={token}").status_code == 403  # spent


def test_nothing_is_served_without_the_one_time_login(app: tuple[InProcessApp, ReviewSession]) -> None:
    client, session = app
    some = next(iter(session.items))
    for method, path in (("GET", "/"), ("GET", f"/preview/{some}"), ("POST", f"/reveal/{some}"), ("POST", "/undo"),
                         ("GET", "/static/review.js")):  # fmt: skip
        assert client.request(method, path).status_code == 403, path
    assert client.request("GET", "/login?token=wrong").status_code == 403
    _login(client, session)
    page = client.request("GET", "/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]


def test_the_queue_shows_groups_and_only_reduced_grey_previews(app: tuple[InProcessApp, ReviewSession]) -> None:
    client, session = app
    _login(client, session)
    page = client.request("GET", "/").text
    # chelsea and its near copy are one group; rocket and the video their own: 3 groups of 4 items.
    assert (len(session.groups), len(session.items)) == (3, 4)
    assert page.count('<section class="group"') == 3 and "data:" not in page and "http" not in page
    for item_id, item in session.items.items():
        answer = client.request("GET", f"/preview/{item_id}")
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        shown = Image.open(io.BytesIO(answer.content))
        assert shown.mode == "L" and max(shown.size) <= 320, item.label
        original = (session.case_out.parent / "evidence" / item.label).read_bytes()
        assert answer.content != original and original not in answer.content


def test_a_reveal_is_per_item_and_audited(app: tuple[InProcessApp, ReviewSession]) -> None:
    client, session = app
    _login(client, session)
    item_id = next(i for i, item in session.items.items() if item.label == "rocket.jpg")
    assert client.request("GET", f"/preview/{item_id}?mode=revealed").status_code == 403
    before = len(audit_events(session.engine, "review.reveal"))
    assert client.request("POST", f"/reveal/{item_id}").status_code == 303
    shown = client.request("GET", f"/preview/{item_id}?mode=revealed")
    assert shown.status_code == 200 and Image.open(io.BytesIO(shown.content)).mode == "RGB"
    events = audit_events(session.engine, "review.reveal")
    assert len(events) == before + 1 and events[-1].actor == "pc-smith" and events[-1].detail["item"] == item_id
    other = next(i for i, item in session.items.items() if item.label == "chelsea.jpg")
    assert client.request("GET", f"/preview/{other}?mode=revealed").status_code == 403  # that item only


def test_a_group_is_graded_at_once_and_undone(app: tuple[InProcessApp, ReviewSession]) -> None:
    client, session = app
    _login(client, session)
    group = next(g for g in session.groups if len(g.item_ids) == 2)
    graded = client.request("POST", "/grade", data={"group": group.id, "category": "B"})
    assert graded.status_code == 303
    with GradeBook(session.case_out) as book:
        assert {item: g.category for item, g in book.grades().items()} == dict.fromkeys(group.item_ids, "B")
    assert "Grade: B" in client.request("GET", "/").text
    assert client.request("POST", "/grade", data={"group": group.id, "category": "Z"}).status_code == 422
    assert client.request("POST", "/grade", data={"group": "nope", "category": "B"}).status_code == 404
    assert client.request("POST", "/undo").status_code == 303
    with GradeBook(session.case_out) as book:
        assert book.grades() == {}


def test_the_queue_comes_in_pages_with_the_session_time_and_a_break_prompt(
    app: tuple[InProcessApp, ReviewSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, session = app
    _login(client, session)
    monkeypatch.setattr("childsafe.review.app.PAGE_GROUPS", 2)
    first, second = client.request("GET", "/").text, client.request("GET", "/?page=2").text
    assert first.count('<section class="group"') == 2 and second.count('<section class="group"') == 1
    assert "Page 1 of 2" in first and 'href="/?page=2&amp;mode=blurred"' in first and "Previous page" in second
    assert client.request("GET", "/?page=3").status_code == 404
    assert "Reviewing for under a minute; 0 of 3 groups graded" in first and 'role="alert"' not in first
    session.break_minutes = 0  # the time has come
    assert "take a break" in client.request("GET", "/").text


def test_a_second_reviewer_confirms_an_a_grade_and_the_grades_are_exported(
    app: tuple[InProcessApp, ReviewSession], case: dict[str, Any]
) -> None:
    client, session = app
    _login(client, session)
    group = next(g for g in session.groups if session.items[g.representative].label == "rocket.jpg")
    assert client.request("POST", "/grade", data={"group": group.id, "category": "A"}).status_code == 303
    assert "Confirm A (a second reviewer; graded by pc-smith)" in client.request("GET", "/").text
    assert client.request("POST", "/confirm", data={"group": group.id}).status_code == 409  # not by the grader
    second = ReviewSession(case["out"], "pc-jones", session.engine, session.settings)
    second.load()
    other = InProcessApp(create_review_app(second))
    try:
        _login(other, second)
        assert other.request("POST", "/confirm", data={"group": group.id}).status_code == 303
    finally:
        other.close()
    with GradeBook(session.case_out) as book:
        assert book.grades()[group.representative].confirmed_by == "pc-jones"
    exported = client.request("POST", "/export", data={"bank": "graded-here"})
    assert exported.status_code == 200 and "Bank graded-here: 1 added" in exported.text
    report = json.loads((session.case_out / "report.json").read_text())
    rocket = next(item for item in report["items"] if item["path"] == "rocket.jpg")
    assert rocket["grade"]["category"] == "A" and report["summary"]["graded_by_category"] == {
        "A": {"files": 1, "unique": 1}
    }
    with GradeBook(session.case_out) as book:  # leave the case as the other tests expect it
        book.undo("pc-jones")
        book.undo("pc-smith")


def test_a_reveal_says_until_when_and_ends_on_the_page_too(app: tuple[InProcessApp, ReviewSession]) -> None:
    client, session = app
    _login(client, session)
    session.reveal_seconds = 1.5
    group = next(g for g in session.groups if session.items[g.representative].label == "rocket.jpg")
    place = session.groups.index(group) + 1
    answer = client.request("POST", f"/reveal/{group.representative}")
    assert answer.status_code == 303 and answer.headers["location"] == f"/?page=1&mode=blurred&at={place}"
    page = client.request("GET", answer.headers["location"]).text
    section = page.split(f'id="group-{place}"', 1)[1].split("</section>", 1)[0]
    until = re.search(r"Revealed in colour until (\d\d:\d\d:\d\d) \(2 s, audited\)", section)
    assert (
        until is not None
        and abs(
            time.mktime(time.strptime(time.strftime("%Y-%m-%d ") + until[1], "%Y-%m-%d %H:%M:%S")) - (time.time() + 1.5)
        )
        < 3
    )
    assert f"/preview/{group.representative}?mode=revealed" in section and "data-reveal-seconds=" in section
    assert page.count("Revealed in colour") == 1  # that group only
    time.sleep(1.6)  # the reveal runs out: the page shows the blurred preview again, and says nothing of a reveal
    page = client.request("GET", "/").text
    assert "Revealed in colour" not in page and "mode=revealed" not in page
    assert client.request("GET", f"/preview/{group.representative}?mode=revealed").status_code == 403
    # The next reveal forgets the ended one: a long session's reveals do not pile up in memory.
    other = next(g for g in session.groups if g is not group)
    assert client.request("POST", f"/reveal/{other.representative}").status_code == 303
    assert [item for _, item in session.reveals] == [other.representative]


def test_after_a_grade_the_focus_is_on_the_next_group(app: tuple[InProcessApp, ReviewSession]) -> None:
    client, session = app
    _login(client, session)
    first = session.groups[0]
    graded = client.request("POST", "/grade", data={"group": first.id, "category": "C", "mode": "edges"})
    assert graded.headers["location"] == "/?page=1&mode=edges&at=2"  # the next group, in the same rendering
    page = client.request("GET", graded.headers["location"]).text
    assert page.count(" autofocus") == 1
    assert " autofocus" in page.split('id="group-2"', 1)[1].split("</section>", 1)[0]
    undone = client.request("POST", "/undo", data={"mode": "edges"})
    assert undone.headers["location"] == "/?page=1&mode=edges&at=1"  # back to the group the undo touched
    with GradeBook(session.case_out) as book:
        assert book.grades() == {}


def test_errors_are_pages_to_read_and_the_style_sheet_needs_no_session(
    app: tuple[InProcessApp, ReviewSession],
) -> None:
    client, session = app
    stranger = client.request("GET", "/")
    assert stranger.status_code == 403 and stranger.headers["content-type"].startswith("text/html")
    assert '<html lang="en">' in stranger.text and "<h1>403 Forbidden</h1>" in stranger.text
    assert "follow the login link the review command printed." in stranger.text
    assert client.request("GET", "/static/review.css").status_code == 200  # the error page's style
    assert client.request("GET", "/static/review.js").status_code == 403
    _login(client, session)
    missing = client.request("GET", "/?page=99")
    assert missing.status_code == 404 and "<h1>404 Not Found</h1>" in missing.text and 'href="/"' in missing.text
    unnamed = client.request("POST", "/grade", data={"group": session.groups[0].id})
    assert unnamed.status_code == 422 and "has a wrong, category" in unnamed.text
    assert "script-src 'self'" in unnamed.headers["content-security-policy"]


def test_the_break_time_is_a_setting_and_above_zero(case: dict[str, Any], tmp_path: Any) -> None:
    assert Settings.from_env({"CHILDSAFE_HOME": str(case["home"])}).review_break_minutes == BREAK_MINUTES == 45
    settings = Settings.from_env({"CHILDSAFE_HOME": str(case["home"]), "CHILDSAFE_REVIEW_BREAK_MINUTES": "0.5"})
    assert settings.review_break_minutes == 0.5
    with pytest.raises(UsageError, match="CHILDSAFE_REVIEW_BREAK_MINUTES must be above 0"):
        Settings.from_env({"CHILDSAFE_REVIEW_BREAK_MINUTES": "0"})
    engine = open_database(settings.database_url)
    try:
        with pytest.raises(UsageError) as refused:
            ReviewSession(case["out"], "pc-smith", engine, settings, break_minutes=0)
        assert refused.value.field == "break_minutes" and str(refused.value) == "break_minutes must be above 0"
    finally:
        engine.dispose()
    done = invoke(["review", str(case["out"]), "--break-minutes", "-1"], case["home"])
    assert done.exit_code == 2 and "--break-minutes must be above 0" in done.output
