"""Relay committed events from the outbox to Kafka, and forget them once long published."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_status_projector.repository import outbox as repo
from paysync_status_projector.service.messages import now

#: Hands (topic, key, value) to the producer, in call order; returns what to await for the broker's ack.
Publish = Callable[[str, bytes, bytes], Awaitable[Awaitable[object]]]


async def relay_outbox(engine: AsyncEngine, publish: Publish, limit: int) -> int:
    """Publish committed events in id order (per payment: commit order); returns how many."""
    async with engine.begin() as conn:
        rows = await repo.unpublished(conn, limit)  # empty too while another relay is at work
        if not rows:
            return 0
        # Handed to the producer in id order, all before any acknowledgement is awaited: the
        # idempotent producer keeps that order per partition, retries included.
        acknowledgements = [await publish(row.topic, row.key.encode(), row.payload.encode()) for row in rows]
        await asyncio.gather(*acknowledgements)
        await repo.mark_published(conn, [row.id for row in rows])
        return len(rows)


async def purge_outbox(engine: AsyncEngine, keep: timedelta) -> int:
    """Forget events published longer ago than `keep`; returns how many."""
    async with engine.begin() as conn:
        return await repo.purge_published(conn, now() - keep)
