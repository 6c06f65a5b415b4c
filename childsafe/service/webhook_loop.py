"""The webhook delivery loop of a service process: delivers the outbox's due
events (``childsafe.actions.webhooks.deliver_due``) every
``ServiceOptions.webhook_poll_seconds``, for as long as the service runs."""

from __future__ import annotations

import asyncio
import logging

import httpx
from fastapi.concurrency import run_in_threadpool

from childsafe.actions.webhooks import deliver_due
from childsafe.service.context import ServiceContext

__all__ = ["deliver_webhooks"]

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
