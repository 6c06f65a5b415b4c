"""``Matcher.lookup`` of many queries: the entries' details in one statement
per 10,000 entries, and the same answers as the queries one at a time."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from support import random_hex

from childsafe.banks import NewEntry, add_entries, create_bank, import_bank_file
from childsafe.index import Matcher, index_root


def _near(rng: random.Random, value: str, bits: int) -> str:
    """``value`` (PDQ hex) with ``bits`` distinct bits flipped."""
    number = int(value, 16)
    for bit in rng.sample(range(256), bits):
        number ^= 1 << bit
    return f"{number:064x}"


class _Statements:
    """The statements an engine runs that read ``bank_entries``, while counting."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seen: list[str] = []

    def _record(self, *args: Any) -> None:
        statement = args[2]
        if "FROM bank_entries" in statement:
            self.seen.append(statement)

    def __enter__(self) -> _Statements:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)


def test_a_batch_is_answered_as_its_queries_one_at_a_time(engine: Engine, tmp_path: Path) -> None:
    rng = random.Random(16)
    create_bank(engine, "police", scheme="uk")
    create_bank(engine, "partner")
    entries = [
        NewEntry(
            [("pdq", random_hex(rng, 64)), ("md5", random_hex(rng, 32))],
            rng.choice([None, "A", "B", "C"]),
            rng.choice([None, f"case-{n}"]),
            # Some with bank-side variants: a match to one says so in its transform.
            variants=[(f"variant:crop-{k}", random_hex(rng, 64)) for k in range(rng.choice([0, 0, 2]))],
        )
        for n in range(40)
    ]
    add_entries(engine, "police", entries)
    shared = entries[0].signals[0][1]
    add_entries(engine, "partner", [NewEntry([("pdq", shared)], source_id="theirs")])  # one hash in two banks
    queries: list[tuple[str, str]] = []
    for entry in entries:
        pdq, md5 = entry.signals[0][1], entry.signals[1][1]
        queries += [("pdq", pdq), ("pdq", _near(rng, pdq, rng.randint(1, 40))), ("md5", md5)]
        queries += [("pdq", _near(rng, value, 3)) for _, value in entry.variants]
    queries += [("pdq", random_hex(rng, 64)), ("sha1", random_hex(rng, 40)), ("pdq", shared), ("pdq", shared)]
    rng.shuffle(queries)

    root = index_root(tmp_path, str(engine.url))
    one_by_one = Matcher(engine, root)
    one_by_one.sync()
    expected = [one_by_one.lookup([query])[0] for query in queries]
    assert sum(bool(matches) for matches in expected) > len(entries) * 2  # most queries match
    assert any(m.transform.startswith("variant:") for matches in expected for m in matches)
    assert any(len({m.bank for m in matches}) == 2 for matches in expected)

    batched = Matcher(engine, root)
    batched.sync()
    with _Statements(engine) as statements:
        assert batched.lookup(queries) == expected
    assert len(statements.seen) == 1  # not one (or two) per query
    with _Statements(engine) as statements:
        assert batched.lookup(queries) == expected
    assert statements.seen == []  # the details are kept until the next change


def test_over_10000_entries_found_take_one_statement_per_10000(engine: Engine, tmp_path: Path) -> None:
    rng = random.Random(17)
    values = [random_hex(rng, 64) for _ in range(10_050)]
    path = tmp_path / "list.txt"
    path.write_text("\n".join(values) + "\n")
    import_bank_file(engine, "big", path, signal="pdq", category="B", create={"scheme": "uk"})
    matcher = Matcher(engine, index_root(tmp_path, str(engine.url)))
    matcher.sync()
    with _Statements(engine) as statements:
        found = matcher.lookup([("pdq", value) for value in values])
    assert len(statements.seen) == 2
    exact = [[m for m in matches if m.distance == 0] for matches in found]
    assert all(len(matches) == 1 for matches in exact)
    assert [matches[0].value for matches in exact] == values
    assert {matches[0].category for matches in exact} == {"B"}
    assert len({matches[0].entry_id for matches in exact}) == len(values)
    fresh = Matcher(engine, index_root(tmp_path, str(engine.url)))
    fresh.sync()
    for number in rng.sample(range(len(values)), 20):
        assert fresh.lookup([("pdq", values[number])])[0] == found[number]
