"""The deterrence counters as the stats show them: counts under 10 hidden as
"<10", 10 and over shown. Added where a hand mutation of the threshold went
unnoticed (docs/testing.md)."""

from __future__ import annotations

from sqlalchemy import Engine

from childsafe.deter.counters import deter_stats
from childsafe.store.models import DeterCount


def test_counts_under_ten_are_hidden_and_ten_is_shown(engine: Engine) -> None:
    rows = [{"day": "2026-01-05", "region": "GB", "list_name": "kw", "outcome": outcome, "count": count}
            for outcome, count in (("abandoned", 9), ("help_clicked", 10), ("shown", 11))]  # fmt: skip
    with engine.begin() as connection:
        connection.execute(DeterCount.__table__.insert(), rows)
    assert [(s["outcome"], s["count"]) for s in deter_stats(engine)] == [
        ("abandoned", "<10"),
        ("help_clicked", 10),
        ("shown", 11),
    ]
