"""The alert rules' window queries read an index, not the whole payments table: `EXPLAIN` of the very
statements the rules run, against the real PostgreSQL, on a payments table of a realistic shape."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_dev.fixtures import TestTenant
from paysync_notifier.rules_repo import failures_query, latest_outcomes_query

pytestmark = pytest.mark.integration

# 30,000 payments of one tenant over three gateways and some 40 days, one in twenty failed, some
# pending (their status never changed), the rest succeeded.
_SEED = text("""
INSERT INTO payments (id, tenant_id, provider, provider_ref, domain, status, status_changed_at)
SELECT gen_random_uuid(), :tenant, (ARRAY['stripe', 'paystack', 'mpesa'])[1 + i % 3], 'ref_' || i, 'bookings',
       CASE WHEN i % 20 = 0 THEN 'failed' WHEN i % 7 = 0 THEN 'pending' ELSE 'succeeded' END,
       CASE WHEN i % 7 = 0 AND i % 20 <> 0 THEN NULL ELSE now() - make_interval(mins => i * 2) END
FROM generate_series(1, 30000) AS i
""")


async def plan_of(engine: AsyncEngine, query: Select) -> str:
    """PostgreSQL's plan for `query`, with its values in place as the rules send them."""
    sql = query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
    async with engine.connect() as conn:
        rows = await conn.exec_driver_sql(f"EXPLAIN {sql}")
    return "\n".join(row[0] for row in rows)


async def test_the_failure_rate_rules_window_queries_read_an_index(
    engine: AsyncEngine, tenant: TestTenant
) -> None:
    async with engine.begin() as conn:
        await conn.execute(_SEED, {"tenant": tenant.id})
        await conn.execute(text("ANALYZE payments"))

    latest = await plan_of(engine, latest_outcomes_query(tenant.id, "paystack", 20, timedelta(hours=1)))
    assert "ix_payments_gateway_changed" in latest and "Seq Scan on payments" not in latest, latest
    failing = await plan_of(engine, failures_query(timedelta(days=7)))
    assert "ix_payments_status_changed" in failing and "Seq Scan on payments" not in failing, failing
