"""Relay committed events from the outbox to Kafka, and forget them once long published."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import tracing
from paysync_status_projector.repository import outbox as repo
from paysync_status_projector.service.messages import now

log = structlog.get_logger()

#: Hands (topic, key, value, headers) to the producer, in call order; returns what to await for the
#: broker's ack. Headers are the trace context of the change behind the event, or None.
Publish = Callable[[str, bytes, bytes, tracing.Headers | None], Awaitable[Awaitable[object]]]


async def relay_outbox(engine: AsyncEngine, publish: Publish, limit: int) -> int:
    """Publish committed events in id order (per payment: commit order); returns how many."""
    async with engine.begin() as conn:
        rows = await repo.unpublished(conn, limit)  # empty too while another relay is at work
        if not rows:
            return 0
        # Handed to the producer in id order, all before any acknowledgement is awaited: the
        # idempotent producer keeps that order per partition, retries included.
        acknowledgements = [await _hand_over(publish, row) for row in rows]
        await asyncio.gather(*acknowledgements)
        await repo.mark_published(conn, [row.id for row in rows])
        return len(rows)


async def _hand_over(publish: Publish, row: Any) -> Awaitable[object]:
    """Publish one row; with tracing on, in a span continuing the trace stored with it (its context
    goes in the record's headers)."""
    key, value = row.key.encode(), row.payload.encode()
    if row.traceparent is None or not tracing.enabled():
        return await publish(row.topic, key, value, None)
    with tracing.producing(row.topic, key, parent=row.traceparent) as headers:
        log.debug("outbox.relayed", topic=row.topic, key=row.key)
        return await publish(row.topic, key, value, headers)


async def purge_outbox(engine: AsyncEngine, keep: timedelta) -> int:
    """Forget events published longer ago than `keep`; returns how many."""
    async with engine.begin() as conn:
        return await repo.purge_published(conn, now() - keep)
