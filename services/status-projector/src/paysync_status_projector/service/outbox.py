"""Relay committed events from the outbox to Kafka, and forget them once long published."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import tracing
from paysync_core.db.engine import session_lock
from paysync_status_projector.repository import outbox as repo
from paysync_status_projector.service.messages import now

log = structlog.get_logger()

#: Hands (topic, key, value, headers) to the producer, in call order; returns what to await for the
#: broker's ack. Headers are the trace context of the change behind the event, or None.
Publish = Callable[[str, bytes, bytes, tracing.Headers | None], Awaitable[Awaitable[object]]]


async def relay_outbox(engine: AsyncEngine, publish: Publish, limit: int) -> int:
    """Publish committed events in id order (per payment: commit order); returns how many.

    One relay at a time across the projector's replicas: the one holding the relay lock, a session-level
    advisory lock (`session_lock`), reads the oldest unpublished rows, hands them all to the producer,
    waits for the broker's acknowledgements, marks the rows published and lets go of the lock; the others
    find it taken and return 0. Each step is a statement of its own, committed at once: while the relay
    waits for the broker (through a whole broker outage: the idempotent producer keeps retrying) its
    session holds the lock and nothing else, no transaction, so no snapshot holding back vacuum and no row
    locks. A row is marked only once acknowledged; whatever stops the round before it is marked (a crash,
    a dropped connection, an outage) leaves it unpublished, and the next round, here or on another
    replica, publishes it again, in id order (consumers are idempotent). The lock is not let go of while
    a record handed over is still in flight (`_publish_in_order`), so no two producers carry the same
    events at once, except when the relay's connection drops while it waits: PostgreSQL then lets go of
    the lock and another replica's relay may publish the events again beside the first relay's copies.
    """
    async with session_lock(engine, repo.RELAY_LOCK) as conn:
        if conn is None:
            return 0  # another relay is at work
        rows = await repo.unpublished(conn, limit)
        if not rows:
            return 0
        await _publish_in_order(publish, rows)
        await repo.mark_published(conn, [row.id for row in rows])
        return len(rows)


async def _publish_in_order(publish: Publish, rows: Sequence[Any]) -> None:
    """Hand every row to the producer in id order, then wait until each is acknowledged; raise if one was
    not, but only once none is in flight any more."""
    # All are handed over before any acknowledgement is awaited: the idempotent producer keeps their
    # order per partition, retries included.
    acknowledgements: list[Awaitable[object]] = []
    failure: BaseException | None = None
    try:
        for row in rows:
            acknowledgements.append(await _hand_over(publish, row))
    except Exception as exc:  # noqa: BLE001 - raised below, once what was handed over has settled
        failure = exc
    outcomes = await asyncio.gather(*acknowledgements, return_exceptions=True)
    # A cancelled acknowledgement is not one either.
    failure = failure or next((o for o in outcomes if isinstance(o, BaseException)), None)
    if failure is not None:
        raise failure


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
