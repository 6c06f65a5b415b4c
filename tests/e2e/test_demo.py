"""The installed entry point end to end: ``python -m childsafe demo`` scans
a benign case on embedded defaults, writes owner-only files whatever the
caller's umask, and runs again from scratch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import cli_environment, run_cli

import childsafe
from childsafe.demo import DEMO_MARKER
from childsafe.store import head_revision


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The environment of a demo run, and what ``demo --json`` printed."""
    env = cli_environment(tmp_path_factory.mktemp("demo") / "home")
    result = run_cli(["demo", "--json"], env, timeout=300)
    assert result.returncode == 0, result.stderr
    return {"env": env, **json.loads(result.stdout)}


def _items(demo: dict[str, Any]) -> dict[str, dict[str, Any]]:
    report = json.loads((Path(demo["out"]) / "report.json").read_text())
    return {item["path"]: item for item in report["items"]}


def test_the_demo_uses_a_sqlite_file(demo: dict[str, Any]) -> None:
    assert demo["database"].startswith("sqlite:///")


def test_the_demo_finds_its_known_pictures_and_video(demo: dict[str, Any]) -> None:
    assert demo["summary"]["matched_files"] == 6
    assert demo["summary"]["by_category"] == {
        "A": {"files": 2, "unique": 2},
        "B": {"files": 3, "unique": 3},
        "C": {"files": 1, "unique": 1},
    }
    assert demo["summary"]["videos_by_category"] == {"B": {"files": 1, "unique": 1}}


def test_the_demos_unknown_video_has_a_contact_sheet_and_the_known_one_none(demo: dict[str, Any]) -> None:
    items = _items(demo)
    [match] = items["camera/VID_0001.avi"]["matches"]  # re-encoded copy of the known video
    assert match["signal"] == "vpdq" and match["query_percent"] >= 80.0
    sheets = sorted(path.name for path in (Path(demo["out"]) / "contact-sheets").iterdir())
    assert sheets == [items["camera/VID_0002.mp4"]["id"] + ".jpg"]


def test_the_demo_finds_edited_copies_misnamed_and_in_nested_archives(demo: dict[str, Any]) -> None:
    items = _items(demo)
    assert items["downloads/budget.xlsx"]["category"] == "A"  # an edited copy with a misleading name
    assert {m["transform"] for m in items["downloads/mirror.png"]["matches"]} == {"flipy"}
    assert items["backup/phone-2025.tar.gz!/photos.zip!/holiday/day1.jpg"]["category"] == "B"
    assert items["downloads/broken.jpg"]["error"]


def test_what_the_script_writes_is_its_owners_only_whatever_the_umask(demo: dict[str, Any]) -> None:
    database = Path(demo["database"].removeprefix("sqlite:///"))
    for written in (database, Path(demo["out"]) / "report.json", Path(demo["out"]) / "manifest.json"):
        assert written.stat().st_mode & 0o077 == 0, f"{written} is readable by others"
    assert (Path(demo["folder"]) / DEMO_MARKER).is_file()


def test_the_demo_runs_again_from_scratch(demo: dict[str, Any]) -> None:
    human = run_cli(["demo"], demo["env"], timeout=300)  # the folder is the demo's own: replaced
    assert human.returncode == 0 and "report.html" in human.stdout


def test_the_script_prints_its_version(demo: dict[str, Any]) -> None:
    version = run_cli(["version", "--json"], demo["env"])
    assert json.loads(version.stdout) == {"name": "childsafe", "version": childsafe.__version__}


def test_the_script_upgrades_the_database_to_the_newest_migration(demo: dict[str, Any]) -> None:
    upgraded = run_cli(["db", "upgrade", "--json"], demo["env"])
    assert json.loads(upgraded.stdout)["revision"] == head_revision()
