"""A case's figures: an item's category is the most severe of its matches
(each judged in its bank's scheme), and the summary counts files and unique
contents by category. Added where a hand mutation of ``item_category`` and
``summarise`` went unnoticed (docs/testing.md)."""

from __future__ import annotations

import pytest

from childsafe.index import Match
from childsafe.signals import FileHashes
from childsafe.triage.case import UNCATEGORISED, item_category, summarise
from childsafe.triage.state import StoredItem

SCHEMES = {"police": "uk", "partner": "ncmec", "plain": "none"}


def _match(bank: str, category: str | None) -> Match:
    return Match(bank, "1", None, "md5", "0" * 32, 0, category, "original")


@pytest.mark.parametrize(
    ("categories", "expected"),
    [(["C", "A", "B"], "A"), (["B", "C"], "B"), (["C"], "C"), (["C", None], "C")],
    ids=["A of three", "B of two", "one", "with an unlabelled one"],
)
def test_an_items_category_is_the_most_severe_of_its_matches(categories: list[str | None], expected: str) -> None:
    assert item_category([_match("police", c) for c in categories], SCHEMES) == expected


def test_each_match_is_judged_in_its_banks_scheme() -> None:
    # A2 is ncmec's second label and C uk's third: the ncmec one is the more severe.
    assert item_category([_match("police", "C"), _match("partner", "A2")], SCHEMES) == "A2"


def test_an_item_with_matches_but_no_label_is_uncategorised() -> None:
    assert item_category([_match("plain", None)], SCHEMES) == UNCATEGORISED


def test_an_item_without_matches_has_no_category() -> None:
    assert item_category([], SCHEMES) is None


def _item(number: int, sha1: str | None, media_type: str = "image", error: str | None = None,
          categories: tuple[str | None, ...] = ()) -> StoredItem:  # fmt: skip
    hashes = FileHashes(
        path=f"f{number}", size=1, media_type=media_type, mime="image/jpeg", md5=None, sha1=sha1, sha256=None,  # type: ignore[arg-type]
        pdq=None, pdq_quality=None, error=error,
    )  # fmt: skip
    return StoredItem(id=f"id-{number}", position=[number], hashes=hashes, modified=None,
                      matches=[_match("police", c) for c in categories])  # fmt: skip


def test_the_summary_counts_files_and_unique_contents_by_category() -> None:
    items = [
        _item(1, "aa", categories=("B",)),
        _item(2, "aa", categories=("B",)),  # the same content again: a file, not a unique one
        _item(3, "bb", categories=("C", "A")),
        _item(4, "cc"),  # an image that matched nothing
        _item(5, None, media_type="other", error="cannot read"),
        _item(6, "dd", media_type="video"),
    ]
    assert summarise(iter(items), SCHEMES).to_dict() == {
        "files": 6,
        "images": 4,
        "videos": 1,
        "errors": 1,
        "matched_files": 3,
        "matched_unique": 2,
        "unmatched_images": 1,
        "by_category": {"A": {"files": 1, "unique": 1}, "B": {"files": 2, "unique": 1}},
        "videos_by_category": {},
        "graded_by_category": {},
    }
