"""Grouping a scan's unmatched pictures and videos into near-duplicates
(``childsafe.review.groups``): pictures made here from scikit-image photos
and generated content, hashed as a scan hashes them; synthetic hashes where
a test needs exact distances; and ``load_review_items`` on a real scan."""

from __future__ import annotations

import hashlib
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
import skimage.data
from builders import flat_png, panning_frames, video_of, write_file, zip_of
from PIL import Image, ImageEnhance
from support import invoke, random_hex

from childsafe.errors import UsageError
from childsafe.review import REVIEW_GROUP_DISTANCE, ReviewGroup, ReviewItem, group_items, load_review_items
from childsafe.review import groups as groups_module
from childsafe.signals.hashing import hash_file
from childsafe.signals.pdq import PDQ_MATCH_THRESHOLD, PDQ_MIN_QUALITY, pdq_distance


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


@pytest.fixture
def hashed(tmp_path: Path) -> Any:
    """Writes a picture's bytes as a file and hashes it as a scan does: its ReviewItem (id = label = name)."""

    def item(name: str, data: bytes) -> ReviewItem:
        path = tmp_path / "pictures" / name
        write_file(path, data)
        hashes = hash_file(path)
        return ReviewItem(name, name, hashes.media_type, hashes.sha1, hashes.pdq, hashes.pdq_quality)

    return item


def _members(groups: list[ReviewGroup]) -> list[list[str]]:
    return [group.item_ids for group in groups]


def _flipped(value: str, bits: list[int]) -> str:
    number = int(value, 16)
    for bit in bits:
        number ^= 1 << bit
    return f"{number:064x}"


def _synthetic(name: str, pdq: str | None, quality: int | None = 100, sha1: str | None = None) -> ReviewItem:
    """A picture named ``name`` (id and label) with these hashes; its SHA-1 made from its name unless given."""
    return ReviewItem(name, name, "image", sha1 or hashlib.sha1(name.encode()).hexdigest(), pdq, quality)


# --------------------------------------------------------------------------
# Grouping pictures


def test_edited_copies_of_a_photo_are_one_group_and_other_photos_their_own(hashed: Any) -> None:
    coffee = _photo("coffee")
    items = [
        hashed("coffee.jpg", _jpeg(coffee)),
        hashed("edits/coffee-small.jpg", _jpeg(coffee.resize((300, 200), Image.Resampling.LANCZOS), 70)),
        hashed("edits/coffee.png", _png(coffee)),
        hashed("edits/coffee-bright.jpg", _jpeg(ImageEnhance.Brightness(coffee).enhance(1.25))),
        hashed("other/astronaut.jpg", _jpeg(_photo("astronaut"))),
        hashed("other/chelsea.png", _png(_photo("chelsea"))),
        hashed("other/rocket.jpg", _jpeg(_photo("rocket"))),
    ]
    assert len({item.sha1 for item in items}) == len(items)  # every file differs: only PDQ can group them
    assert _members(group_items(items)) == [
        ["coffee.jpg", "edits/coffee-bright.jpg", "edits/coffee-small.jpg", "edits/coffee.png"],
        ["other/astronaut.jpg"],
        ["other/chelsea.png"],
        ["other/rocket.jpg"],
    ]


