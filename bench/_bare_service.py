"""The baseline of bench/service_load.py: a bare FastAPI endpoint shaped like
``GET /v1/match`` (two query parameters, a one-match JSON answer), no key,
no database, no index. Run by uvicorn with the same settings as
``childsafe serve``, it is what the framework and server alone can do here."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

app = FastAPI()

_ANSWER = {
    "matches": [
        {"bank": "big", "entry_id": "500001", "source_id": None, "signal": "pdq", "value": None,
         "distance": 0, "category": None, "transform": "none"}
    ]
}  # fmt: skip


@app.get("/v1/match")
async def match(signal: str, value: str) -> dict[str, Any]:
    """Always the same match."""
    return _ANSWER
