"""The one detection use case: ``prepare_query`` makes every step up front,
``match_prepared`` finds what the on-demand cascade finds; which steps run
is one typed setting."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import skimage.data
from PIL import Image, ImageOps

from childsafe.banks.catalogue import create_bank
from childsafe.banks.entries import add_files_to_bank
from childsafe.detect import (
    PDQ_STEP,
    PreparedQuery,
    QueryStep,
    match_prepared,
    parse_query_steps,
    prepare_query,
    unanswered_steps,
    useful_steps,
)
from childsafe.errors import UsageError
from childsafe.index import Matcher
from childsafe.index.matcher import Match
from childsafe.media import MediaLimits
from childsafe.signals.hashing import hash_file
from childsafe.store import open_database


def _edits(image: Image.Image) -> dict[str, Image.Image]:
    width, height = image.size
    return {
        "as is": image,
        "mirrored": ImageOps.mirror(image),
        "bordered": ImageOps.expand(image, border=60, fill=(40, 120, 200)),
        "cropped off-centre": image.crop((20, 70, round(width * 0.78), round(height * 0.94))),
        "another picture": Image.fromarray(skimage.data.rocket()),
    }


def test_prepared_queries_find_what_the_cascade_finds(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'detect.db'}")
    try:
        original = tmp_path / "coffee.png"
        Image.fromarray(skimage.data.coffee()).save(original)
        create_bank(engine, "known")
        add_files_to_bank(engine, "known", [original], MediaLimits(), source_id="coffee")
        matcher = Matcher(engine, tmp_path / "index")
        matcher.sync()
        limits = MediaLimits()
        found = {}
        for name, image in _edits(Image.open(original).convert("RGB")).items():
            path = tmp_path / f"{name}.jpg"
            image.save(path, "JPEG", quality=90)
            on_demand = matcher.match_hashes(hash_file(path, limits, dihedral=True))
            prepared = prepare_query(path.read_bytes(), path.name, limits, useful_steps(matcher, limits.query_variants))
            prepared = pickle.loads(pickle.dumps(prepared))  # it travels between processes
            assert match_prepared(matcher, prepared) == on_demand, name
            assert prepared.hashes.picture is None and prepared.incomplete == ()
            found[name] = [m.transform for m in on_demand if m.signal == "pdq"]
        assert found == {
            "as is": ["none"],
            "mirrored": ["flipy"],
            "bordered": ["trim"],
            "cropped off-centre": ["variant:keypoints"],
            "another picture": [],
        }
    finally:
        engine.dispose()


def test_steps_are_one_typed_setting() -> None:
    assert parse_query_steps("grid, trim,none") == (QueryStep.TRIM, QueryStep.GRID)
    assert parse_query_steps("none") == ()
    with pytest.raises(UsageError, match="unknown bogus"):
        parse_query_steps("trim,bogus")
    limits = MediaLimits.from_env({"CHILDSAFE_QUERY_VARIANTS": "dihedral,keypoints"})
    assert limits.query_variants == (QueryStep.DIHEDRAL, QueryStep.KEYPOINTS)
    assert MediaLimits().query_variants == tuple(QueryStep)


def test_only_steps_that_did_not_run_and_could_matter_are_named(tmp_path: Path) -> None:
    prepared = prepare_query(b"\x89PNG\r\n\x1a\n damaged", "x.png", MediaLimits())
    assert prepared.incomplete == () and prepared.hashes.error  # damaged: nothing would have found it
    exact = Match("known", "1", None, "md5", "0" * 32, 0, None, "none")
    stopped = PreparedQuery(prepared.hashes, incomplete=(PDQ_STEP, QueryStep.TRIM))
    assert unanswered_steps(stopped, []) == (PDQ_STEP, QueryStep.TRIM)
    assert unanswered_steps(stopped, [exact]) == (PDQ_STEP, QueryStep.TRIM)
    late = PreparedQuery(prepared.hashes, incomplete=(QueryStep.FULL,))
    assert unanswered_steps(late, [exact]) == ()  # the full-resolution hash is looked for only if nothing matched
    assert unanswered_steps(late, []) == (QueryStep.FULL,)
