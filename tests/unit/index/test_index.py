"""The match index: exact against brute force, in step with the database."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from childsafe.banks import NewEntry, add_entries, create_bank, delete_bank, remove_entry
from childsafe.index import DigestIndex, Matcher, PdqIndex, index_root
from childsafe.index.pdq_index import SIDE_LIST_LIMIT
from childsafe.signals import hash_file
from childsafe.store import audit_events, open_database


def _brute(
    hashes: np.ndarray, ids: np.ndarray, alive: np.ndarray, query: np.ndarray, radius: int
) -> set[tuple[int, int]]:
    xor = (hashes ^ query).view(np.uint8)
    distances = np.unpackbits(xor, axis=1).sum(axis=1)
    return {(int(i), int(d)) for i, d, a in zip(ids, distances, alive, strict=True) if a and d <= radius}


def _flip(rng: np.random.Generator, words: np.ndarray, bits: int) -> np.ndarray:
    flipped = words.copy()
    for bit in rng.choice(256, size=bits, replace=False):
        flipped[bit // 64] ^= np.uint64(1) << np.uint64(bit % 64)
    return flipped


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    layout=st.sampled_from(["tiny", "small", "large"]),
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 300),
    radius=st.integers(0, 63),
    adds=st.integers(0, 40),
    removes=st.integers(0, 40),
    side_list_limit=st.sampled_from([3, 16, SIDE_LIST_LIMIT]),
)
# Found by this test: a batch whose results filled the output exactly had its
# last distance overwritten by the next query's (empty) search.
@example(layout="tiny", seed=9345520, size=147, radius=60, adds=31, removes=8, side_list_limit=3)
def test_pdq_index_returns_exactly_what_brute_force_returns(
    layout: str, seed: int, size: int, radius: int, adds: int, removes: int, side_list_limit: int
) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2**64, size=(4, 4), dtype=np.uint64)

    # Bank hashes clustered near a few centres, so every distance 0-63 occurs.
    def near() -> np.ndarray:
        return _flip(rng, centres[rng.integers(0, 4)], int(rng.integers(0, 80)))

    hashes = np.array([near() for _ in range(size)], dtype=np.uint64)
    ids = np.arange(size, dtype=np.int64) // 2  # entries with two hashes each
    index = PdqIndex.build(hashes, ids, layout)
    index.side_list_limit = side_list_limit  # small: additions are indexed on their own (``recent``), again and again
    extra = np.array([near() for _ in range(adds)], dtype=np.uint64).reshape(-1, 4)
    extra_ids = np.arange(10_000, 10_000 + adds, dtype=np.int64)
    for start in range(0, adds, 7):  # in batches, as a matcher's syncs add them
        index.add(extra[start : start + 7], extra_ids[start : start + 7])
    all_hashes = np.concatenate([hashes, extra])
    all_ids = np.concatenate([ids, extra_ids])
    removed = rng.choice(all_ids, size=min(removes, len(all_ids)), replace=False).tolist()
    index.remove(removed)
    alive = ~np.isin(all_ids, removed)
    queries = np.array([_flip(rng, near(), int(rng.integers(0, 64))) for _ in range(8)], dtype=np.uint64)
    for query, hits in zip(queries, index.search_many(queries, radius), strict=True):
        expected = _brute(all_hashes, all_ids, alive, query, radius)
        assert {(hit.entry_id, hit.distance) for hit in index.search(query, radius)} == expected
        assert {(hit.entry_id, hit.distance) for hit in hits} == expected
    rows, found_ids, distances = index.search_many_ids(queries, radius)
    for row, query in enumerate(queries):
        found = set(zip(found_ids[rows == row].tolist(), distances[rows == row].tolist(), strict=True))
        assert found == _brute(all_hashes, all_ids, alive, query, radius)
    assert len(index) == int(alive.sum())


def test_pdq_index_survives_save_load_and_compaction(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    hashes = rng.integers(0, 2**64, size=(5000, 4), dtype=np.uint64)
    index = PdqIndex.build(hashes, np.arange(5000))
    index.side_list_limit = 4  # the additions are in ``recent`` too
    index.add(hashes[:10] ^ np.uint64(1), np.arange(9000, 9010))
    assert index.recent is not None
    index.remove([3])
    index.save(tmp_path)
    loaded = PdqIndex.load(tmp_path)
    assert len(loaded) == 5000 - 1 + 10
    assert {h.entry_id for h in loaded.search(hashes[3], 0)} == set()
    assert {h.entry_id for h in loaded.search(hashes[5], 4)} == {5, 9005}
    loaded.remove([5])  # memory-mapped arrays are copied before a change
    assert {h.entry_id for h in loaded.search(hashes[5], 4)} == {9005}


def test_digest_index_finds_exact_values_only() -> None:
    values = [f"{i:032x}" for i in range(1000)]
    index = DigestIndex.build(16, values, np.arange(1000))
    assert index.lookup_many([values[17], "f" * 32]) == [[17], []]
    index.add([values[17], "ab" * 16], [5000, 5001])
    assert index.lookup_many([values[17], "ab" * 16]) == [[17, 5000], [5001]]
    index.remove([17, 5001])
    assert index.lookup_many([values[17], "ab" * 16]) == [[5000], []]
    index.compact()
    assert index.lookup_many([values[17], values[999]]) == [[5000], [999]]


def test_changes_are_visible_to_the_next_query_in_another_matcher(engine, tmp_path: Path, reference_dir: Path) -> None:  # type: ignore[no-untyped-def]
    root = index_root(tmp_path, str(engine.url))
    original = hash_file(reference_dir / "dih" / "bridge-1-original.jpg")
    first = Matcher(engine, root)
    first.sync()
    create_bank(engine, "police", scheme="uk")
    second = Matcher(engine, root)  # another process would do the same
    second.sync()
    (entry_id,) = add_entries(
        engine, "police", [NewEntry([("pdq", original.pdq or ""), ("md5", original.md5 or "")], "B", "vic-9")]
    ).ids
    for matcher in (first, second):
        matcher.sync()
        (md5_match,) = matcher.lookup([("md5", original.md5 or "")])[0]
        assert (md5_match.bank, md5_match.entry_id, md5_match.category, md5_match.source_id) == (
            "police",
            str(entry_id),
            "B",
            "vic-9",
        )
    remove_entry(engine, "police", entry_id)
    first.sync()
    assert first.lookup([("md5", original.md5 or ""), ("pdq", original.pdq or "")]) == [[], []]
    # A third matcher starts from the saved index and replays the log.
    add_entries(engine, "police", [NewEntry([("sha1", original.sha1 or "")])])
    third = Matcher(engine, root)
    third.sync()
    assert len(third.lookup([("sha1", original.sha1 or "")])[0]) == 1
    delete_bank(engine, "police")
    third.sync()
    assert third.lookup([("sha1", original.sha1 or "")]) == [[]]


def test_ensure_saved_loads_nothing_while_the_saves_are_current_and_saves_what_a_new_process_would_replay(
    engine, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    root = index_root(tmp_path, str(engine.url))
    create_bank(engine, "police", scheme="uk")
    hashes = [f"{n:064x}" for n in range(1, 1_202)]
    add_entries(engine, "police", [NewEntry([("sha256", value)]) for value in hashes[:100]])
    saver = Matcher(engine, root)
    saver.ensure_saved()  # no save yet: built and saved
    assert saver.banks and len(list(root.glob("bank-*@*"))) == 1
    add_entries(engine, "police", [NewEntry([("sha256", value)]) for value in hashes[100:110]])
    current = Matcher(engine, root)
    current.ensure_saved()  # ten changes behind: a new process replays them, so nothing to do or load
    assert current.banks == {}
    (saved,) = root.glob("bank-*@*")
    add_entries(engine, "police", [NewEntry([("sha256", value)]) for value in hashes[110:]])
    behind = Matcher(engine, root)
    behind.ensure_saved()  # over 1,000 behind: saved again
    (resaved,) = root.glob("bank-*@*")
    assert resaved != saved and behind.banks
    fresh = Matcher(engine, root)
    fresh.sync()
    assert [len(hits) for hits in fresh.lookup([("sha256", hashes[0]), ("sha256", hashes[-1])])] == [1, 1]


def test_behind_says_whether_another_writer_logged_a_change_this_matcher_has_not_applied(
    engine, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    create_bank(engine, "police")
    matcher = Matcher(engine, index_root(tmp_path, str(engine.url)))
    assert matcher.behind()  # not loaded yet
    matcher.sync()
    on_sqlite = engine.dialect.name == "sqlite"
    # SQLite: the cheap check answers; PostgreSQL: always "sync" (late commits fill gaps).
    assert matcher.behind() is not on_sqlite
    other = open_database(str(engine.url))  # another process's connections
    try:
        add_entries(other, "police", [NewEntry([("md5", "ab" * 16)])])
    finally:
        other.dispose()
    assert matcher.behind()
    matcher.sync()
    assert len(matcher.lookup([("md5", "ab" * 16)])[0]) == 1
    assert matcher.behind() is not on_sqlite
    delete_bank(engine, "police")
    assert matcher.behind()
    matcher.sync()
    assert matcher.lookup([("md5", "ab" * 16)]) == [[]]
    matcher.close()


def test_per_bank_threshold_and_suppress_banks(engine, tmp_path: Path, reference_dir: Path) -> None:  # type: ignore[no-untyped-def]
    original = hash_file(reference_dir / "bridge-mods" / "aaa-orig.jpg")
    edit = hash_file(reference_dir / "bridge-mods" / "sharpen-a-lot.jpg", dihedral=True)
    assert original.pdq and edit.pdq
    create_bank(engine, "loose")
    create_bank(engine, "strict", pdq_threshold=2)
    for bank in ("loose", "strict"):
        add_entries(engine, bank, [NewEntry([("pdq", original.pdq)])])
    matcher = Matcher(engine, index_root(tmp_path, str(engine.url)))
    matcher.sync()
    assert [m.bank for m in matcher.match_hashes(edit)] == ["loose"]
    create_bank(engine, "known-false-positives", kind="suppress")
    add_entries(engine, "known-false-positives", [NewEntry([("sha256", edit.sha256 or "")])])
    matcher.sync()
    assert matcher.match_hashes(edit) == []


def test_a_suppress_hit_removes_perceptual_matches_and_never_exact_digest_matches(
    engine, tmp_path: Path, reference_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    original = hash_file(reference_dir / "bridge-mods" / "aaa-orig.jpg")
    edit = hash_file(reference_dir / "bridge-mods" / "sharpen-a-lot.jpg", dihedral=True)
    assert original.pdq and edit.pdq and edit.md5 and edit.sha1
    create_bank(engine, "police")
    # The very file (by md5, and by its PDQ), and a picture perceptually close to it.
    exact, close = add_entries(
        engine, "police", [NewEntry([("md5", edit.md5), ("pdq", edit.pdq)]), NewEntry([("pdq", original.pdq)])]
    ).ids
    matcher = Matcher(engine, index_root(tmp_path, str(engine.url)))
    matcher.sync()
    found = {(m.entry_id, m.signal) for m in matcher.match_hashes(edit)}
    assert found == {(str(exact), "md5"), (str(exact), "pdq"), (str(close), "pdq")}
    # A suppress entry perceptually close to the file (not the file itself),
    # and one holding the file's own sha1.
    create_bank(engine, "false-positives", kind="suppress")
    add_entries(engine, "false-positives", [NewEntry([("pdq", original.pdq)]), NewEntry([("sha1", edit.sha1)])])
    matcher.sync()
    assert [(m.bank, m.entry_id, m.signal) for m in matcher.match_hashes(edit)] == [("police", str(exact), "md5")]
    assert [m.signal for m in matcher.lookup([("md5", edit.md5)])[0]] == ["md5"]
    assert matcher.lookup([("pdq", edit.pdq), ("sha1", edit.sha1)]) == [[], []]


def test_a_suppress_bank_is_audited_with_its_threshold_when_made_and_deleted(engine) -> None:  # type: ignore[no-untyped-def]
    # No command changes a bank's kind or threshold after it is made: making
    # and deleting it are the changes to audit.
    create_bank(engine, "false-positives", kind="suppress", pdq_threshold=4, actor="curator")
    delete_bank(engine, "false-positives", actor="admin")
    events = [(e.action, e.actor, e.detail) for e in audit_events(engine)]
    assert events[0] == (
        "bank.create", "curator", {"bank": "false-positives", "scheme": "none", "kind": "suppress", "pdq_threshold": 4,
                                   "action": "none"},
    )  # fmt: skip
    assert events[1][:2] == ("bank.delete", "admin") and events[1][2]["kind"] == "suppress"


def test_low_quality_pdq_is_not_used_for_matching(engine, tmp_path: Path, reference_dir: Path) -> None:  # type: ignore[no-untyped-def]
    small = hash_file(reference_dir / "misc" / "small.jpg", dihedral=True)
    create_bank(engine, "b")
    add_entries(engine, "b", [NewEntry([("pdq", small.pdq or "")])])
    matcher = Matcher(engine, index_root(tmp_path, str(engine.url)))
    matcher.sync()
    assert matcher.match_hashes(small) == []
    assert len(matcher.lookup([("pdq", small.pdq or "")])[0]) == 1  # a hash alone has no quality


def test_batch_search_equals_one_by_one() -> None:
    rng = np.random.default_rng(11)
    hashes = rng.integers(0, 2**64, size=(3000, 4), dtype=np.uint64)
    index = PdqIndex.build(hashes, np.arange(3000))
    index.add(hashes[:5] ^ np.uint64(3), np.arange(7000, 7005))
    queries = np.array([_flip(rng, hashes[i % 50], i % 40) for i in range(200)], dtype=np.uint64)
    batch = index.search_many(queries, 31)
    single = [index.search(q, 31) for q in queries]
    assert [sorted((h.entry_id, h.distance, h.value) for h in hits) for hits in batch] == [
        sorted((h.entry_id, h.distance, h.value) for h in hits) for hits in single
    ]
    assert sum(len(hits) for hits in batch) >= 160


def test_crowded_buckets_are_skipped_and_what_is_found_is_found_once() -> None:
    """Keypoint lookups skip buckets far fuller than the average (descriptors
    of smooth or noisy patches share chunk values by the thousand): a hash in
    one is still found through its other chunks, never twice, never beyond
    the radius."""
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**64, size=(4000, 4), dtype=np.uint64)
    top = np.uint64(0xFFFF) << np.uint64(48)
    hashes[:2000, 0] = (hashes[:2000, 0] & ~top) | (np.uint64(0xABCD) << np.uint64(48))  # one crowded chunk value
    index = PdqIndex.build(hashes, np.arange(4000), "small")
    queries = np.array([_flip(rng, hashes[k], 12) for k in (5, 6, 2500)], dtype=np.uint64)
    queries[:2, 0] = (queries[:2, 0] & ~top) | (np.uint64(0xABCD) << np.uint64(48))  # the first two in the crowd
    every = index.search_many_ids(queries, 31, probe=0)
    skipping = index.search_many_ids(queries, 31, probe=0, crowded=64)
    pairs = set(zip(every[0].tolist(), every[1].tolist(), strict=True))
    kept = list(zip(skipping[0].tolist(), skipping[1].tolist(), strict=True))
    assert len(kept) == len(set(kept)) and set(kept) <= pairs
    assert {(0, 5), (1, 6), (2, 2500)} <= set(kept)  # found through their other, uncrowded chunks
    assert (every[2] <= 31).all() and (skipping[2] <= 31).all()


def test_small_indexes_are_small_and_keypoint_indexes_keep_16_bit_chunks(tmp_path: Path) -> None:
    """A small bank's index takes kilobytes, not the 4 MB of 16-bit chunk
    tables; a keypoint descriptor index keeps 16-bit chunks (probed one bucket
    a chunk, 8-bit ones would cost 4x), also in its additions' index and after
    a save and load."""
    import skimage.data

    from childsafe.index.keypoint_index import KeypointIndex
    from childsafe.signals.keypoints import image_keypoints

    rng = np.random.default_rng(5)
    hashes = rng.integers(0, 2**64, size=(100, 4), dtype=np.uint64)
    small = PdqIndex.build(hashes, np.arange(100))
    assert small.tables["bits"].tolist() == [8] * 32 and small.nbytes() < 200_000
    assert PdqIndex().nbytes() < 100_000  # an empty bank's
    found = image_keypoints(skimage.data.camera(), 300)
    index = KeypointIndex.build([(1, found)])
    assert index.descriptors is not None and index.descriptors.tables["bits"].tolist() == [16] * 16
    index.descriptors.side_list_limit = 10
    index.add([(2, found)])
    assert index.descriptors.recent is not None and index.descriptors.recent.tables["bits"].tolist() == [16] * 16
    index.save(tmp_path)
    loaded = KeypointIndex.load(tmp_path)
    assert loaded.descriptors is not None and loaded.descriptors.tiny_limit == 0
    assert loaded.descriptors.tables["bits"].tolist() == [16] * 16


def test_the_change_log_reads_back_what_bank_changes_wrote_as_typed_operations(engine) -> None:  # type: ignore[no-untyped-def]
    from childsafe.banks.changes import ChangeOp, bank_ops_between, changes_after, latest_seq

    with engine.connect() as connection:
        start = latest_seq(connection)
    create_bank(engine, "police")
    (entry_id,) = add_entries(engine, "police", [NewEntry([("md5", "ab" * 16)])]).ids
    remove_entry(engine, "police", entry_id)
    delete_bank(engine, "police")
    with engine.connect() as connection:
        changes = changes_after(connection, start)
        bank_id = changes[0].bank_id
        assert [(c.op, c.entry_id) for c in changes] == [
            (ChangeOp.CREATE, None),
            (ChangeOp.ADD, entry_id),
            (ChangeOp.REMOVE, entry_id),
            (ChangeOp.DROP, None),
        ]
        assert latest_seq(connection) == changes[-1].seq
        between = bank_ops_between(connection, bank_id, changes[0].seq, changes[2].seq)
        assert between == [(ChangeOp.ADD, entry_id), (ChangeOp.REMOVE, entry_id)]


def test_entries_a_replacing_import_removes_are_matched_no_more(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Added where a hand mutation (the import no longer logging what it
    removed) went unnoticed: the database was right, a running matcher was not."""
    from childsafe.banks import import_bank_file

    kept, dropped = "ab" * 16, "cd" * 16
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text(f"{kept}\n{dropped}\n")
    second.write_text(f"{kept}\n")
    import_bank_file(engine, "police", first, create={"scheme": "uk"})
    matcher = Matcher(engine, index_root(tmp_path, str(engine.url)))
    matcher.sync()
    assert [len(hits) for hits in matcher.lookup([("md5", kept), ("md5", dropped)])] == [1, 1]
    assert import_bank_file(engine, "police", second, replace=True).removed == 1
    matcher.sync()
    assert [len(hits) for hits in matcher.lookup([("md5", kept), ("md5", dropped)])] == [1, 0]
