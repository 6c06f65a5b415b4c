"""The demo's folder: never one it did not make (the command refuses it with
exit 2), its own replaced, an empty or new one used."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import invoke

from childsafe.demo import DEMO_MARKER, prepare_demo_folder
from childsafe.errors import UsageError


def test_the_command_refuses_a_folder_it_did_not_make_and_leaves_it(home: Path, tmp_path: Path) -> None:
    precious = tmp_path / "work"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    refused = invoke(["demo", "--out", str(precious)], home)
    assert refused.exit_code == 2
    assert refused.stderr == (
        f"childsafe: error: {precious} exists and is not empty, and no earlier demo made it; choose a new --out\n"
    )
    assert (precious / "notes.txt").read_text() == "keep me"


def test_a_file_is_not_a_demo_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="is not a folder"):
        prepare_demo_folder(tmp_path / "notes.txt")


def test_an_empty_folder_may_be_used(tmp_path: Path) -> None:
    prepare_demo_folder(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [DEMO_MARKER]


def test_the_demos_own_folder_is_replaced(tmp_path: Path) -> None:
    prepare_demo_folder(tmp_path)
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "old.json").write_text("{}")
    prepare_demo_folder(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [DEMO_MARKER]


def test_a_new_folder_is_made(tmp_path: Path) -> None:
    prepare_demo_folder(tmp_path / "new" / "demo")
    assert (tmp_path / "new" / "demo" / DEMO_MARKER).is_file()
