"""SQL of sweeps' ticks, and the key of the advisory lock that keeps one sweep per account at a time."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.db.schema import reconcile_ticks

#: Advisory-lock namespace of sweeps (the first key of the two-key form; the projector uses ...0001).
_SWEEP_LOCKS = 0x5053_0002


async def record_tick(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    """Take a tick on; False if some replica took it on already."""
    result = await conn.execute(
        insert(reconcile_ticks).values(**values).on_conflict_do_nothing().returning(reconcile_ticks.c.tick_id)
    )
    return result.first() is not None


async def finish_tick(conn: AsyncConnection, tick_id: str, status: str, stats: dict[str, Any]) -> None:
    """Record how a tick ended and what its sweep did."""
    await conn.execute(
        update(reconcile_ticks)
        .where(reconcile_ticks.c.tick_id == tick_id)
        .values(status=status, stats=stats, completed_at=func.now())
    )


def sweep_lock_key(tenant: str, provider: str) -> int:
    """The advisory lock key of one tenant's sweeps at one gateway (a signed 32-bit int)."""
    digest = hashlib.sha256(f"{tenant}:{provider}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


def sweep_lock(tenant: str, provider: str) -> tuple[int, int]:
    """The advisory lock (two-key form: the sweeps' namespace, the account's key) one sweep of the account
    holds at a time, at session level (`session_lock`)."""
    return _SWEEP_LOCKS, sweep_lock_key(tenant, provider)
