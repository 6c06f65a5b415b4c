"""``childsafe hash``, ``match`` and ``lookup`` in-process: the contract's
output, and every kind of bad input as an error line, never a stop."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import skimage.data
from builders import bomb_png
from PIL import Image
from support import DATA, invoke

from childsafe.signals import hash_file

HASH_FIELDS = ["path", "size", "media_type", "mime", "md5", "sha1", "sha256", "pdq", "pdq_quality", "error"]

#: file of the evidence -> what its error line says
EXPECTED_ERRORS = {
    "empty.jpg": "empty file",
    "notes.jpg": "named like an image but the content is text/plain",
    "truncated.jpg": "cannot decode image/jpeg",
    "random.png": "named like an image but the content is application/octet-stream",
    "bomb.png": "decompression",
    "loop-a": "symbolic link",
    "loop-b": "symbolic link",
    "up": "symbolic link",
    "pipe": "not a regular file (fifo)",
}


def _lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of good images and every kind of bad input."""
    root = tmp_path_factory.mktemp("hash") / "input"
    (root / "photos").mkdir(parents=True)
    Image.fromarray(skimage.data.coffee()).save(root / "photos" / "coffee.jpg", quality=90)
    Image.fromarray(skimage.data.chelsea()).save(root / "photos" / "chelsea.png")
    Image.fromarray(skimage.data.rocket()).save(root / "photos" / "rocket.webp")
    bad = root / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "notes.jpg").write_text("a text file named like a photo\n")
    shutil.copy(DATA / "jpeg" / "truncated.jpg", bad / "truncated.jpg")
    (bad / "random.png").write_bytes(os.urandom(4096))
    (bad / "bomb.png").write_bytes(bomb_png(30000, 30000))
    os.symlink("loop-b", bad / "loop-a")
    os.symlink("loop-a", bad / "loop-b")
    os.symlink("..", bad / "up")
    os.mkfifo(bad / "pipe")
    return root


