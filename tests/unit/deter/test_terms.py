"""Term matching through disguises, with placeholder phrases only (the
project ships and tests no real abuse-related terms)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from childsafe.config import Settings
from childsafe.deter import TermMatcher, normalise_words, one_edit_apart

LISTS = {"test-list": ["purple umbrella", "velvet lantern", "quiet harbour"], "other": ["marble"]}


@pytest.fixture(scope="module")
def matcher() -> TermMatcher:
    return TermMatcher.build(LISTS)


CAUGHT = {
    "plain, in a sentence": "where can I find a purple umbrella today",
    "case": "PURPLE Umbrella",
    "accents": "púrplé ümbréllà",
    "cyrillic and greek look-alikes": "рurрlе umbrеllα",
    "full-width forms": "ｐｕｒｐｌｅ ｕｍｂｒｅｌｌａ",
    "mathematical letters": "𝐩𝐮𝐫𝐩𝐥𝐞 𝓊𝓂𝒷𝓇𝑒𝓁𝓁𝒶",
    "zero-width characters": "pur\u200bple um\u200dbrella",
    "control characters": "purp\x07le umbrella",
    "leetspeak": "v3lv3t l4nt3rn",
    "symbols": "purp|e umbre||@",
    "dots between letters": "p.u.r.p.l.e u.m.b.r.e.l.l.a",
    "spaces between letters": "V E L V E T  L A N T E R N",
    "words run together": "purpleumbrella",
    "repeated letters": "purrrrple umbrellllaaa",
    "a typo: letter dropped": "purple umbrela",
    "a typo: letters swapped": "purpel umbrella",
    "a typo: letter changed": "velvet lanturn",
    "a typo: letter added": "quiet harbouir",
    "a single word term": "polished marble floors",
}

NOT_CAUGHT = {
    "words apart": "a purple hat and an umbrella",
    "words out of order": "umbrella purple",
    "one word of two": "purple",
    "inside an unrelated word": "marblehead",
    "two typos in one word": "purplish umbrella",
    "a typo in a short word": "qiet harbour",
    "a different short word": "quilt harbour",
}


@pytest.mark.parametrize("text", list(CAUGHT.values()), ids=list(CAUGHT))
def test_each_disguise_is_seen_through(matcher: TermMatcher, text: str) -> None:
    assert matcher.match(text) is not None, normalise_words(text)


@pytest.mark.parametrize("text", list(NOT_CAUGHT.values()), ids=list(NOT_CAUGHT))
def test_near_misses_are_not_matched(matcher: TermMatcher, text: str) -> None:
    assert matcher.match(text) is None, normalise_words(text)


def test_the_right_list_is_named(matcher: TermMatcher) -> None:
    assert matcher.match("PURPLE umbrella") == "test-list"
    assert matcher.match("marble") == "other"
    assert matcher.terms == 4


def test_normalisation_rules_on_their_own() -> None:
    assert normalise_words("V.E.L.V.E.T lantern") == ["veivet", "iantern"]
    assert normalise_words("") == []
    assert normalise_words("  ...  ") == []
    assert one_edit_apart("harbour", "harbor")
    assert one_edit_apart("lantern", "lantren")
    assert not one_edit_apart("lantern", "latnren")


def _one_edit_variants(word: str) -> set[str]:
    """Every spelling one insertion, deletion, substitution or swap away (the rule, by brute force)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    return (
        {word}
        | {a + b[1:] for a, b in splits if b}
        | {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
        | {a + c + b[1:] for a, b in splits if b for c in letters}
        | {a + c + b for a, b in splits for c in letters}
    )


@settings(max_examples=300, deadline=None)
@given(st.text("abcd", max_size=7), st.text("abcd", max_size=7))
def test_the_compiled_typo_rule_agrees_with_brute_force(a: str, b: str) -> None:
    assert one_edit_apart(a, b) == (b in _one_edit_variants(a))


def test_a_term_at_the_end_of_a_long_query_is_found(matcher: TermMatcher) -> None:
    filler = "the quick brown fox jumps over a lazy dog " * 25_000  # about 1 MB
    assert matcher.match(filler) is None
    assert matcher.match(filler + "velvet lantren") == "test-list"
    long_word = "abcdefghijkmnopqrstuvwxyz" * 4  # 100 letters, none repeated or read as another
    long_matcher = TermMatcher.build({"long": [long_word]})
    assert long_matcher.match("look " + long_word) == "long"
    assert long_matcher.match("look " + long_word[:-1] + "y") is None  # typos only in words up to 64 letters


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_matching_never_raises(text: str) -> None:
    TermMatcher.build(LISTS).match(text)


_LOOKALIKE = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с"}


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["purple umbrella", "velvet lantern", "quiet harbour", "marble"]),
    st.lists(st.sampled_from(["space", "upper", "lookalike", "zero-width"]), min_size=1, max_size=4),
    st.randoms(use_true_random=False),
)
def test_disguising_a_matched_query_keeps_it_matched(term: str, disguises: list[str], rng: object) -> None:
    matcher = TermMatcher.build(LISTS)
    text = term
    for disguise in disguises:
        if disguise == "space":
            text = " ".join(text)  # letters spaced out
        elif disguise == "upper":
            text = "".join(ch.upper() if rng.random() < 0.5 else ch for ch in text)  # type: ignore[attr-defined]
        elif disguise == "lookalike":
            text = "".join(_LOOKALIKE.get(ch, ch) if rng.random() < 0.5 else ch for ch in text)  # type: ignore[attr-defined]
        else:
            text = "\u200b".join(text)
    assert matcher.match(f"look for {text} here") is not None, (text, normalise_words(text))


