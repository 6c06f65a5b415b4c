"""PDQ agrees with Meta's reference on the public reference images."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from childsafe.media import MediaLimits, decode_small_rgb
from childsafe.signals import PDQ_MATCH_THRESHOLD, PDQ_MIN_QUALITY, hash_file, pdq_dihedral_hashes, pdq_distance


def _expected(reference_dir: Path) -> list[tuple[str, str]]:
    with open(reference_dir / "expected.csv", newline="") as handle:
        return [(row["file"], row["pdq"]) for row in csv.DictReader(handle)]


def test_every_good_image_is_within_16_bits_and_the_mean_within_6(reference_dir: Path) -> None:
    distances = []
    for name, expected in _expected(reference_dir):
        result = hash_file(reference_dir / name)
        assert result.error is None, name
        assert result.pdq is not None
        if result.pdq_quality is not None and result.pdq_quality >= PDQ_MIN_QUALITY:
            distance = pdq_distance(result.pdq, expected)
            assert distance <= 16, f"{name}: {distance} bits from the reference"
            distances.append(distance)
    assert len(distances) >= 20
    assert sum(distances) / len(distances) <= 6


def test_low_quality_image_reports_its_low_quality(reference_dir: Path) -> None:
    result = hash_file(reference_dir / "misc" / "small.jpg")
    assert result.pdq_quality is not None and result.pdq_quality < PDQ_MIN_QUALITY


def test_every_bridge_edit_matches_the_original(reference_dir: Path) -> None:
    original = hash_file(reference_dir / "bridge-mods" / "aaa-orig.jpg").pdq
    assert original is not None
    edits = sorted((reference_dir / "bridge-mods").iterdir())
    assert len(edits) == 12
    for edit in edits:
        pdq = hash_file(edit).pdq
        assert pdq is not None
        assert pdq_distance(pdq, original) <= PDQ_MATCH_THRESHOLD, edit.name


def test_every_mode_file_hashes_close_to_the_original(reference_dir: Path) -> None:
    folder = reference_dir / "modes"
    original = hash_file(folder / "original.jpg").pdq
    assert original is not None
    files = sorted(folder.iterdir())
    assert len(files) >= 14
    for path in files:
        result = hash_file(path)
        assert result.error is None, f"{path.name}: {result.error}"
        assert result.pdq is not None
        assert pdq_distance(result.pdq, original) <= PDQ_MATCH_THRESHOLD, path.name


DIHEDRAL_FILES = {
    "rot90": "bridge-2-rotate-90.jpg",
    "rot180": "bridge-3-rotate-180.jpg",
    "rot270": "bridge-4-rotate-270.jpg",
    "flipx": "bridge-5-flipx.jpg",
    "flipy": "bridge-6-flipy.jpg",
    "flip+1": "bridge-7-flip-plus-1.jpg",
    "flip-1": "bridge-8-flip-minus-1.jpg",
}


@pytest.mark.parametrize("transform", sorted(DIHEDRAL_FILES))
def test_each_turned_copy_matches_the_originals_variant(reference_dir: Path, transform: str) -> None:
    folder = reference_dir / "dih"
    image = decode_small_rgb((folder / "bridge-1-original.jpg").read_bytes(), "image/jpeg", MediaLimits())
    variants = pdq_dihedral_hashes(image)
    turned = hash_file(folder / DIHEDRAL_FILES[transform]).pdq
    assert turned is not None
    distances = {name: pdq_distance(h.hex, turned) for name, h in variants.items()}
    # The right variant matches closely, and is the closest of the eight.
    assert distances[transform] <= 16
    assert distances[transform] == min(distances.values())


def test_dihedral_original_equals_the_plain_hash(reference_dir: Path) -> None:
    path = reference_dir / "dih" / "bridge-1-original.jpg"
    result = hash_file(path, dihedral=True)
    assert result.pdq_variants is not None
    assert result.pdq_variants["none"] == result.pdq
    from childsafe.signals import DIHEDRAL_TRANSFORMS

    assert len({result.pdq_variants[name] for name in DIHEDRAL_TRANSFORMS}) == 8  # besides derived cuts (derived.py)