@pytest.fixture(scope="module")
def hashed(evidence: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``hash --json`` of the evidence with one worker and with two: their exit codes and output."""
    home = tmp_path_factory.mktemp("home")
    runs = {workers: invoke(["hash", str(evidence), "--json", "--workers", workers], home) for workers in ("1", "2")}
    return {workers: (result.exit_code, result.stdout) for workers, result in runs.items()}


def _items(hashed: dict[str, Any], workers: str) -> dict[str, dict[str, Any]]:
    exit_code, stdout = hashed[workers]
    assert exit_code == 0
    return {Path(str(item["path"])).name: item for item in _lines(stdout)}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_bad_input_still_exits_0_with_a_line_for_every_file(hashed: dict[str, Any], workers: str) -> None:
    items = _items(hashed, workers)
    assert len(items) == 12
    assert all(list(item) == HASH_FIELDS for item in items.values())


@pytest.mark.parametrize("name", ["coffee.jpg", "chelsea.png", "rocket.webp"])
def test_good_images_are_hashed(hashed: dict[str, Any], name: str) -> None:
    item = _items(hashed, "2")[name]
    assert (item["error"], item["media_type"]) == (None, "image")
    assert int(item["pdq_quality"]) >= 50


@pytest.mark.parametrize(("name", "fragment"), EXPECTED_ERRORS.items(), ids=list(EXPECTED_ERRORS))
def test_each_bad_input_is_a_one_line_error(hashed: dict[str, Any], name: str, fragment: str) -> None:
    error = _items(hashed, "2")[name]["error"]
    assert isinstance(error, str) and fragment in error and "\n" not in error


@pytest.mark.parametrize("name", ["empty.jpg", "notes.jpg", "truncated.jpg", "random.png", "bomb.png"])
def test_digests_are_there_whenever_the_bytes_could_be_read(hashed: dict[str, Any], evidence: Path, name: str) -> None:
    expected = hashlib.sha256((evidence / "bad" / name).read_bytes()).hexdigest()
    assert _items(hashed, "2")[name]["sha256"] == expected


def test_output_follows_walk_order_with_several_workers(hashed: dict[str, Any]) -> None:
    assert hashed["1"][1] == hashed["2"][1]
    paths = [item["path"] for item in _lines(hashed["1"][1])]
    assert paths == sorted(paths)


def test_explicit_symlink_loop_and_missing_path_are_error_lines(tmp_path: Path, home: Path) -> None:
    os.symlink(tmp_path / "self", tmp_path / "self")
    good = tmp_path / "good.png"
    Image.fromarray(skimage.data.coffee()).save(good)
    result = invoke(["hash", str(tmp_path / "self"), str(tmp_path / "gone.jpg"), str(good), "--json"], home)
    assert result.exit_code == 0
    items = _lines(result.stdout)
    assert "symbolic link loop" in str(items[0]["error"])
    assert "no such file" in str(items[1]["error"])
    assert items[2]["error"] is None and items[2]["pdq"]


def test_human_output_is_a_line_a_file(evidence: Path, home: Path) -> None:
    human = invoke(["hash", str(evidence / "photos")], home)
    assert human.exit_code == 0
    assert len(human.stdout.splitlines()) == 3 and "sha1=" in human.stdout


def test_zero_workers_is_a_usage_error(evidence: Path, home: Path) -> None:
    bad = invoke(["hash", str(evidence), "--workers", "0"], home)
    assert bad.exit_code == 2 and bad.stdout == ""


def test_no_path_is_a_usage_error(home: Path) -> None:
    assert invoke(["hash"], home).exit_code == 2


# ---------------------------------------------------------------- match and lookup

#: a turned copy of the reference bridge photo -> the transform a match reports
DIHEDRAL = {
    "bridge-2-rotate-90.jpg": "rot270",
    "bridge-3-rotate-180.jpg": "rot180",
    "bridge-4-rotate-270.jpg": "rot90",
    "bridge-5-flipx.jpg": "flipx",
    "bridge-6-flipy.jpg": "flipy",
    "bridge-7-flip-plus-1.jpg": "flip+1",
    "bridge-8-flip-minus-1.jpg": "flip-1",
}


@pytest.fixture(scope="module")
def bridge_bank(reference_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose bank "police" holds the reference bridge photo (category A)."""
    home = tmp_path_factory.mktemp("home")
    assert invoke(["bank", "create", "police", "--scheme", "uk"], home).exit_code == 0
    original = reference_dir / "dih" / "bridge-1-original.jpg"
    added = invoke(["bank", "add", "police", str(original), "--category", "A", "--json"], home)
    assert json.loads(added.stdout) == {"bank": "police", "added": 1, "rejected": 0}
    return home


@pytest.fixture(scope="module")
def matched(bridge_bank: Path, reference_dir: Path) -> dict[str, dict[str, Any]]:
    """``match --json`` of the folder of turned copies, by file name."""
    result = invoke(["match", str(reference_dir / "dih"), "--json"], bridge_bank)
    assert result.exit_code == 0, result.output
    return {Path(item["path"]).name: item for item in _lines(result.stdout)}


def test_match_finds_the_original_by_every_signal(matched: dict[str, dict[str, Any]]) -> None:
    original = matched["bridge-1-original.jpg"]["matches"]
    assert {m["signal"] for m in original} == {"md5", "sha1", "sha256", "pdq"}
    assert all(m["transform"] == "none" and m["category"] == "A" for m in original)


@pytest.mark.parametrize(("name", "transform"), DIHEDRAL.items(), ids=list(DIHEDRAL.values()))
def test_match_finds_each_turned_copy_and_says_how(
    matched: dict[str, dict[str, Any]], name: str, transform: str
) -> None:
    (match,) = matched[name]["matches"]
    assert (match["signal"], match["transform"], match["source_id"]) == ("pdq", transform, "bridge-1-original.jpg")
    assert match["distance"] <= 16
    assert set(match) == {"bank", "entry_id", "source_id", "signal", "value", "distance", "category", "transform"}


def test_adding_to_a_missing_bank_is_exit_2(home: Path) -> None:
    added = invoke(["bank", "add", "nobody", str(DATA / "png" / "p0.png")], home)
    assert added.exit_code == 2 and "no bank called 'nobody'" in added.stderr


def test_lookup_reads_stdin_and_answers_in_order(bridge_bank: Path, reference_dir: Path) -> None:
    original = hash_file(reference_dir / "dih" / "bridge-1-original.jpg")
    queries = [f"md5:{'0' * 32}", f"sha1:{original.sha1}", f"pdq:{original.pdq}", f"MD5:{(original.md5 or '').upper()}"]
    result = invoke(["lookup", "--json"], bridge_bank, stdin="\n".join(queries) + "\n")
    assert result.exit_code == 0, result.output
    lines = _lines(result.stdout)
    assert [line["query"] for line in lines] == queries
    assert [len(line["matches"]) for line in lines] == [0, 1, 1, 1]


def test_lookup_of_a_bad_value_is_one_error_line_and_exit_2(home: Path) -> None:
    bad = invoke(["lookup", "pdq:xyz"], home)
    assert bad.exit_code == 2 and "64 hexadecimal" in bad.stderr and bad.stderr.count("\n") == 1


def test_lookup_of_an_unknown_signal_is_exit_2(home: Path) -> None:
    unknown = invoke(["lookup", "phash:00"], home)
    assert unknown.exit_code == 2 and "unknown signal" in unknown.stderr