def test_copies_without_a_pdq_hash_are_grouped_by_sha1(hashed: Any) -> None:
    chelsea = _jpeg(_photo("chelsea"))
    damaged = chelsea[: len(chelsea) // 3]
    items = [
        hashed("a/damaged.jpg", damaged),
        hashed("b/same-damaged.jpg", damaged),
        hashed("c/other-damaged.jpg", chelsea[: len(chelsea) // 4]),
    ]
    assert all(item.pdq is None and item.sha1 for item in items)  # damaged: no picture, so no PDQ hash
    assert _members(group_items(items)) == [["a/damaged.jpg", "b/same-damaged.jpg"], ["c/other-damaged.jpg"]]


def test_flat_pictures_are_not_linked_by_their_low_quality_hashes(hashed: Any) -> None:
    flat = flat_png(64, 48)
    items = [
        hashed("flat.png", flat),
        hashed("flat-copy.png", flat),  # the same bytes: linked by SHA-1
        hashed("flat-wide.png", flat_png(96, 48)),  # the same colour, other bytes
        hashed("flat-small.png", flat_png(32, 32)),
    ]
    assert all(item.pdq is not None and (item.pdq_quality or 0) < PDQ_MIN_QUALITY for item in items)
    flat_pdq = items[0].pdq
    assert flat_pdq is not None and all(pdq_distance(flat_pdq, item.pdq or "") <= 31 for item in items)
    assert _members(group_items(items)) == [["flat-copy.png", "flat.png"], ["flat-small.png"], ["flat-wide.png"]]


def test_the_quality_floor_and_the_distance_are_inclusive() -> None:
    base = random_hex(random.Random(7), 64)
    at_distance = _flipped(base, list(range(REVIEW_GROUP_DISTANCE)))
    beyond = _flipped(base, list(range(100, 100 + REVIEW_GROUP_DISTANCE + 1)))
    assert REVIEW_GROUP_DISTANCE == PDQ_MATCH_THRESHOLD == 31
    assert _members(group_items([_synthetic("a", base), _synthetic("b", at_distance)])) == [["a", "b"]]
    assert _members(group_items([_synthetic("a", base), _synthetic("b", beyond)])) == [["a"], ["b"]]
    assert _members(group_items([_synthetic("a", base), _synthetic("b", beyond)], distance=32)) == [["a", "b"]]
    assert _members(group_items([_synthetic("a", base, 50), _synthetic("b", base, 50)])) == [["a", "b"]]
    for low in (49, None):
        assert _members(group_items([_synthetic("a", base, low), _synthetic("b", base)])) == [["a"], ["b"]]
    assert _members(group_items([_synthetic("a", base), _synthetic("b", base)], distance=0)) == [["a", "b"]]
    for bad in (-1, 64):
        with pytest.raises(UsageError, match="distance must be between 0 and 63"):
            group_items([], distance=bad)


def test_links_chain_into_one_group(hashed: Any) -> None:
    """A turned 1 degree is near the photo and near it turned 2 degrees, which is not near
    the photo: with the middle one, the three are one group; without it, two."""
    coffee = _photo("coffee")
    photo, one, two = (hashed(f"coffee-{angle}.jpg", _jpeg(coffee.rotate(angle))) for angle in (0, 1, 2))
    assert pdq_distance(photo.pdq or "", one.pdq or "") <= 31 and pdq_distance(one.pdq or "", two.pdq or "") <= 31
    assert pdq_distance(photo.pdq or "", two.pdq or "") > 31
    assert _members(group_items([photo, one, two])) == [["coffee-0.jpg", "coffee-1.jpg", "coffee-2.jpg"]]
    assert _members(group_items([photo, two])) == [["coffee-0.jpg"], ["coffee-2.jpg"]]


def test_long_chains_and_links_of_every_kind_make_groups() -> None:
    """Two chains of 40 hashes, each 20 bits from the last (the ends far apart),
    videos with the same vPDQ digest; then an item with the SHA-1 of one of
    the first chain and a PDQ hash near one of the second joins the two chains."""
    rng = random.Random(11)
    chains = []
    for _ in range(2):
        chain = [random_hex(rng, 64)]
        for _ in range(39):
            chain.append(_flipped(chain[-1], rng.sample(range(256), 20)))
        chains.append(chain)
    assert pdq_distance(chains[0][0], chains[0][-1]) > 100
    x = [_synthetic(f"x/{k:02d}", value) for k, value in enumerate(reversed(chains[0]))]
    y = [_synthetic(f"y/{k:02d}", value) for k, value in enumerate(chains[1])]
    videos = [
        ReviewItem("v/clip", "v/clip", "video", "1" * 40, None, None, vpdq_digest="d" * 64),
        ReviewItem("v/clip-copy", "v/clip-copy", "video", "2" * 40, None, None, vpdq_digest="d" * 64),
        ReviewItem("v/other", "v/other", "video", "3" * 40, None, None, vpdq_digest="e" * 64),
        ReviewItem("v/unhashed", "v/unhashed", "video", "4" * 40, None, None),
        ReviewItem("v/unhashed-2", "v/unhashed-2", "video", "5" * 40, None, None),
    ]
    assert _members(group_items(y + videos + x)) == [
        ["v/clip", "v/clip-copy"],
        ["v/other"],
        ["v/unhashed"],
        ["v/unhashed-2"],
        [item.id for item in x],
        [item.id for item in y],
    ]
    bridge = _synthetic("w/bridge", _flipped(chains[1][10], [0, 1, 2]), sha1=x[5].sha1)
    assert _members(group_items(y + videos + x + [bridge]))[-1] == ["w/bridge", *(item.id for item in x + y)]


def _components_by_every_pair(items: list[ReviewItem], distance: int = 31) -> list[tuple[str, ...]]:
    """The groups as a comparison of every pair finds them (slow: for checking), each sorted by id."""
    linked = {item.id: {item.id} for item in items}
    for k, a in enumerate(items):
        for b in items[k + 1 :]:
            near = a.links_by_pdq() and b.links_by_pdq() and pdq_distance(a.pdq or "", b.pdq or "") <= distance
            if near or (a.sha1 is not None and a.sha1 == b.sha1):
                joined = linked[a.id] | linked[b.id]
                for member in joined:
                    linked[member] = joined
    return sorted({tuple(sorted(group)) for group in linked.values()})


@pytest.mark.parametrize("batch", [groups_module.QUERY_BATCH, 5])
def test_the_groups_are_every_pairs_components_in_any_input_order(batch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Also with 5 hashes searched at once, so that every batch's edges show."""
    monkeypatch.setattr(groups_module, "QUERY_BATCH", batch)
    rng = random.Random(3)
    items: list[ReviewItem] = []
    for cluster in range(400):  # more distinct hashes than one batch of queries (QUERY_BATCH)
        base = random_hex(rng, 64)
        for copy in range(rng.randint(1, 5)):
            bits = rng.sample(range(256), rng.randint(0, 30))
            label = f"case/{rng.getrandbits(32):08x}-{cluster}-{copy}.jpg"
            # ids unrelated to the label order: a group's id must still be its first label's
            sha1 = items[rng.randrange(len(items))].sha1 if items and rng.random() < 0.02 else random_hex(rng, 40)
            items.append(ReviewItem(f"id-{len(items):04d}", label, "image", sha1, _flipped(base, bits),
                                    rng.choice([100, 90, 60, 50, 49, 30, None])))  # fmt: skip
    expected = group_items(items)
    assert sorted(tuple(sorted(group.item_ids)) for group in expected) == _components_by_every_pair(items)
    assert 350 <= len(expected) < len(items) - 100
    label_of = {item.id: item.label for item in items}
    firsts = [label_of[group.item_ids[0]] for group in expected]
    assert firsts == sorted(firsts)
    for group in expected:
        labels = [label_of[i] for i in group.item_ids]
        assert labels == sorted(labels) and group.id == group.item_ids[0]
    for seed in range(5):
        shuffled = items[:]
        random.Random(seed).shuffle(shuffled)
        assert group_items(shuffled) == expected


def test_the_representative_is_the_best_quality_then_the_first_in_label_order() -> None:
    base = random_hex(random.Random(5), 64)
    near = [_flipped(base, [k]) for k in range(4)]
    items = [
        _synthetic("d", near[0], 90),
        _synthetic("b", near[1], 80, sha1="1" * 40),
        _synthetic("c", near[2], 90),
        _synthetic("a", near[3], 40, sha1="1" * 40),  # low quality: linked by its SHA-1 only
        _synthetic("f", None, None, sha1="f" * 40),
        _synthetic("e", None, None, sha1="f" * 40),
    ]
    assert group_items(items) == [
        ReviewGroup(id="a", item_ids=["a", "b", "c", "d"], representative="c"),
        ReviewGroup(id="e", item_ids=["e", "f"], representative="e"),
    ]


def test_a_photos_representative_is_its_clearer_copy(hashed: Any) -> None:
    coffee = _photo("coffee")
    faded = ImageEnhance.Contrast(coffee).enhance(0.2)
    items = [hashed("a-faded.jpg", _jpeg(faded)), hashed("b-original.jpg", _jpeg(coffee))]
    assert PDQ_MIN_QUALITY <= (items[0].pdq_quality or 0) < (items[1].pdq_quality or 0)
    [group] = group_items(items)
    assert (group.id, group.representative) == ("a-faded.jpg", "b-original.jpg")


def test_a_pdq_hash_that_is_not_64_hex_characters_is_refused() -> None:
    with pytest.raises(ValueError, match="64 hexadecimal"):
        _synthetic("a", "ab" * 31)
    with pytest.raises(ValueError, match="same id"):
        group_items([_synthetic("a", None), ReviewItem("a", "z", "image", None, None, None)])
    assert group_items([]) == []


# --------------------------------------------------------------------------
# Loading the items of a scan


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small case scanned in-process, with a bank that knows the coffee photo and one video."""
    root = tmp_path_factory.mktemp("review-scan")
    home, evidence, known = root / "home", root / "evidence", root / "known"
    coffee, chelsea, astronaut = _photo("coffee"), _photo("chelsea"), _photo("astronaut")
    write_file(known / "coffee.jpg", _jpeg(coffee))
    write_file(known / "known-clip.mp4", video_of(panning_frames(50, seed=1), 25))
    write_file(evidence / "a" / "coffee.jpg", _jpeg(coffee))  # an exact copy: matched
    write_file(evidence / "a" / "coffee-small.jpg", _jpeg(coffee.resize((300, 200)), 70))  # matched by PDQ
    write_file(evidence / "a" / "known-clip.mp4", (known / "known-clip.mp4").read_bytes())  # a known video
    write_file(evidence / "b" / "chelsea.png", _png(chelsea))
    write_file(evidence / "c" / "chelsea-copy.png", _png(chelsea))
    write_file(evidence / "b" / "astronaut.jpg", _jpeg(astronaut))
    write_file(evidence / "b" / "astronaut-bright.jpg", _jpeg(ImageEnhance.Brightness(astronaut).enhance(1.2)))
    write_file(evidence / "b" / "truncated.jpg", _jpeg(chelsea)[:5000])
    write_file(evidence / "notes.txt", b"meeting notes\n")
    write_file(evidence / "clip.mp4", video_of(panning_frames(50, seed=0), 25))
    write_file(evidence / "box.zip", zip_of([("rocket.jpg", _jpeg(_photo("rocket"))), ("readme.txt", b"hi\n")]))
    for args in (
        ["bank", "create", "police", "--scheme", "uk"],
        ["bank", "add", "police", str(known / "coffee.jpg"), "--category", "A"],
        ["bank", "add", "police", str(known / "known-clip.mp4"), "--category", "B"],
    ):
        done = invoke(args, home)
        assert done.exit_code == 0, done.output
    out = root / "case-out"
    done = invoke(["scan", str(evidence), "--case", "OP-REVIEW-1", "--out", str(out), "--workers", "1"], home)
    assert done.exit_code == 0, done.output
    report = json.loads((out / "report.json").read_text())
    return {"out": out, "report": report, "items": {item["path"]: item for item in report["items"]}}


UNMATCHED = [
    "b/astronaut-bright.jpg",
    "b/astronaut.jpg",
    "b/chelsea.png",
    "b/truncated.jpg",
    "box.zip!/rocket.jpg",
    "c/chelsea-copy.png",
    "clip.mp4",
]


def test_only_the_unmatched_pictures_and_videos_of_a_scan_are_loaded(scanned: dict[str, Any]) -> None:
    items = scanned["items"]
    assert items["a/coffee.jpg"]["matches"] and items["a/coffee-small.jpg"]["matches"]
    assert items["a/known-clip.mp4"]["matches"] and items["a/known-clip.mp4"]["media_type"] == "video"
    assert items["notes.txt"]["media_type"] == "other" and items["b/truncated.jpg"]["error"]
    loaded = list(load_review_items(scanned["out"]))
    assert [item.label for item in loaded] == UNMATCHED
    assert scanned["report"]["summary"]["unmatched_images"] == sum(item.media_type == "image" for item in loaded)
    for item in loaded:
        reported = items[item.label]
        assert (item.id, item.media_type, item.sha1, item.pdq, item.pdq_quality) == (
            reported["id"], reported["media_type"], reported["sha1"], reported["pdq"], reported["pdq_quality"],
        )  # fmt: skip
    clip = loaded[-1]
    assert clip.media_type == "video" and clip.vpdq_digest == items["clip.mp4"]["vpdq"]["digest"] is not None
    assert all(item.vpdq_digest is None for item in loaded[:-1])


def test_a_scans_unmatched_items_group_into_near_duplicates(scanned: dict[str, Any]) -> None:
    id_of = {path: item["id"] for path, item in scanned["items"].items()}
    groups = group_items(load_review_items(scanned["out"]))
    assert _members(groups) == [
        [id_of["b/astronaut-bright.jpg"], id_of["b/astronaut.jpg"]],
        [id_of["b/chelsea.png"], id_of["c/chelsea-copy.png"]],
        [id_of["b/truncated.jpg"]],
        [id_of["box.zip!/rocket.jpg"]],
        [id_of["clip.mp4"]],
    ]


def test_a_folder_without_a_report_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as raised:
        load_review_items(tmp_path)  # raised at once, before any item is asked for
    assert str(raised.value) == f"no report.json in {tmp_path}: is this a scan's output folder?"
    (tmp_path / "report.json").mkdir()
    with pytest.raises(UsageError, match="no report.json in"):
        load_review_items(tmp_path)


def test_a_damaged_report_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text('{"case_id": "X", "summary": {}}')
    with pytest.raises(UsageError, match='cannot be read: it has no "items" list'):
        list(load_review_items(tmp_path))
    (tmp_path / "report.json").write_bytes(b'{"case_id": "X", "items": [\xff\xfe')
    with pytest.raises(UsageError, match="cannot be read .*scan the evidence again"):
        list(load_review_items(tmp_path))
    (tmp_path / "report.json").write_text('{"items": [{"path": "a.jpg", "media_type": "image", "matches": []}]}')
    with pytest.raises(UsageError, match="without its id"):
        list(load_review_items(tmp_path))


def test_a_video_with_no_frame_hashed_is_linked_by_its_sha1_only(tmp_path: Path) -> None:
    empty_digest = {"frames": 0, "digest": "e" * 64}  # the digest of no frames: the same for every such video
    videos = [
        {"id": str(k), "path": f"v{k}.mp4", "media_type": "video", "sha1": str(k) * 40, "pdq": None,
         "pdq_quality": None, "matches": [], "error": "damaged", "vpdq": empty_digest}
        for k in (1, 2)
    ]  # fmt: skip
    (tmp_path / "report.json").write_text(json.dumps({"case_id": "X", "items": videos}))
    loaded = list(load_review_items(tmp_path))
    assert [item.vpdq_digest for item in loaded] == [None, None]
    assert _members(group_items(loaded)) == [["1"], ["2"]]


def test_the_report_is_read_item_by_item(tmp_path: Path) -> None:
    """The first items come before the rest is read: a report cut short after them
    still gives them, then says it is damaged."""
    item = {"id": "1", "path": "a.jpg", "media_type": "image", "sha1": "a" * 40, "pdq": None, "pdq_quality": None,
            "matches": [], "error": None}  # fmt: skip
    text = '{"case_id": "X", "items": [' + json.dumps(item) + ", " + json.dumps(item | {"id": "2"})
    (tmp_path / "report.json").write_text(text + ', {"id": "3", "pa')
    items = load_review_items(tmp_path)
    assert [next(items).id, next(items).id] == ["1", "2"]
    with pytest.raises(UsageError, match="cannot be read"):
        next(items)
