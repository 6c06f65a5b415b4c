"""Prevention check speed: term matching with 10,000 terms.

Claim (issue 6): with 10,000 terms, at least 20,000 checks a second on one
core on realistic query text, a p99 latency under 1 ms, and a 1 MB query
answered in under 50 ms.

Baseline, measured in the same run: the usual way, one regular expression of
the escaped terms (case-insensitive, whole words), which sees through none of
the disguises childsafe handles. Python's ``re`` tries each alternative at each
position, so its cost grows with the list.

Terms are placeholder pseudo-words made from a fixed seed (the project never
holds real abuse-related terms); queries are search-like phrases of common
English words with capitals, punctuation, accents and numbers, and 2% hold a
term (half of those disguised). Everything runs in this one process, on one core.

    .venv/bin/python bench/deter_speed.py            # about a minute
    .venv/bin/python bench/deter_speed.py --quick    # smoke run
    .venv/bin/python bench/deter_speed.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from typing import Any

from _common import machine_info, print_table, reproduce_command

from childsafe.deter.prevention import Prevention
from childsafe.deter.terms import TermMatcher
from childsafe.store import open_database

COMMON = """the of and to in is you that it for on are as with they at be this from have or by one had not but what
all were when we there can an your which their said if do will each about how up out them then she many some so
these would other into has more her two like him see time could no make than first been its who now people my made
over did down only way find use may water long little very after words called just where most know get through back
much before go good new write our used me man too any day same right look think also around another came come work
three word must because does part even place well such here take why things help put years different away again off
went old number great tell men say small every found still between name should home big give air line set own under
read last never us left end along while might next sound below saw something thought both few those always looked
show large often together asked house world going want school important until form food keep feet land side without
once animals life enough took sometimes four head above kind began almost live page got earth need far hand high year
mother light country father let night picture being study second eyes soon times story since white days ever paper
hard near sentence better best across during today others however sure means knew try told young miles sun ways thing
whole hear example heard several change answer room sea against top turned learn point city play toward five using
cheap flights weather recipe football news hotel london manchester cardiff review price buy sale near me open hours
""".split()
SYLLABLES = (
    "ka lo mi ne ru ta vo shi bel dor fen gar hul jin kor lam mor nal pel quin ros sel tor ul ven wix yor zen".split()
)
ACCENTED = {"e": "é", "a": "à", "o": "ö", "u": "ü", "c": "ç"}
LOOKALIKE = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с"}


def pseudo_word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))


def make_terms(rng: random.Random, count: int) -> list[str]:
    sizes = rng.choices([1, 2, 3, 4], weights=[30, 45, 20, 5], k=count)
    return [" ".join(pseudo_word(rng) for _ in range(size)) for size in sizes]


def disguise(rng: random.Random, term: str) -> str:
    way = rng.choice(["spaced", "lookalike", "leet", "upper"])
    if way == "spaced":
        return " ".join(term.replace(" ", ""))
    if way == "lookalike":
        return "".join(LOOKALIKE.get(ch, ch) for ch in term)
    if way == "leet":
        return term.replace("e", "3").replace("a", "4").replace("o", "0")
    return term.upper()


def make_queries(rng: random.Random, count: int, terms: list[str]) -> list[str]:
    queries = []
    for _ in range(count):
        words = [rng.choice(COMMON) for _ in range(rng.randint(1, 10))]
        if rng.random() < 0.15:
            words[0] = words[0].capitalize()
        if rng.random() < 0.1:
            words.append(str(rng.randint(1, 2030)))
        if rng.random() < 0.05:
            words[-1] = "".join(ACCENTED.get(ch, ch) for ch in words[-1])
        if rng.random() < 0.02:
            term = rng.choice(terms)
            words.insert(rng.randint(0, len(words)), disguise(rng, term) if rng.random() < 0.5 else term)
        text = " ".join(words)
        if rng.random() < 0.2:
            text += rng.choice(["?", "!", "...", " 2026", " near me", " - reviews"])
        queries.append(text)
    return queries


def time_checks(match: Any, queries: list[str], rounds: int) -> dict[str, Any]:
    """Best throughput over ``rounds`` (CPU time of this process), and the latency spread of every call."""
    best_rate = 0.0
    latencies: list[int] = []
    found = 0
    for _ in range(rounds):
        latencies = []
        found = 0
        cpu = time.process_time()
        for query in queries:
            start = time.perf_counter_ns()
            if match(query) is not None:
                found += 1
            latencies.append(time.perf_counter_ns() - start)
        best_rate = max(best_rate, len(queries) / (time.process_time() - cpu))
    latencies.sort()
    return {
        "checks_per_second": round(best_rate),
        "p50_us": round(latencies[len(latencies) // 2] / 1000, 1),
        "p99_us": round(latencies[int(len(latencies) * 0.99)] / 1000, 1),
        "max_us": round(latencies[-1] / 1000, 1),
        "matched": found,
    }


def time_one(match: Any, text: str, repeats: int) -> dict[str, Any]:
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = match(text)
        times.append(time.perf_counter() - start)
    return {
        "best_ms": round(min(times) * 1000, 1),
        "worst_ms": round(max(times) * 1000, 1),
        "matched": result is not None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--terms", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 5,000 queries, one round")
    parser.add_argument("--json", dest="json_path", help="also write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.queries, args.rounds = 5_000, 1
    rng = random.Random(20261129)
    terms = make_terms(rng, args.terms)
    queries = make_queries(rng, args.queries, terms)
    megabyte = (" ".join(rng.choice(COMMON) for _ in range(250_000)))[: 1_000_000 - 40] + " " + disguise(rng, terms[7])
    print(
        f"{len(terms):,} terms; {len(queries):,} queries, mean {sum(map(len, queries)) / len(queries):.0f} characters"
    )

    start = time.perf_counter()
    matcher = TermMatcher.build({"placeholder": terms})
    build_s = time.perf_counter() - start
    matcher.match("warm up the compiled code")
    arrays = [value for value in vars(matcher).values() if hasattr(value, "nbytes")]
    memory_mib = sum(array.nbytes for array in arrays) / 2**20

    # The baseline: one regular expression of the escaped terms.
    start = time.perf_counter()
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(term) for term in terms) + r")\b", re.IGNORECASE)
    regex_build_s = time.perf_counter() - start

    ours = time_checks(matcher.match, queries, args.rounds)
    baseline = time_checks(pattern.search, queries, args.rounds)
    ours_mb = time_one(matcher.match, megabyte, 5)
    # The worst case for the normaliser: every character needs Python's Unicode functions.
    lookalike_mb = time_one(matcher.match, "".join(LOOKALIKE.get(ch, ch) for ch in megabyte), 5)
    # The baseline takes about a minute a megabyte: it is timed on the last 100 KB.
    baseline_mb = time_one(pattern.search, megabyte[-100_000:], 1)

    # The whole check as the service makes it: matching, the warning, and the counter on a SQLite file.
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        engine = open_database(f"sqlite:///{os.path.join(folder, 'bench.db')}")
        term_file = os.path.join(folder, "terms.txt")
        with open(term_file, "w", encoding="utf-8") as handle:
            handle.write("\n".join(terms))
        from pathlib import Path

        from childsafe.deter.lists import import_list

        import_list(engine, "term", Path(term_file), "placeholder")
        prevention = Prevention(engine, environ={})
        whole = time_checks(lambda text: prevention.check(text, None, "GB")["matched"], queries[:10_000], 1)
        engine.dispose()

    print()
    print_table(
        ["", "checks/s (1 core)", "p50", "p99", "max", "matched", "1 MB query"],
        [
            ["childsafe TermMatcher", f"{ours['checks_per_second']:,}", f"{ours['p50_us']} us", f"{ours['p99_us']} us",
             f"{ours['max_us']} us", f"{ours['matched']:,}", f"{ours_mb['best_ms']} ms (worst {ours_mb['worst_ms']})"],
            ["baseline: one re of the terms", f"{baseline['checks_per_second']:,}", f"{baseline['p50_us']} us",
             f"{baseline['p99_us']} us", f"{baseline['max_us']} us", f"{baseline['matched']:,}",
             f"{baseline_mb['best_ms']} ms for 100 KB"],
            ["childsafe, 1 MB in look-alike letters", "", "", "", "", "",
             f"{lookalike_mb['best_ms']} ms (worst {lookalike_mb['worst_ms']})"],
            ["childsafe Prevention.check + count", f"{whole['checks_per_second']:,}", f"{whole['p50_us']} us",
             f"{whole['p99_us']} us", f"{whole['max_us']} us", f"{whole['matched']:,}", ""],
        ],
    )  # fmt: skip
    ratio = ours["checks_per_second"] / baseline["checks_per_second"]
    print(f"\nthroughput ratio childsafe / baseline: {ratio:.1f}x; the baseline sees "
          f"{baseline['matched']:,} of the {ours['matched']:,} queries childsafe matches")  # fmt: skip
    print(f"matcher build {build_s:.2f} s, arrays {memory_mib:.1f} MiB; regex build {regex_build_s:.2f} s")
    targets = {
        "checks_per_second >= 20000": ours["checks_per_second"] >= 20_000,
        "p99 < 1 ms": ours["p99_us"] < 1000,
        "1 MB query < 50 ms": ours_mb["best_ms"] < 50 and ours_mb["matched"],
    }
    for name, met in targets.items():
        print(f"  {'met' if met else 'NOT MET'}: {name}")
    print(f"\nreproduce: {reproduce_command(__file__, sys.argv[1:])}")
    if args.json_path:
        figures = {
            "machine": machine_info(), "terms": len(terms), "queries": len(queries), "childsafe": ours,
            "baseline_regex": baseline, "childsafe_1mb": ours_mb, "childsafe_1mb_lookalike": lookalike_mb,
            "baseline_100kb": baseline_mb, "prevention_check": whole,
            "build_seconds": build_s, "arrays_mib": memory_mib, "targets": targets,
        }  # fmt: skip
        with open(args.json_path, "w", encoding="utf-8") as handle:
            json.dump(figures, handle, indent=2)
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
