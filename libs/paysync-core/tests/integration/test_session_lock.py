"""`session_lock` in its two forms: one bigint key (the relay, the alert rules) and a pair of ints (the
reconciler's sweeps: a namespace and an account's key), each the lock PostgreSQL names by those keys."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.db.engine import make_engine, session_lock

pytestmark = pytest.mark.integration

#: The advisory locks this database's sessions hold: (classid, objid, objsubid) as pg_locks names them.
HELD = text(
    """
    SELECT classid::bigint, objid::bigint, objsubid FROM pg_locks
    WHERE locktype = 'advisory' AND granted
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
    """
)


async def held(engine: AsyncEngine) -> set[tuple[int, int, int]]:
    async with engine.connect() as conn:
        return {tuple(row) for row in await conn.execute(HELD)}  # type: ignore[misc]


async def test_a_pair_of_keys_is_the_two_key_lock_and_a_single_key_the_one_key_lock(migrated_database: str):
    engine = make_engine(migrated_database, pool_size=3)
    namespace, key = 0x5053_7E57, -123_456  # an int4 pair; pg_locks shows the second as unsigned
    try:
        async with session_lock(engine, (namespace, key)) as pair:
            assert pair is not None
            assert (namespace, key + 2**32, 2) in await held(engine)
            async with session_lock(engine, (namespace, key)) as other:
                assert other is None  # another session holds it
            # Different locks: the same numbers in the one-key form, or as one bigint.
            async with session_lock(engine, namespace) as single, session_lock(engine, key) as negative:
                assert single is not None and negative is not None
                assert (0, namespace, 1) in await held(engine)
        assert not {lock for lock in await held(engine) if lock[0] == namespace or lock[1] == namespace}
    finally:
        await engine.dispose()
