"""SQL of the outbox: enqueue events, read them for the relay, mark and purge the published."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Text, any_, bindparam, cast, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.db import OUTBOX_CHANNEL
from paysync_core.db.schema import outbox
from paysync_status_projector.repository.statements import bulk_rows, compile_once, records

#: Advisory-lock key of the relay: held, at session level, by the one relay at work (`relay_outbox`).
RELAY_LOCK = 7355609

#: The columns an event row gives.
OUTBOX_COLUMNS = ("topic", "key", "payload", "traceparent")


async def enqueue(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Add events to the outbox, in the given order, and wake the relays when this transaction commits."""
    if rows:
        await conn.execute(
            insert(outbox).from_select(OUTBOX_COLUMNS, bulk_rows(outbox, OUTBOX_COLUMNS)),
            records(outbox, OUTBOX_COLUMNS, rows),
        )
        await conn.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))


_UNPUBLISHED = compile_once(
    select(
        outbox.c.id,
        outbox.c.topic,
        outbox.c.key,
        cast(outbox.c.payload, Text).label("payload"),
        outbox.c.traceparent,
    )
    # No row locks: only the relay holding `RELAY_LOCK` reads and marks unpublished rows.
    .where(outbox.c.published_at.is_(None))
    .order_by(outbox.c.id)
    .limit(bindparam("limit"))
)
_MARK_PUBLISHED = compile_once(
    update(outbox)
    .where(outbox.c.id == any_(bindparam("ids", type_=ARRAY(outbox.c.id.type))))
    .values(published_at=func.now())
)


async def unpublished(conn: AsyncConnection, limit: int) -> list[Any]:
    """The oldest events not yet published; payloads as the JSON text stored. For the relay lock's holder."""
    return list(await _UNPUBLISHED.run(conn, {"limit": limit}))


async def mark_published(conn: AsyncConnection, ids: Sequence[int]) -> None:
    """Record that these events are on their topic."""
    await _MARK_PUBLISHED.run(conn, {"ids": list(ids)})


async def purge_published(conn: AsyncConnection, before: datetime, limit: int = 10_000) -> int:
    """Delete events published before `before`; returns how many."""
    oldest = (
        select(outbox.c.id)
        .where(outbox.c.published_at.isnot(None), outbox.c.published_at < before)
        .limit(limit)
        .scalar_subquery()
    )
    result = await conn.execute(delete(outbox).where(outbox.c.id.in_(oldest)))
    return result.rowcount or 0
