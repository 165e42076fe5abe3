"""The driver pool (`driver_pool.py`): statements past its size wait for a connection, and a statement
cancelled midway leaves no connection behind that the next statement would trip on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from paysync_api_gateway.driver_pool import DriverPool
from paysync_core.db.engine import make_engine
from paysync_dev.service_fixtures import wait_until

pytestmark = pytest.mark.integration

_NAME = "test-driver-pool"
_MINE = f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{_NAME}'"


@pytest.fixture
async def pools(migrated_database: str) -> AsyncIterator[tuple[DriverPool, DriverPool]]:
    """A pool of two connections, and one of a single connection to watch the first with."""
    engine = make_engine(migrated_database, pool_size=1, application_name="test-admin")
    tested, watching = DriverPool(engine, 2, _NAME), DriverPool(engine, 1, "test-admin")
    await tested.start()
    await watching.start()
    try:
        yield tested, watching
    finally:
        await tested.close()
        await watching.close()
        await engine.dispose()


async def test_statements_past_its_size_wait_for_a_connection_and_each_gets_its_own_row(pools) -> None:
    pool, watching = pools
    rows = await asyncio.gather(*(pool.fetchrow("SELECT $1::int AS n, pg_sleep(0.01)", n) for n in range(12)))
    assert [row["n"] for row in rows] == list(range(12))
    assert (await watching.fetchrow(_MINE))["count"] == 2  # never more than its size, kept open


async def test_a_statement_cancelled_midway_leaves_the_pool_usable(pools) -> None:
    pool, watching = pools
    sleeping = asyncio.create_task(pool.fetchrow("SELECT pg_sleep(30)"))

    async def asleep() -> bool:
        row = await watching.fetchrow(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'"
        )
        return bool(row["count"])

    await wait_until(asleep, 30, "the statement to run", every=0.02)
    sleeping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeping
    answers = await asyncio.gather(*(pool.fetchrow("SELECT $1::int AS n", n) for n in range(4)))
    assert [row["n"] for row in answers] == [0, 1, 2, 3]
