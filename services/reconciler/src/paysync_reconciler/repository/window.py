"""SQL of window sweeps: the payments paysync registered in a window, and the sweep's progress."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.db.schema import payments, reconcile_ticks
from paysync_reconciler.repository.columns import OPEN, PAYMENT_COLUMNS

#: Where a page of a window's payments ends: the last one's (created_at, id).
After = tuple[datetime, uuid.UUID]


def _in_window(tenant: str, provider: str, span: tuple[datetime, datetime], *, open_only: bool) -> list[Any]:
    since, until = span
    where = [
        payments.c.tenant_id == tenant,
        payments.c.provider == provider,
        payments.c.created_at >= since,
        payments.c.created_at < until,
    ]
    return where + [payments.c.status.in_(OPEN)] if open_only else where


async def count_in_window(
    conn: AsyncConnection, tenant: str, provider: str, span: tuple[datetime, datetime], *, open_only: bool
) -> int:
    """How many payments paysync registered in the window (only those that have not ended, if asked)."""
    where = _in_window(tenant, provider, span, open_only=open_only)
    query = select(func.count()).select_from(payments).where(*where)
    return int((await conn.execute(query)).scalar_one())


async def open_in_window(
    conn: AsyncConnection,
    tenant: str,
    provider: str,
    span: tuple[datetime, datetime],
    after: After | None,
    limit: int,
) -> list[Any]:
    """The next page of the window's payments that have not ended, in registration order."""
    query = select(*PAYMENT_COLUMNS, payments.c.created_at).where(
        *_in_window(tenant, provider, span, open_only=True)
    )
    if after is not None:
        query = query.where(tuple_(payments.c.created_at, payments.c.id) > after)
    rows = await conn.execute(query.order_by(payments.c.created_at, payments.c.id).limit(limit))
    return list(rows)


async def note_progress(conn: AsyncConnection, tick_id: str, stats: dict[str, Any]) -> None:
    """The counts so far on a running sweep's tick row (an ended one keeps its final counts)."""
    await conn.execute(
        update(reconcile_ticks)
        .where(reconcile_ticks.c.tick_id == tick_id, reconcile_ticks.c.status == "running")
        .values(stats=stats)
    )
