"""The command line run in-process through Typer's ``CliRunner``: the same
app the ``childsafe`` script runs, on a real SQLite file in a temporary
CHILDSAFE_HOME, without starting a Python process per command."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert
from typer.testing import CliRunner, Result

from childsafe import __version__
from childsafe.cli import app
from childsafe.store import open_database
from childsafe.store.models import WebhookEvent


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A fresh CHILDSAFE_HOME; no other CHILDSAFE_* setting of the caller's shell leaks in."""
    saved = {name: value for name, value in os.environ.items() if name.startswith("CHILDSAFE_")}
    for name in saved:
        del os.environ[name]
    os.environ["CHILDSAFE_HOME"] = str(tmp_path / "home")
    try:
        yield tmp_path / "home"
    finally:
        del os.environ["CHILDSAFE_HOME"]
        os.environ.update(saved)


def run(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, args, env=env)


def test_version_json(home: Path) -> None:
    result = run(["version", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"name": "childsafe", "version": __version__}


def test_a_created_bank_is_listed(home: Path) -> None:
    assert run(["bank", "list", "--json"]).stdout == "[]\n"
    created = run(["bank", "create", "purple-umbrella", "--scheme", "uk", "--json"])
    assert created.exit_code == 0, created.output
    listed = run(["bank", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    [bank] = json.loads(listed.stdout)
    assert (bank["name"], bank["kind"], bank["scheme"], bank["entries"]) == ("purple-umbrella", "match", "uk", 0)
    assert (home / "childsafe.db").is_file()


def test_a_bad_setting_is_one_line_and_exit_2(home: Path) -> None:
    result = run(["bank", "list"], env={"CHILDSAFE_MAX_PIXELS": "many"})
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == "childsafe: error: CHILDSAFE_MAX_PIXELS must be a number, not 'many'\n"


def test_a_command_that_needs_no_setting_ignores_a_bad_one(home: Path) -> None:
    result = run(["version"], env={"CHILDSAFE_MAX_PIXELS": "many"})
    assert result.exit_code == 0, result.output
    assert result.stdout == f"childsafe {__version__}\n"


def test_a_missing_bank_is_exit_2_and_a_failure_elsewhere_exit_1(home: Path, tmp_path: Path) -> None:
    missing = run(["bank", "show", "no-such-bank"])
    assert missing.exit_code == 2
    assert missing.stderr.startswith("childsafe: error: ") and missing.stderr.count("\n") == 1
    not_a_database = tmp_path / "folder"
    not_a_database.mkdir()
    broken = run(["bank", "list"], env={"CHILDSAFE_DATABASE_URL": f"sqlite:///{not_a_database}"})
    assert broken.exit_code == 1
    assert broken.stderr.startswith("childsafe: error: ") and broken.stderr.count("\n") == 1


def test_webhooks_lists_the_outbox_and_dead_only_with_dead(home: Path) -> None:
    engine = open_database(f"sqlite:///{home / 'childsafe.db'}")
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    events = [  # pending, given up on, delivered
        {"bank": "b1", "url": "https://example.org/a", "attempts": 0, "dead_at": None, "delivered_at": None,
         "last_error": None},
        {"bank": "b2", "url": "https://example.org/b", "attempts": 5, "dead_at": created, "delivered_at": None,
         "last_error": "HTTP 500"},
        {"bank": "b1", "url": "https://example.org/a", "attempts": 1, "dead_at": None, "delivered_at": created,
         "last_error": None},
    ]  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(WebhookEvent), [{**event, "payload": {}, "created_at": created} for event in events])
    engine.dispose()
    every = run(["webhooks", "--json"])
    assert every.exit_code == 0, every.output
    records = [json.loads(line) for line in every.stdout.splitlines()]
    assert [(r["id"], r["bank"], r["state"], r["attempts"]) for r in records] == [
        (1, "b1", "pending", 0),
        (2, "b2", "dead", 5),
        (3, "b1", "delivered", 1),
    ]
    assert records[1] == {
        "id": 2, "bank": "b2", "url": "https://example.org/b", "state": "dead", "attempts": 5,
        "created_at": created.isoformat(), "last_error": "HTTP 500",
    }  # fmt: skip
    dead = run(["webhooks", "--dead"])
    assert dead.exit_code == 0, dead.output
    assert dead.stdout == "2\tb2\tdead\t5 attempts\tHTTP 500\n"


BAD_PERIODS = {
    "no days before": (["evaluate", "before-after", "--before", "3", "--after", "5", "--before-days", "0"],
                       "childsafe: error: --before-days must be more than 0 days (got 0.0)\n"),
    "no days after": (["evaluate", "before-after", "--before", "3", "--after", "5", "--after-days", "-1"],
                      "childsafe: error: --after-days must be more than 0 days (got -1.0)\n"),
    "no control after": (["evaluate", "before-after", "--before", "3", "--after", "5", "--control-before", "4"],
                         "childsafe: error: --control-after is missing: give both control counts (before and after),"
                         " or neither\n"),
    "a period backwards": (["cases", "stats", "--from", "2026-02-01", "--to", "2026-01-01"],
                           "childsafe: error: --to, the last day (2026-01-01), is before the first (2026-02-01)\n"),
}  # fmt: skip


@pytest.mark.parametrize("arguments,message", list(BAD_PERIODS.values()), ids=list(BAD_PERIODS))
def test_a_message_about_one_of_two_inputs_names_its_option(arguments: list[str], message: str, home: Path) -> None:
    result = run(arguments)
    assert result.exit_code == 2
    assert result.stderr == message
