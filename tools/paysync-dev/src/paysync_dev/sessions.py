"""What PostgreSQL shows of sessions, for tests: who holds an advisory lock, and whose transaction is open.

For work that holds a session-level lock while it waits on something else (`session_lock`): the test
polls that its session holds the lock and no transaction (no snapshot holding back vacuum).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

#: A one-key advisory lock's holder (objsubid 1) in this database, and its session's transaction, if any.
_LOCK_HOLDER = text(
    """
    SELECT a.application_name, a.state, a.xact_start, a.backend_xmin
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = :key AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    """
)
#: Sessions of these application names that have a transaction (a snapshot) open.
_IN_TRANSACTION = text(
    """
    SELECT count(*) FROM pg_stat_activity
    WHERE application_name = ANY(:names)
      AND (state LIKE 'idle in transaction%' OR xact_start IS NOT NULL OR backend_xmin IS NOT NULL)
    """
)


async def lock_holders(engine: AsyncEngine, key: int) -> list[Any]:
    """The sessions holding the advisory lock `key`: application_name, state, xact_start, backend_xmin."""
    async with engine.connect() as conn:
        return list(await conn.execute(_LOCK_HOLDER, {"key": key}))


async def in_transaction(engine: AsyncEngine, names: Sequence[str]) -> int:
    """How many sessions of these application names have a transaction open."""
    async with engine.connect() as conn:
        return int((await conn.execute(_IN_TRANSACTION, {"names": list(names)})).scalar_one())


async def idle_holder(engine: AsyncEngine, key: int, names: Sequence[str]) -> str | None:
    """The application name of the one session holding the lock `key` if it is `idle` with no transaction
    (no `xact_start`, no `backend_xmin`: no snapshot) and no session of `names` has one open; else None."""
    holders = await lock_holders(engine, key)
    if len(holders) != 1 or await in_transaction(engine, names):
        return None
    [holder] = holders
    idle = holder.state == "idle" and holder.xact_start is None and holder.backend_xmin is None
    return str(holder.application_name) if idle else None
