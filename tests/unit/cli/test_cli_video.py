"""``childsafe hash`` of videos, in-process: a video's line has its vPDQ
summary (frames hashed and a digest), pictures' lines are unchanged, and
``--vpdq-out`` writes each video's frame hashes in Meta's text format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import skimage.data
from builders import panning_frames, video_of
from PIL import Image
from support import invoke

from childsafe.signals.vpdq import parse_vpdq, vpdq_digest


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("videos") / "input"
    for folder, seed in (("a", 0), ("b", 1)):  # two videos of the same name
        (root / folder).mkdir(parents=True)
        (root / folder / "clip.mp4").write_bytes(video_of(panning_frames(60, seed=seed), 25))
    Image.fromarray(skimage.data.coffee()).save(root / "coffee.jpg", quality=90)
    (root / "notes.mp4").write_text("purple umbrella\n")
    return root


def _hashed(evidence: Path, home: Path, *extra: str) -> dict[str, dict[str, Any]]:
    result = invoke(["hash", str(evidence), "--json", *extra], home)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return {str(Path(item["path"]).relative_to(evidence)): item for item in lines}


def test_a_videos_line_has_its_vpdq_summary_and_a_pictures_line_is_unchanged(evidence: Path, tmp_path: Path) -> None:
    items = _hashed(evidence, tmp_path / "home")
    for name in ("a/clip.mp4", "b/clip.mp4"):
        assert items[name]["media_type"] == "video" and items[name]["error"] is None
        assert items[name]["vpdq"]["frames"] == 3
    assert items["a/clip.mp4"]["vpdq"]["digest"] != items["b/clip.mp4"]["vpdq"]["digest"]
    assert "vpdq" not in items["coffee.jpg"] and "vpdq" not in items["notes.mp4"]
    assert items["notes.mp4"]["mime"] == "text/plain"


def test_vpdq_out_writes_each_videos_frame_hashes(evidence: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    items = _hashed(evidence, tmp_path / "home", "--vpdq-out", str(out))
    written = sorted(path.name for path in out.iterdir())
    assert written == ["clip.mp4-2.vpdq.txt", "clip.mp4.vpdq.txt"]
    # The digest is of the frames whatever their format: Meta's text file read back gives it.
    digests = {vpdq_digest(parse_vpdq((out / name).read_text())) for name in written}
    assert digests == {items[name]["vpdq"]["digest"] for name in ("a/clip.mp4", "b/clip.mp4")}
    assert [f.frame for f in parse_vpdq((out / "clip.mp4.vpdq.txt").read_text())] == [0, 25, 50]


def test_vpdq_out_must_be_a_folder(evidence: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("")
    result = invoke(["hash", str(evidence), "--vpdq-out", str(taken)], tmp_path / "home")
    assert result.exit_code == 2
    assert f"--vpdq-out {taken} is not a folder" in result.output
