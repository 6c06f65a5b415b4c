"""A service process's background loops, for as long as it runs: webhook
delivery (``deliver_webhooks``), saving the match counts the dashboard
shows (``save_match_counts``) and fetching the hash exchanges that are due
(``fetch_exchanges``)."""

from __future__ import annotations

import asyncio
import logging

import httpx
from fastapi.concurrency import run_in_threadpool

from childsafe.actions.webhooks import deliver_due
from childsafe.exchanges import fetch_due
from childsafe.exchanges.catalogue import process_owner
from childsafe.service.context import ServiceContext

__all__ = ["deliver_webhooks", "fetch_exchanges", "save_match_counts"]

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


async def fetch_exchanges(context: ServiceContext, poll: float) -> None:
    """Every ``poll`` seconds, fetch the exchanges that are due, until
    cancelled. Every worker of every replica runs this loop; an exchange's
    lease (a row in the database) lets one of them fetch it and the others
    pass it by. A fetch runs in a thread: the service goes on answering."""
    owner = process_owner()
    while True:
        await asyncio.sleep(poll)
        try:
            for name, outcome in await run_in_threadpool(fetch_due, context.engine, context.settings.http, owner):
                log.info("exchange %s: %s", name, outcome)
        except Exception:  # the next round tries again
            log.exception("fetching the exchanges failed")
