"""A service process's background loops, for as long as it runs: webhook
delivery (``deliver_webhooks``) and saving the match counts the dashboard
shows (``save_match_counts``)."""

from __future__ import annotations

import asyncio
import logging

import httpx
from fastapi.concurrency import run_in_threadpool

from childsafe.actions.webhooks import deliver_due
from childsafe.service.context import ServiceContext

__all__ = ["deliver_webhooks", "save_match_counts"]

log = logging.getLogger("childsafe.service")


async def deliver_webhooks(context: ServiceContext, poll: float, backoff: float) -> None:
    """Deliver due webhook events every ``poll`` seconds (a failed delivery is
    first retried after ``backoff`` seconds), until cancelled."""
    with httpx.Client(timeout=10, follow_redirects=False) as client:
        while True:
            try:
                await run_in_threadpool(deliver_due, context.engine, client, backoff)
            except Exception:  # keep delivering whatever one round met
                log.exception("webhook delivery round failed")
            await asyncio.sleep(poll)


async def save_match_counts(context: ServiceContext, every: float) -> None:
    """Save the match counts every ``every`` seconds, until cancelled (the
    service's shutdown saves the last ones: ``MatchTally.save``)."""
    while True:
        await asyncio.sleep(every)
        try:
            await run_in_threadpool(context.match_tally.save, context.engine)
        except Exception:  # the counts are kept for the next round
            log.exception("saving the match counts failed")
