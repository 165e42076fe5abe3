"""The redrive ledger (`dead_letter_redrives`): which dead letters were republished, where, by whom."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.db.schema import dead_letter_redrives

#: A dead letter's own position: (dlq topic, partition, offset).
Position = tuple[str, int, int]


async def redriven(conn: AsyncConnection, positions: Iterable[Position]) -> dict[Position, Any]:
    """The ledger rows of those of `positions` that were redriven already."""
    keys = list(set(positions))
    if not keys:
        return {}
    table = dead_letter_redrives
    rows = await conn.execute(
        select(table).where(tuple_(table.c.dlq_topic, table.c.partition, table.c.offset).in_(keys))
    )
    return {(r.dlq_topic, r.partition, r.offset): r for r in rows}


async def record_redrives(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Enter redriven letters in the ledger; one redriven twice keeps its first entry."""
    if rows:
        await conn.execute(insert(dead_letter_redrives).on_conflict_do_nothing(), list(rows))
