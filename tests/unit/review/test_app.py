"""The review web app in-process (``childsafe/review/app.py``) over a real
scanned case of benign photos and a video: a one-time login, 403 without it,
only reduced grey previews unless a reveal (audited, per item) is asked,
groups graded at once and undone, and a strict Content-Security-Policy."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import skimage.data
from builders import panning_frames, video_of
from PIL import Image
from support import InProcessApp, invoke

from childsafe.config import Settings
from childsafe.review import GradeBook
from childsafe.review.app import SESSION_COOKIE, ReviewSession, create_review_app
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
    assert "Reviewing for 0 minutes; 0 of 3 groups graded" in first and 'role="alert"' not in first
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