def test_url_lists_match_through_trivial_rewrites() -> None:
    from childsafe.deter.urls import UrlMatcher, normalise_url

    assert normalise_url("HTTP://Example.COM:80/a/%7Euser/b%2fc#frag") == "example.com/a/~user/b%2Fc"
    assert normalise_url("https://www.example.com.") == "example.com/"
    assert normalise_url("http://user:pw@EXAMPLE.com:8080/x?q=%41") == "example.com:8080/x?q=A"
    assert normalise_url("ftp://example.com/a") is None and normalise_url("http://[::1]:99999/") is None
    matcher = UrlMatcher.build(
        {"url-list": ["http://example.com/bad/page.html", "example.org/folder/*", "not a url ::"]}
    )
    assert matcher.entries == 2
    for url in (
        "https://WWW.example.com/bad/page.html#x",
        "example.com:443/bad/page.html",
        "http://example.com./bad/%70age.html",
    ):
        assert matcher.match(url) == "url-list", url
    for url in ("http://example.org/folder/a/b?c=d", "http://example.org/folder", "https://example.org/folder/"):
        assert matcher.match(url) == "url-list", url
    for url in (
        "http://example.com/bad/page.htm",
        "http://example.org/folderx",
        "http://example.org/other",
        "http://evil.example.org/folder/a",
    ):
        assert matcher.match(url) is None, url


def test_help_resources_by_region_with_fallbacks_and_overrides(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from childsafe.deter.resources import load_resources, resources_for
    from childsafe.errors import InputFormatError

    resources = load_resources()
    assert all(r.source.startswith("https://") and r.checked for r in resources)
    (uk,) = resources_for("GB", resources)
    assert uk.to_dict() == {
        "id": "stopitnow-uk", "name": "Stop It Now UK and Ireland", "phone": "0808 1000 900",
        "url": "https://www.stopitnow.org.uk/", "chat_url": "https://www.stopitnow.org.uk/", "hours": None, "confidential": True,
    }  # fmt: skip
    assert [r.phone for r in resources_for("gb-sct", resources)] == ["0808 1000 900"]
    assert [r.phone for r in resources_for("GB-WLS", resources)] == ["0808 1000 900"]
    assert [r.phone for r in resources_for("IE", resources)] == ["+44 1372 847 161"]
    assert [r.phone for r in resources_for("US", resources)] == ["1-888-773-8368"]
    assert [r.phone for r in resources_for("NL", resources)] == ["0800 266 64 36"]
    assert [r.phone for r in resources_for("AU", resources)] == ["1800 01 1800"]
    assert {r.id for r in resources_for("DE", resources)} == {"kein-taeter-werden", "troubled-desire"}
    assert [r.id for r in resources_for("BR", resources)] == ["troubled-desire"]  # no service of its own
    override = tmp_path / "help.json"
    override.write_text(
        json.dumps(
            {
                "resources": [
                    {"id": "stopitnow-nl", "name": "Stop it Now! NL", "regions": ["NL"], "phone": "0800 000 0000"}
                ]
            }
        )
    )
    settings = Settings.from_env({"CHILDSAFE_HELP_RESOURCES": str(override), "CHILDSAFE_HOME": str(tmp_path)})
    assert [r.phone for r in resources_for("NL", load_resources(settings.help_resources))] == ["0800 000 0000"]
    override.write_text("{}")
    with pytest.raises(InputFormatError, match="help.json"):
        load_resources(override)


@pytest.mark.slow
def test_after_10000_checks_the_database_holds_no_query_text(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    from childsafe.deter.counters import deter_stats
    from childsafe.deter.lists import import_list
    from childsafe.deter.prevention import Prevention
    from childsafe.store import open_database

    engine = open_database(database_url)
    try:
        terms = tmp_path / "terms.txt"
        terms.write_text("purple umbrella\n")
        import_list(engine, "term", terms, "kw")
        prevention = Prevention(engine)
        queries = [
            f"query {n} purple umbrella from 203.0.113.{n % 250}" if n % 2 else f"query {n} tulips"
            for n in range(10_000)
        ]
        for number, text in enumerate(queries):
            answer = prevention.check(text, None, ["GB", "US", "NL"][number % 3])
            assert answer["intercept"] is bool(number % 2)
        for region in ("GB", "US"):  # the warning page's help links count clicks, with no more kept
            assert prevention.follow_help("stopitnow-uk" if region == "GB" else "stopitnow-us", "phone", region, "kw")
        stats = deter_stats(engine)
        assert sum(s["count"] for s in stats if s["outcome"] == "shown") == 5000
        with engine.connect() as connection:
            dump = []
            for table in sa.inspect(engine).get_table_names():
                if table != "deter_entries":  # the operator's lists themselves
                    dump += [str(row) for row in connection.execute(sa.text(f"SELECT * FROM {table}"))]
        everything = "\n".join(dump)
        for trace in ("query", "203.0.113", "tulips", "purple", "umbrella"):
            assert trace not in everything
    finally:
        engine.dispose()
