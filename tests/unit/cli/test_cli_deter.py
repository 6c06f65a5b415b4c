"""``childsafe deter`` in-process: importing term and URL lists, checking a
query, and the counts kept (placeholder phrases only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import invoke


@pytest.fixture
def lists(home: Path, tmp_path: Path) -> Path:
    """A home with the term list "kw" and the URL list "ul"."""
    terms = tmp_path / "terms.txt"
    terms.write_text("# licensed list (placeholders here)\npurple umbrella\nvelvet lantern\n")
    urls = tmp_path / "urls.txt"
    urls.write_text("http://example.com/bad/page.html\nexample.org/folder/*\n")
    assert invoke(["deter", "terms", "import", str(terms), "--list", "kw"], home).exit_code == 0
    assert invoke(["deter", "urls", "import", str(urls), "--list", "ul"], home).exit_code == 0
    return home


def _json(args: list[str], home: Path) -> Any:
    result = invoke(args, home)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_importing_a_term_list_says_what_it_added(home: Path, tmp_path: Path) -> None:
    terms = tmp_path / "terms.txt"
    terms.write_text("purple umbrella\nvelvet lantern\n")
    first = _json(["deter", "terms", "import", str(terms), "--list", "kw", "--json"], home)
    assert first == {"list": "kw", "kind": "term", "added": 2, "total": 2}
    assert _json(["deter", "terms", "import", str(terms), "--list", "kw", "--json"], home)["added"] == 0


def test_importing_a_url_list_says_what_it_added(home: Path, tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("http://example.com/bad/page.html\nexample.org/folder/*\n")
    assert _json(["deter", "urls", "import", str(urls), "--list", "ul", "--json"], home)["added"] == 2


def test_a_bad_url_line_is_exit_2_naming_file_and_line(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("http://example.com/ok\nftp://nope\n")
    failed = invoke(["deter", "urls", "import", str(bad), "--list", "ul"], home)
    assert failed.exit_code == 2 and "bad.txt: line 2" in failed.stderr


def test_a_disguised_term_is_intercepted_with_the_regions_help(lists: Path) -> None:
    answer = _json(["deter", "check", "P U R P L E umbrela", "--region", "US", "--json"], lists)
    assert answer["intercept"] is True and answer["matched"] == {"kind": "term", "list": "kw"}
    assert list(answer["warning"]) == ["title", "body", "resources"] and "illegal" in answer["warning"]["body"]
    assert [r["phone"] for r in answer["warning"]["resources"]] == ["1-888-773-8368"]


def test_the_matched_term_is_never_echoed(lists: Path) -> None:
    answer = _json(["deter", "check", "P U R P L E umbrela", "--json"], lists)
    assert answer["intercept"] is True
    assert "purple" not in json.dumps(answer).lower()


def test_a_listed_url_is_intercepted(lists: Path) -> None:
    by_url = _json(["deter", "check", "holiday photos", "--url", "https://www.example.org/folder/x", "--json"], lists)
    assert by_url["matched"] == {"kind": "url", "list": "ul"}


def test_a_clean_query_is_not_intercepted(lists: Path) -> None:
    clean = _json(["deter", "check", "purple hat and umbrella", "--json"], lists)
    assert clean == {"intercept": False, "matched": None, "warning": None}


def test_stats_hide_counts_under_ten(lists: Path) -> None:
    invoke(["deter", "check", "P U R P L E umbrela", "--region", "US"], lists)
    invoke(["deter", "check", "holiday photos", "--url", "https://www.example.org/folder/x"], lists)
    stats = _json(["deter", "stats", "--json"], lists)
    assert {(s["region"], s["list"], s["outcome"], s["count"]) for s in stats} == {
        ("US", "kw", "shown", "<10"),
        ("GB", "ul", "shown", "<10"),
    }
