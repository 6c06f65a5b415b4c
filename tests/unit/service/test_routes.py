"""The HTTP API in-process: the app ``childsafe serve`` runs, built by
``create_app`` on a SQLite file and driven through ``httpx.ASGITransport``
(with the app's start-up and shut-down: ``support.InProcessApp``), one
behaviour a test. What needs a real server process (the request log, keys revoked
from another process, several workers, body caps on a raw socket, rate
limits, PostgreSQL) is in tests/e2e/test_service_server.py."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from builders import panning_frames, video_of
from support import InProcessApp, error_message

from childsafe.actions.keys import create_api_key
from childsafe.config import ServiceOptions, Settings
from childsafe.service.app import create_app
from childsafe.service.context import SYNC_SECONDS
from childsafe.signals.vpdq import format_vpdq, vpdq_hash
from childsafe.store import audit_events, open_database

ORIGINAL = "dih/bridge-1-original.jpg"
ROTATED = "dih/bridge-2-rotate-90.jpg"
ROLES = ("admin", "curator", "matcher", "deter")


class Api:
    """The app in-process, and a request as each role (or none, or a given key)."""

    def __init__(self, client: InProcessApp, keys: dict[str, str], home: Path) -> None:
        self.client, self.keys, self.home = client, keys, home

    def as_(self, role: str | None, key: str | None = None) -> _As:
        key = key or (self.keys[role] if role else None)
        return _As(self.client, {"Authorization": f"Bearer {key}"} if key else {})


class _As:
    def __init__(self, client: InProcessApp, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request("GET", path, **{**kwargs, "headers": self.headers | kwargs.get("headers", {})})

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request("POST", path, **{**kwargs, "headers": self.headers | kwargs.get("headers", {})})

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request("DELETE", path, **{**kwargs, "headers": self.headers | kwargs.get("headers", {})})


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("service") / "home"
    environ = {"CHILDSAFE_HOME": str(home), "CHILDSAFE_MAX_UPLOAD_BYTES": "2000000"}
    settings, options = Settings.from_env(environ), ServiceOptions.from_env(environ)
    engine = open_database(settings.database_url)
    keys = {role: create_api_key(engine, f"{role}-key", role) for role in ROLES}
    engine.dispose()
    app = InProcessApp(create_app(settings, options))
    try:
        yield Api(app, keys, home)
    finally:
        app.close()


@pytest.fixture(scope="module")
def original(reference_dir: Path) -> bytes:
    return (reference_dir / ORIGINAL).read_bytes()


@pytest.fixture(scope="module")
def police(api: Api, original: bytes) -> dict[str, Any]:
    """The bank "police" holding the reference photo by PDQ (A, vic-1) and md5 (A): its hashes and entry ids."""
    curator = api.as_("curator")
    created = curator.post("/v1/banks", json={"name": "police", "scheme": "uk", "pdq_threshold": 31})
    assert created.status_code == 201, created.text
    hashed = api.as_("matcher").post("/v1/hash", files={"file": ("bridge.jpg", original)}).json()
    entries = [{"signal": "pdq", "value": hashed["pdq"], "category": "A", "source_id": "vic-1"},
               {"signal": "md5", "value": hashed["md5"].upper(), "category": "A"}]  # fmt: skip
    added = curator.post("/v1/banks/police/entries", json={"entries": entries}).json()
    return {"hashed": hashed, "added": added}


# ---------------------------------------------------------------- public routes and roles


def test_health_is_public(api: Api) -> None:
    health = api.as_(None).get("/v1/health").json()
    assert health["status"] == "ok" and isinstance(health["index"], dict)


def test_the_openapi_description_and_docs_are_public(api: Api) -> None:
    assert api.as_(None).get("/openapi.json").json()["info"]["title"] == "childsafe"
    assert api.as_(None).get("/docs").status_code == 200


def test_no_key_is_401(api: Api, original: bytes) -> None:
    error_message(api.as_(None).post("/v1/hash", files={"file": ("a.jpg", original)}), 401)


def test_an_unknown_key_is_401(api: Api) -> None:
    error_message(api.as_(None, key="cs_not-a-key").get("/v1/banks"), 401)


def test_a_matcher_may_not_list_banks(api: Api) -> None:
    error_message(api.as_("matcher").get("/v1/banks"), 403)


def test_a_deter_key_may_not_hash(api: Api, original: bytes) -> None:
    error_message(api.as_("deter").post("/v1/hash", files={"file": ("a.jpg", original)}), 403)


# ---------------------------------------------------------------- banks


def test_a_created_bank_is_listed_with_its_entries(api: Api, police: dict[str, Any]) -> None:
    curator = api.as_("curator")
    assert police["added"]["added"] == 2 and len(police["added"]["ids"]) == 2
    assert curator.get("/v1/banks/police").json()["entries"] == 2
    assert "police" in [b["name"] for b in curator.get("/v1/banks").json()]


@pytest.mark.parametrize(
    ("body", "status"),
    [({"name": "police"}, 409), ({"name": "x", "scheme": "eu"}, 422), ({"name": "x", "pdq_threshold": 99}, 422)],
    ids=["name taken", "unknown scheme", "threshold over 63"],
)
def test_a_bank_that_cannot_be_made_is_an_error(
    api: Api, police: dict[str, Any], body: dict[str, Any], status: int
) -> None:
    error_message(api.as_("curator").post("/v1/banks", json=body), status)


def test_a_bad_entry_is_422(api: Api, police: dict[str, Any]) -> None:
    error_message(
        api.as_("curator").post("/v1/banks/police/entries", json={"entries": [{"signal": "md5", "value": "xyz"}]}), 422
    )


def test_a_missing_bank_is_404(api: Api) -> None:
    curator = api.as_("curator")
    error_message(
        curator.post("/v1/banks/nobody/entries", json={"entries": [{"signal": "md5", "value": "0" * 32}]}), 404
    )
    error_message(curator.get("/v1/banks/nobody"), 404)


def test_an_imported_file_is_counted(api: Api) -> None:
    curator = api.as_("curator")
    assert curator.post("/v1/banks", json={"name": "imported", "scheme": "uk"}).status_code == 201
    imported = curator.post(
        "/v1/banks/imported/import",
        files={"file": ("list.txt", f"sha1 {'ab' * 20} B\n".encode())},
        data={"format": "text"},
    )
    assert imported.json() == {"bank": "imported", "added": 1, "updated": 0, "removed": 0, "rejected": 0}


def test_a_bad_import_names_file_and_line(api: Api, police: dict[str, Any]) -> None:
    failed = api.as_("curator").post("/v1/banks/police/import", files={"file": ("bad.txt", b"nonsense\n")})
    assert "bad.txt: line 1" in error_message(failed, 422)


def test_a_deleted_entry_is_matched_no_more(api: Api) -> None:
    curator, matcher = api.as_("curator"), api.as_("matcher")
    curator.post("/v1/banks", json={"name": "shrinking"})
    (entry_id,) = curator.post(
        "/v1/banks/shrinking/entries", json={"entries": [{"signal": "md5", "value": "cd" * 16}]}
    ).json()["ids"]
    assert curator.delete(f"/v1/banks/shrinking/entries/{entry_id}").json()["deleted"] is True
    assert matcher.get("/v1/match", params={"signal": "md5", "value": "cd" * 16}).json()["matches"] == []
    error_message(curator.delete("/v1/banks/shrinking/entries/999999"), 404)


def test_an_admin_deletes_a_bank_and_its_entries_are_matched_no_more(api: Api) -> None:
    curator, matcher = api.as_("curator"), api.as_("matcher")
    curator.post("/v1/banks", json={"name": "doomed"})
    curator.post("/v1/banks/doomed/entries", json={"entries": [{"signal": "sha1", "value": "ef" * 20}]})
    assert api.as_("admin").delete("/v1/banks/doomed").json() == {"bank": "doomed", "deleted": True}
    assert matcher.get("/v1/match", params={"signal": "sha1", "value": "ef" * 20}).json()["matches"] == []


def test_changes_are_audited_with_the_key_that_made_them(api: Api) -> None:
    curator = api.as_("curator")
    curator.post("/v1/banks", json={"name": "audited"})
    (entry_id,) = curator.post(
        "/v1/banks/audited/entries", json={"entries": [{"signal": "md5", "value": "12" * 16}]}
    ).json()["ids"]
    curator.post("/v1/banks/audited/import", files={"file": ("list.txt", b"md5 " + b"34" * 16 + b"\n")})
    curator.delete(f"/v1/banks/audited/entries/{entry_id}")
    api.as_("admin").delete("/v1/banks/audited")
    engine = open_database(f"sqlite:///{api.home / 'childsafe.db'}")
    try:
        events = [(e.action, e.actor) for e in audit_events(engine) if e.detail.get("bank") == "audited"]
    finally:
        engine.dispose()
    assert events == [("bank.create", "api:curator-key"), ("bank.add", "api:curator-key"),
                      ("bank.import", "api:curator-key"), ("bank.remove", "api:curator-key"),
                      ("bank.delete", "api:admin-key")]  # fmt: skip


# ---------------------------------------------------------------- hashing and matching


def test_an_upload_is_hashed(police: dict[str, Any]) -> None:
    assert police["hashed"]["mime"] == "image/jpeg" and police["hashed"]["pdq_quality"] == 100


def test_a_turned_copy_is_matched_by_upload(api: Api, police: dict[str, Any], reference_dir: Path) -> None:
    upload = (reference_dir / ROTATED).read_bytes()
    matched = api.as_("matcher").post("/v1/match", files={"file": ("r.jpg", upload)}).json()
    assert [(m["bank"], m["signal"], m["transform"], m["category"]) for m in matched["matches"]] == [
        ("police", "pdq", "rot270", "A")
    ]
    assert matched["hash"]["path"] == "r.jpg"
    assert [(m["value"], m["source_id"]) for m in matched["matches"]] == [(None, None)]  # withheld from a matcher


def test_a_video_upload_is_matched_by_its_frames_against_an_imported_vpdq_file(api: Api) -> None:
    scene = panning_frames(100, seed=5)
    known = vpdq_hash(io.BytesIO(video_of(scene, 25)))
    curator = api.as_("curator")
    assert curator.post("/v1/banks", json={"name": "videos", "scheme": "uk"}).status_code == 201
    imported = curator.post(
        "/v1/banks/videos/import",
        files={"file": ("V7.vpdq.txt", format_vpdq(known.features).encode())},
        data={"format": "vpdq", "category": "B"},
    )
    assert imported.json()["added"] == 1
    copy = video_of(scene, 25, codec="mpeg4", container="avi", bitrate=400_000)
    answer = api.as_("curator").post("/v1/match", files={"file": ("copy.avi", copy)}).json()
    [match] = answer["matches"]
    assert (match["bank"], match["signal"], match["category"], match["source_id"]) == ("videos", "vpdq", "B", "V7")
    assert match["query_percent"] >= 80.0 and match["query_ranges"][0][0] == 0.0
    assert answer["hash"]["media_type"] == "video" and answer["hash"]["vpdq"]["frames"] == 4
    other = api.as_("matcher").post("/v1/match", files={"file": ("o.mp4", video_of(panning_frames(50, seed=6), 25))})
    assert other.json()["matches"] == []


def test_a_hash_is_matched(api: Api, police: dict[str, Any]) -> None:
    by_hash = api.as_("matcher").get("/v1/match", params={"signal": "md5", "value": police["hashed"]["md5"]}).json()
    assert by_hash["matches"][0]["entry_id"] == police["added"]["ids"][1]


def test_a_matcher_is_not_shown_the_banks_hash_or_the_suppliers_id(api: Api, police: dict[str, Any]) -> None:
    """An oracle for evasion otherwise; a curator is shown them."""
    pdq_query = {"signal": "pdq", "value": police["hashed"]["pdq"]}
    (withheld,) = api.as_("matcher").get("/v1/match", params=pdq_query).json()["matches"]
    (shown,) = api.as_("curator").get("/v1/match", params=pdq_query).json()["matches"]
    assert (withheld["value"], withheld["source_id"], withheld["category"]) == (None, None, "A")
    assert (shown["value"], shown["source_id"]) == (police["hashed"]["pdq"], "vic-1")


@pytest.mark.parametrize(
    "params",
    [{"signal": "md5", "value": "00"}, {"signal": "phash", "value": "00"}, {}],
    ids=["short", "unknown", "none"],
)
def test_a_bad_hash_query_is_422(api: Api, params: dict[str, str]) -> None:
    error_message(api.as_("matcher").get("/v1/match", params=params), 422)


def test_a_batch_is_answered_query_by_query(api: Api, police: dict[str, Any]) -> None:
    queries = [{"signal": "md5", "value": "0" * 32}, {"signal": "pdq", "value": police["hashed"]["pdq"]}]
    batch = api.as_("matcher").post("/v1/match/batch", json={"queries": queries}).json()
    assert [len(r["matches"]) for r in batch["results"]] == [0, 1]


def test_a_bad_batch_is_422(api: Api) -> None:
    matcher = api.as_("matcher")
    error_message(matcher.post("/v1/match/batch", json={"queries": [{"signal": "md5"}]}), 422)
    error_message(
        matcher.post("/v1/match/batch", content=b"{not json", headers={"content-type": "application/json"}), 422
    )


def test_an_upload_over_the_limit_is_413(api: Api) -> None:
    error_message(
        api.as_("matcher").post("/v1/hash", files={"file": ("big.jpg", b"\xff\xd8\xff" + bytes(3_000_000))}), 413
    )


def test_an_upload_in_the_wrong_shape_is_422(api: Api, original: bytes) -> None:
    matcher = api.as_("matcher")
    error_message(matcher.post("/v1/hash", files={"other": ("a.jpg", original)}), 422)
    error_message(matcher.post("/v1/hash", content=original, headers={"content-type": "image/jpeg"}), 422)


def test_an_upload_is_typed_by_its_bytes_not_its_name(api: Api) -> None:
    text = api.as_("matcher").post("/v1/hash", files={"file": ("photo.jpg", b"just text")}).json()
    assert text["media_type"] == "other" and text["error"]


# ---------------------------------------------------------------- GET /v1/match: the guard and the route


@pytest.fixture(scope="module")
def guarded(api: Api) -> str:
    """The bank "guarded": an md5 entry (A, vic-1) and a PDQ one (B, vic-2); returns the PDQ."""
    pdq = "f" * 48 + "0" * 16
    entries = [
        {"signal": "md5", "value": "ab" * 16, "category": "A", "source_id": "vic-1"},
        {"signal": "pdq", "value": pdq, "category": "B", "source_id": "vic-2"},
    ]
    curator = api.as_("curator")
    curator.post("/v1/banks", json={"name": "guarded", "scheme": "uk"})
    assert curator.post("/v1/banks/guarded/entries", json={"entries": entries}).status_code < 300
    time.sleep(2 * SYNC_SECONDS)
    return pdq


@pytest.mark.parametrize("role", ["matcher", "curator"])
def test_the_guards_answer_is_the_routes_answer(api: Api, guarded: str, role: str) -> None:
    """``GET /v1/match`` in its plain form is answered by the request guard
    (``match_hash_directly``); with an extra parameter FastAPI's route answers it."""
    client = api.as_(role)
    for signal, value in (("md5", "ab" * 16), ("pdq", guarded[:-1] + "1"), ("md5", "cd" * 16), ("MD5", "AB" * 16)):
        direct = client.get("/v1/match", params={"signal": signal, "value": value})
        routed = client.get("/v1/match", params={"signal": signal, "value": value, "via": "fastapi"})
        assert direct.status_code == routed.status_code == 200
        assert direct.json() == routed.json()
        assert direct.headers["content-type"] == routed.headers["content-type"] == "application/json"
        assert direct.headers["content-length"] == str(len(direct.content))


