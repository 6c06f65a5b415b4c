"""``POST /v1/shard/search``: a shard's raw hits for its front
(``CHILDSAFE_INDEX_SHARD``, ``CHILDSAFE_INDEX_SHARDS``; docs/service.md,
"Sharded index"). Internal: the front merges every shard's hits, then ranks
and describes them itself.

It needs a key allowed to curate: its hits carry the banks' own hashes,
which a curator may read anyway. The key's rate limit does not apply
(``guard``): the front counted the queries against its own caller's key."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from childsafe.errors import UnavailableError
from childsafe.index.shards import SEARCH_PATH, SHARD_BATCH
from childsafe.service.dependencies import context_of, parse_queries, require
from childsafe.service.responses import OrjsonResponse

router = APIRouter(tags=["internal"])


class ShardQuery(BaseModel):
    signal: str
    value: str


class ShardSearch(BaseModel):
    queries: list[ShardQuery] = Field(max_length=SHARD_BATCH)


@router.post(SEARCH_PATH, dependencies=[Depends(require("curate"))], response_class=OrjsonResponse)
async def shard_search(request: Request, body: ShardSearch) -> OrjsonResponse:
    """``{"part": "K/N", "seq": int, "results": [[[bank_id, entry_id, signal,
    value, distance]...]...], "banks": {bank_id: [name, kind]}}``: each
    query's hits in this process's index (at most 10,000 queries), in query
    order, after following the bank change log."""
    context = context_of(request)
    if context.matcher.shards is not None:
        raise UnavailableError("this process is a front over index shards, not a shard: check CHILDSAFE_INDEX_SHARDS")
    parsed = parse_queries(body.queries)
    hits = await context.shard_search(parsed)
    answer = {
        "part": context.matcher.part.label,
        "seq": context.matcher.follower.seq,
        "results": hits.results,
        "banks": hits.banks,
    }
    return OrjsonResponse(answer)
