"""``childsafe hash`` end to end: the SPEC output, and every kind of bad input."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import skimage.data
from builders import bomb_png
from PIL import Image
from support import run_cli

from childsafe.media import FoundFile, MediaLimits
from childsafe.signals import hash_file, hash_found_file

HASH_FIELDS = ["path", "size", "media_type", "mime", "md5", "sha1", "sha256", "pdq", "pdq_quality", "error"]


@pytest.fixture
def evidence(tmp_path: Path) -> Path:
    """A folder of good images and every kind of bad input the issue names."""
    root = tmp_path / "input"
    (root / "photos").mkdir(parents=True)
    Image.fromarray(skimage.data.coffee()).save(root / "photos" / "coffee.jpg", quality=90)
    Image.fromarray(skimage.data.chelsea()).save(root / "photos" / "chelsea.png")
    Image.fromarray(skimage.data.rocket()).save(root / "photos" / "rocket.webp")
    bad = root / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "notes.jpg").write_text("a text file named like a photo\n")
    jpeg = (root / "photos" / "coffee.jpg").read_bytes()
    (bad / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (bad / "random.png").write_bytes(os.urandom(4096))
    (bad / "bomb.png").write_bytes(bomb_png(30000, 30000))
    os.symlink("loop-b", bad / "loop-a")
    os.symlink("loop-a", bad / "loop-b")
    os.symlink("..", bad / "up")
    os.mkfifo(bad / "pipe")
    return root


def _lines(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_bad_input_gives_error_lines_exit_0_and_the_other_results(
    evidence: Path, cli_env: dict[str, str], workers: str
) -> None:
    result = run_cli(["hash", str(evidence), "--json", "--workers", workers], cli_env)
    assert result.returncode == 0, result.stderr
    items = {Path(str(item["path"])).name: item for item in _lines(result.stdout)}
    for item in items.values():
        assert list(item) == HASH_FIELDS
    for good in ("coffee.jpg", "chelsea.png", "rocket.webp"):
        assert items[good]["error"] is None
        assert items[good]["media_type"] == "image"
        assert items[good]["pdq_quality"] == 100 or int(items[good]["pdq_quality"]) >= 50  # type: ignore[arg-type]
    expected_errors = {
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
    for name, fragment in expected_errors.items():
        error = items[name]["error"]
        assert isinstance(error, str) and fragment in error, (name, error)
        assert "\n" not in error
    # Digests are there whenever the bytes could be read.
    for name in ("empty.jpg", "notes.jpg", "truncated.jpg", "random.png", "bomb.png"):
        assert items[name]["sha256"] == hashlib.sha256((evidence / "bad" / name).read_bytes()).hexdigest()
    assert len(items) == 12


def test_output_follows_walk_order_with_several_workers(evidence: Path, cli_env: dict[str, str]) -> None:
    one = run_cli(["hash", str(evidence), "--json", "--workers", "1"], cli_env)
    two = run_cli(["hash", str(evidence), "--json", "--workers", "2"], cli_env)
    assert one.stdout == two.stdout
    paths = [item["path"] for item in _lines(one.stdout)]
    assert paths == sorted(paths)


def test_explicit_symlink_loop_and_missing_path_are_error_lines(tmp_path: Path, cli_env: dict[str, str]) -> None:
    os.symlink(tmp_path / "self", tmp_path / "self")
    good = tmp_path / "good.png"
    Image.fromarray(skimage.data.coffee()).save(good)
    result = run_cli(["hash", str(tmp_path / "self"), str(tmp_path / "gone.jpg"), str(good), "--json"], cli_env)
    assert result.returncode == 0
    items = _lines(result.stdout)
    assert "symbolic link loop" in str(items[0]["error"])
    assert "no such file" in str(items[1]["error"])
    assert items[2]["error"] is None and items[2]["pdq"]


def test_file_that_vanishes_or_cannot_be_read_mid_run(tmp_path: Path) -> None:
    path = tmp_path / "soon-gone.jpg"
    Image.fromarray(skimage.data.coffee()).save(path)
    found = FoundFile(str(path), path.stat().st_size)  # walked, then deleted
    path.unlink()
    vanished = hash_found_file(found, MediaLimits())
    assert vanished.error == "cannot read: no such file (moved or deleted?)"
    # /proc/self/mem cannot be read from offset 0: a real read error, even for root.
    unreadable = hash_file("/proc/self/mem")
    assert unreadable.error is not None and unreadable.error.startswith("cannot read:")
    assert unreadable.sha1 is None


def test_digests_are_exact_and_the_type_comes_from_bytes(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # several read chunks
    path = tmp_path / "blob.jpg.bin"
    path.write_bytes(data)
    result = hash_file(path)
    assert result.md5 == hashlib.md5(data).hexdigest()
    assert result.sha1 == hashlib.sha1(data).hexdigest()
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert (result.size, result.media_type, result.error) == (len(data), "other", None)


def test_image_over_the_decode_size_limit_is_digested_not_decoded(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.fromarray(skimage.data.coffee()).save(path)
    result = hash_file(path, MediaLimits(max_decode_bytes=1000))
    assert result.sha1 == hashlib.sha1(path.read_bytes()).hexdigest()
    assert result.pdq is None and result.error is not None and "decode limit" in result.error


def test_human_output_and_usage_errors(evidence: Path, cli_env: dict[str, str]) -> None:
    human = run_cli(["hash", str(evidence / "photos")], cli_env)
    assert human.returncode == 0
    assert len(human.stdout.splitlines()) == 3 and "sha1=" in human.stdout
    bad = run_cli(["hash", str(evidence), "--workers", "0"], cli_env)
    assert bad.returncode == 2
    assert bad.stdout == ""
    missing = run_cli(["hash"], cli_env)
    assert missing.returncode == 2