def test_the_guard_withholds_details_from_a_matcher_only(api: Api, guarded: str) -> None:
    query = {"signal": "md5", "value": "ab" * 16}
    found = api.as_("matcher").get("/v1/match", params=query).json()["matches"]
    assert [(m["category"], m["value"], m["source_id"]) for m in found] == [("A", None, None)]
    found = api.as_("curator").get("/v1/match", params=query).json()["matches"]
    assert [(m["category"], m["value"], m["source_id"]) for m in found] == [("A", "ab" * 16, "vic-1")]


def test_what_the_guard_declines_the_route_answers(api: Api, guarded: str) -> None:
    matcher = api.as_("matcher")
    assert "value" in error_message(matcher.get("/v1/match", params={"signal": "md5"}), 422)
    error_message(matcher.get("/v1/match", params={"signal": "md5", "value": "xyz"}), 422)
    error_message(matcher.get("/v1/match", params={"signal": "nope", "value": "ab" * 16}), 422)
    error_message(api.as_("deter").get("/v1/match", params={"signal": "md5", "value": "ab" * 16}), 403)
    error_message(api.as_(None).get("/v1/match", params={"signal": "md5", "value": "ab" * 16}), 401)


def test_of_repeated_parameters_the_last_counts(api: Api, guarded: str) -> None:
    repeated = api.as_("matcher").get("/v1/match?signal=md5&value=" + "00" * 16 + "&value=" + "ab" * 16)
    assert len(repeated.json()["matches"]) == 1
