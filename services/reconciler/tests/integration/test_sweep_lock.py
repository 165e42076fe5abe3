"""One sweep per account at a time: a tick whose account's sweep lock another session holds is skipped;
once it is let go of, the next tick sweeps. The lock is PostgreSQL's two-key advisory lock (the sweeps'
namespace, the account's key), as replicas of every version take it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import topics
from paysync_core.contracts import Provider
from paysync_core.db.engine import make_engine
from paysync_core.db.schema import reconcile_ticks
from paysync_dev.service_fixtures import fetch, publish, wait_until
from paysync_reconciler.models import manual_tick
from paysync_reconciler.repository import sweep_lock_key

pytestmark = pytest.mark.integration

#: The sweeps' namespace: the first key of the two-key form.
SWEEP_LOCKS = 0x5053_0002
TRY_LOCK = text("SELECT pg_try_advisory_lock(CAST(:space AS int), CAST(:key AS int))")
UNLOCK = text("SELECT pg_advisory_unlock(CAST(:space AS int), CAST(:key AS int))")


async def tick_swept(engine: AsyncEngine, kafka: str, tenant: str) -> tuple[str, dict]:
    """Publish a tick of the tenant's Stripe account; its status and stats once its sweep ended."""
    tick = manual_tick(tenant, Provider.STRIPE, datetime.now(UTC))
    await publish(kafka, topics.RECONCILE_TICKS.name, topics.RECONCILE_TICKS.key_for(tick), tick.to_bytes())
    ended: list = []

    async def done() -> bool:
        ended[:] = await fetch(
            engine,
            select(reconcile_ticks.c.status, reconcile_ticks.c.stats).where(
                reconcile_ticks.c.tick_id == tick.tick_id, reconcile_ticks.c.status != "running"
            ),
        )
        return bool(ended)

    await wait_until(done, 60, f"tick {tick.tick_id} swept")
    return ended[0].status, ended[0].stats


async def test_a_tick_whose_account_another_session_sweeps_is_skipped_and_the_next_one_sweeps(
    engine, start_reconciler, lost_webhooks_tenant, kafka_topics, migrated_database
) -> None:
    tenant = await lost_webhooks_tenant(("stripe",))
    await start_reconciler(scheduler_enabled="false")
    other = make_engine(migrated_database, pool_size=1)  # another replica, mid-sweep
    lock = {"space": SWEEP_LOCKS, "key": sweep_lock_key(tenant.id, "stripe")}
    try:
        async with other.connect() as conn:
            assert (await conn.execute(TRY_LOCK, lock)).scalar_one()
            await conn.commit()

            status, stats = await tick_swept(engine, kafka_topics, tenant.id)
            assert (status, stats.get("reason")) == ("skipped", "another replica is sweeping this account")

            assert (await conn.execute(UNLOCK, lock)).scalar_one()
            await conn.commit()
        status, _ = await tick_swept(engine, kafka_topics, tenant.id)
        assert status == "completed"
    finally:
        await other.dispose()
