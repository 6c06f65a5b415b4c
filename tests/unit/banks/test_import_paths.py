"""Bank imports' fast paths give what the general ones give.

A text list's runs of bare hashes are read in blocks (``TextFormat.read_runs``)
and, on SQLite without ``--replace``, written straight into the bank instead of
staged and merged (``banks/importing.py``, ``banks/import_direct.py``). These tests hold both to the
general paths: the line-by-line reader, and the staged import.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from support import random_hex

from childsafe.banks import entry_key, import_bank_file
from childsafe.banks.catalogue import single_signal_keys
from childsafe.banks.formats.base import BareHashes, ImportOptions, ParsedEntry
from childsafe.banks.formats.text import TEXT
from childsafe.errors import InputFormatError


def _random_list(rng: random.Random, signal: str | None) -> bytes:
    """A text list that is mostly runs of bare hashes (of ``signal``'s length),
    with the odd other line: comments, blank lines, other shapes, mixed case,
    now and then a bad value, CRLF or CR line ends, a byte-order mark, a byte
    that is not UTF-8."""
    digits = {"pdq": 64, "sha256": 64, "md5": 32}.get((signal or "").strip().lower(), rng.choice([32, 40]))
    shapes = [
        lambda: random_hex(rng, digits),
        lambda: random_hex(rng, digits).upper(),
        lambda: "",
        lambda: "# a comment",
        lambda: f"md5 {random_hex(rng, 32)}",
        lambda: f"{random_hex(rng, digits)} ",
        lambda: f"sha1,{random_hex(rng, 40)},c",
        lambda: random_hex(rng, 64 if digits != 64 else 40),
        lambda: "not a hash",
        lambda: "é",
    ]
    weights = [60, 3, 1, 1, 1, 1, 1, 0.2, 0.2, 0.2]
    if rng.random() < 0.5:  # one long run, perhaps with a few other lines after it
        picks = [0] * rng.randint(1, 400) + rng.choices(range(len(shapes)), weights, k=rng.randint(0, 3))
    else:
        picks = rng.choices(range(len(shapes)), weights, k=rng.randint(0, 300))
    newline = rng.choice(["\n", "\n", "\r\n", "\r"])
    data = (newline.join(shapes[pick]() for pick in picks) + rng.choice(["", newline, newline * 2])).encode()
    if rng.random() < 0.05:
        data = b"\xef\xbb\xbf" + data
    if rng.random() < 0.05 and data:
        cut = rng.randrange(len(data))
        data = data[:cut] + b"\xff" + data[cut:]
    return data


def _outcome(entries: Iterator[ParsedEntry]) -> tuple[list[tuple[object, ...]], str | None]:
    """The entries read, or the error: an error ends the import, so what was read before it does not count."""
    try:
        return [(tuple(e.signals), e.where, e.category) for e in entries], None
    except InputFormatError as exc:
        return [], str(exc)


def _expanded_or_error(data: bytes, options: ImportOptions, block_size: int) -> Iterator[ParsedEntry]:
    """``read_runs`` with its runs taken apart into entries, lazily (so that an error is met inside ``_outcome``)."""
    for item in TEXT.read_runs(io.BytesIO(data), options, block_size):
        yield from item.entries() if isinstance(item, BareHashes) else [item]


def test_runs_of_bare_hashes_read_as_the_line_reader_reads_them() -> None:
    rng = random.Random(16)
    runs_seen = 0
    for _ in range(400):
        options = ImportOptions(
            scheme="uk",
            signal=rng.choice([None, None, None, "pdq", "sha256", "md5", " PDQ", "bogus"]),
            category=rng.choice([None, None, None, None, "b", "x"]),
        )
        data = _random_list(rng, options.signal)
        expected = _outcome(TEXT.read_lines(io.BytesIO(data), options))
        for block_size in (1, 7, 66, 200, 4096, 9000, 1 << 22):
            assert _outcome(_expanded_or_error(data, options, block_size)) == expected, (
                data[:200],
                options,
                block_size,
            )
        if expected[1] is None:
            runs_seen += any(isinstance(item, BareHashes) for item in TEXT.read_runs(io.BytesIO(data), options, 4096))
    assert runs_seen > 100  # the fast reader was exercised, not only its fallback


def test_a_run_lowercases_checks_and_numbers_its_lines() -> None:
    data = f"{'A' * 32}\r\n{'b' * 32}\r\n{'0' * 32}".encode()
    (run,) = TEXT.read_runs(io.BytesIO(data), ImportOptions(scheme="uk", category="a"))
    assert run == BareHashes("md5", ["a" * 32, "b" * 32, "0" * 32], 1, "A")
    with pytest.raises(InputFormatError, match="line 2: md5 value must be 32 hexadecimal characters"):
        list(TEXT.read_runs(io.BytesIO(f"{'a' * 32}\n{'g' * 32}\n".encode()), ImportOptions()))


def test_keys_of_single_signals_are_entry_keys() -> None:
    values = ["0" * 64, "f" * 64]
    assert single_signal_keys("pdq", values) == [entry_key([("pdq", value)]) for value in values]


def _bank_rows(engine: Engine, bank: str) -> list[tuple[object, ...]]:
    """A bank's entries in id order, as (key, category, source id, note, import's
    file, signals): everything but the ids themselves and the times."""
    with engine.connect() as connection:
        entries = connection.execute(
            text(
                "SELECT e.id, e.entry_key, e.category, e.source_id, e.note, i.file_name FROM bank_entries e"
                " JOIN banks b ON b.id = e.bank_id JOIN bank_imports i ON i.id = e.import_id"
                " WHERE b.name = :bank ORDER BY e.id"
            ),
            {"bank": bank},
        ).all()
        signals: dict[int, list[tuple[str, str]]] = {}
        for entry_id, signal, value in connection.execute(
            text(
                "SELECT s.entry_id, s.signal, s.value FROM entry_signals s JOIN banks b ON b.id = s.bank_id"
                " WHERE b.name = :bank ORDER BY s.entry_id, s.signal, s.value"
            ),
            {"bank": bank},
        ):
            signals.setdefault(entry_id, []).append((signal, value))
    return [(*row[1:], tuple(signals.get(row[0], []))) for row in entries]


def _ids(engine: Engine, bank: str) -> list[int]:
    with engine.connect() as connection:
        return list(
            connection.scalars(
                text(
                    "SELECT e.id FROM bank_entries e JOIN banks b ON b.id = e.bank_id WHERE b.name = :b ORDER BY e.id"
                ),
                {"b": bank},
            )
        )


def _changes(engine: Engine, bank: str) -> list[tuple[str, int | None]]:
    with engine.connect() as connection:
        return [
            (op, entry_id)
            for op, entry_id in connection.execute(
                text(
                    "SELECT c.op, c.entry_id FROM bank_changes c JOIN banks b ON b.id = c.bank_id"
                    " WHERE b.name = :b ORDER BY c.seq"
                ),
                {"b": bank},
            )
        ]


def test_an_import_written_straight_into_the_bank_equals_a_staged_one(engine: Engine, tmp_path: Path) -> None:
    # Over 4 MB, so that runs of bare hashes meet the line reader across
    # several blocks; --replace into a new bank is the staged path (nothing to remove).
    rng = random.Random(7)
    lines = [random_hex(rng, 64) for _ in range(70_000)]
    lines[100:100] = ["# a comment", f"sha256 {random_hex(rng, 64)} A", ""]
    lines[69_000:69_000] = [f"pdq {random_hex(rng, 64).upper()}", "# another"]
    path = tmp_path / "list.txt"
    path.write_text("\n".join(lines) + "\n")
    uk = {"scheme": "uk"}
    straight = import_bank_file(engine, "straight", path, signal="pdq", category="B", create=uk)
    staged = import_bank_file(engine, "staged", path, signal="pdq", category="B", replace=True, create=uk)
    assert straight.to_dict() | {"bank": "staged"} == staged.to_dict()
    assert straight.added == 70_002
    assert _bank_rows(engine, "straight") == _bank_rows(engine, "staged")
    ids = _ids(engine, "straight")
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # in file order, none skipped
    assert _changes(engine, "straight") == [("create", None), ("reload", None)]


def test_a_list_holding_known_entries_is_merged_as_before(engine: Engine, tmp_path: Path) -> None:
    rng = random.Random(8)
    known = [random_hex(rng, 32) for _ in range(3)]
    new = [random_hex(rng, 32) for _ in range(5)]
    import_bank_file(engine, "b", _write(tmp_path, "known.txt", known), category="A", create={"scheme": "uk"})
    before = _ids(engine, "b")
    # The known ones come late in the file (the straight attempt has written
    # the new ones before it meets them) and with a new category.
    result = import_bank_file(engine, "b", _write(tmp_path, "mixed.txt", new[:2] + known[1:2] + new[2:]), category="B")
    assert result.to_dict() == {"bank": "b", "added": 5, "updated": 1, "removed": 0, "rejected": 0}
    ids = _ids(engine, "b")
    assert ids[:3] == before
    rows = _bank_rows(engine, "b")
    assert [row[-1] for row in rows] == [(("md5", value),) for value in known + new]
    assert [row[1] for row in rows] == ["A", "B", "A", "B", "B", "B", "B", "B"]
    assert _changes(engine, "b")[-6:] == [("update", None)] + [("add", entry_id) for entry_id in ids[3:]]
    again = import_bank_file(engine, "b", tmp_path / "mixed.txt", category="B")
    assert (again.added, again.updated) == (0, 0)


def test_a_duplicate_or_a_bad_line_in_a_bare_list_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    rng = random.Random(9)
    values = [random_hex(rng, 32) for _ in range(1000)]
    with pytest.raises(InputFormatError, match=r"dup\.txt: line 1001: duplicate of line 3"):
        import_bank_file(engine, "b", _write(tmp_path, "dup.txt", [*values, values[2]]))
    with pytest.raises(InputFormatError, match=r"bad\.txt: line 1001: not a hash: 'nope'"):
        import_bank_file(engine, "b", _write(tmp_path, "bad.txt", [*values, "nope"]))
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM banks WHERE name = 'b'")) == 0
        assert connection.scalar(text("SELECT count(*) FROM bank_entries")) == 0


def test_a_small_import_logs_each_new_entry(engine: Engine, tmp_path: Path) -> None:
    rng = random.Random(10)
    values = [random_hex(rng, 40) for _ in range(4)]
    import_bank_file(engine, "b", _write(tmp_path, "list.txt", values))
    assert _changes(engine, "b") == [("create", None)] + [("add", entry_id) for entry_id in _ids(engine, "b")]
    # One line: every column of its rows holds one value for the whole batch.
    one = random_hex(rng, 40)
    import_bank_file(engine, "b", _write(tmp_path, "one.txt", [one.upper()]))
    assert [row[-1] for row in _bank_rows(engine, "b")] == [(("sha1", value),) for value in [*values, one]]


def _write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_foreign_key_checks_are_on_again_after_an_import(engine: Engine, tmp_path: Path) -> None:
    # An import on SQLite without --replace turns them off on its connection
    # (banks/importing.py says why that is safe); the pool must not keep it so.
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's foreign-key setting is per connection")
    rng = random.Random(11)
    import_bank_file(engine, "b", _write(tmp_path, "ok.txt", [random_hex(rng, 32) for _ in range(10)]))
    with pytest.raises(InputFormatError):
        import_bank_file(engine, "b", _write(tmp_path, "bad.txt", [random_hex(rng, 32), "nope"]))
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        with pytest.raises(Exception, match="FOREIGN KEY"):
            connection.exec_driver_sql(
                "INSERT INTO entry_signals (bank_id, entry_id, signal, value) VALUES (1, 999999, 'md5', 'x')"
            )
