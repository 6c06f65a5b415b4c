"""A sharded index as real ``childsafe serve`` processes on PostgreSQL: two
shards (``CHILDSAFE_INDEX_SHARD``) and a front (``CHILDSAFE_INDEX_SHARDS``)
answer exactly what an unsharded service answers, see a bank change within
a second, and a shard that stops makes the front's matches fail with 503 and
its readiness say which shard is not ready, never "no match"."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import Server, seconds_until_seen

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

RANDOM = random.Random(3)


def _env(cli_env: dict[str, str], postgres_url: str, home: Path, **extra: str) -> dict[str, str]:
    return {**cli_env, "CHILDSAFE_HOME": str(home), "CHILDSAFE_DATABASE_URL": postgres_url, **extra}


def _flip(value: str, bits: int) -> str:
    """``value`` (a PDQ hash in hex) with ``bits`` random bits flipped."""
    number = int(value, 16)
    for bit in RANDOM.sample(range(256), bits):
        number ^= 1 << bit
    return f"{number:064x}"


def _entries() -> list[dict[str, Any]]:
    """PDQ entries, several close to one another (so a query matches several
    entries, in several shards, at several distances), and md5 entries."""
    entries = []
    for _ in range(40):
        base = f"{RANDOM.getrandbits(256):064x}"
        for near in range(RANDOM.randint(1, 4)):
            entries.append({"signal": "pdq", "value": _flip(base, 3 * near), "category": "A"})
    entries += [{"signal": "md5", "value": f"{number:032x}", "category": "B"} for number in range(1, 101)]
    return entries


def _batch(client: httpx.Client, queries: list[dict[str, str]]) -> list[Any]:
    answer = client.post("/v1/match/batch", json={"queries": queries})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["results"])


def test_two_shards_and_a_front_answer_as_one_service_does(
    cli_env: dict[str, str], postgres_url: str, tmp_path: Path
) -> None:
    plain = Server(_env(cli_env, postgres_url, tmp_path / "plain"))
    servers = [plain]
    try:
        curator = plain.client("curator")
        assert curator.post("/v1/banks", json={"name": "shared", "scheme": "uk"}).status_code in (200, 201)
        entries = _entries()
        assert curator.post("/v1/banks/shared/entries", json={"entries": entries}).json()["added"] == len(entries)
        shards = [
            Server(
                _env(cli_env, postgres_url, tmp_path / f"shard-{k}", CHILDSAFE_INDEX_SHARD=f"{k}/2"), keys=plain.keys
            )
            for k in range(2)
        ]
        servers += shards
        front = Server(
            _env(
                cli_env, postgres_url, tmp_path / "front",
                CHILDSAFE_INDEX_SHARDS=",".join(shard.url for shard in shards),
                CHILDSAFE_INDEX_SHARDS_KEY=plain.keys["curator"],
            ),
            keys=plain.keys,
        )  # fmt: skip
        servers.append(front)
        ready = httpx.get(f"{front.url}/v1/ready", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["index"]["part"] == "front" and ready.json()["index"]["shards"] == 2
        assert httpx.get(f"{shards[1].url}/v1/ready", timeout=10).json()["index"]["part"] == "1/2"

        # Hashes spread over both shards: the same matches, in the same order, as the unsharded service.
        pdqs = [entry["value"] for entry in entries if entry["signal"] == "pdq"]
        queries = [{"signal": "pdq", "value": _flip(value, 2)} for value in pdqs]
        queries += [{"signal": "md5", "value": f"{number:032x}"} for number in range(95, 106)]
        queries.append({"signal": "pdq", "value": f"{RANDOM.getrandbits(256):064x}"})
        expected = _batch(curator, queries)
        got = _batch(front.client("curator"), queries)
        assert got == expected
        matched = [result["matches"] for result in expected if result["matches"]]
        assert sum(len(matches) > 1 for matches in matched) >= 5  # several entries a query, ranked
        assert {int(match["entry_id"]) % 2 for matches in matched for match in matches} == {0, 1}
        for query in queries[:5]:  # one at a time (GET /v1/match), and as a matcher key sees them
            single = [server.client("matcher").get("/v1/match", params=query).json() for server in (plain, front)]
            assert single[0] == single[1]
        # A shard does not match on its own: its "no match" would miss the other shard's entries.
        alone = shards[0].client("matcher").get("/v1/match", params=queries[0])
        assert alone.status_code == 503 and "shard 0/2" in alone.json()["error"]["message"]

        # A bank change through the front is seen through it within a second (added, then removed).
        writer = front.client("curator")
        for number in (5001, 5002):  # consecutive ids: one entry in each shard
            value = f"{number:032x}"
            assert writer.post("/v1/banks/shared/entries", json={"entries": [{"signal": "md5", "value": value}]})
            assert seconds_until_seen(front.client("matcher"), value, True) < 1.0
        (known,) = writer.get("/v1/match", params={"signal": "md5", "value": f"{5001:032x}"}).json()["matches"]
        assert writer.delete(f"/v1/banks/shared/entries/{known['entry_id']}").status_code in (200, 204)
        assert seconds_until_seen(front.client("matcher"), f"{5001:032x}", False) < 1.0

        # One shard stops: matches through the front fail with 503 naming it, and the front is not ready.
        shards[1].stop()
        failed = front.client("matcher").get("/v1/match", params=queries[0])
        assert failed.status_code == 503, failed.text
        assert "index shard 1/2 did not answer" in failed.json()["error"]["message"]
        assert failed.headers["retry-after"] == "1"
        batch = front.client("matcher").post("/v1/match/batch", json={"queries": queries[-3:]})
        assert batch.status_code == 503 and "shard 1/2" in batch.json()["error"]["message"]
        not_ready = httpx.get(f"{front.url}/v1/ready", timeout=10)
        assert not_ready.status_code == 503
        assert not_ready.json()["status"] == "not ready" and "index shard 1/2" in not_ready.json()["reason"]
        assert "0/2" not in not_ready.json()["reason"]
    finally:
        for server in servers:
            server.stop()
