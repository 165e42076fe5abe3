"""Leases of several tenants' shared budgets in one statement: each bucket as if it were leased alone."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.db.engine import no_transaction
from paysync_dev.payments import new_tenant
from paysync_reconciler.repository import budgets
from paysync_reconciler.repository.budgets import Want

pytestmark = pytest.mark.integration


async def _lease(engine: AsyncEngine, wants: list[Want]) -> dict[tuple[str, str], budgets.Lease]:
    async with no_transaction(engine) as conn:
        return await budgets.lease(conn, wants)


async def test_one_statement_leases_each_bucket_within_its_own_burst(engine: AsyncEngine):
    small, large = await new_tenant(engine), await new_tenant(engine)
    wants = [Want(small, "mpesa", 0.001, 3.0, 10), Want(large, "mpesa", 0.001, 20.0, 12)]
    first = await _lease(engine, wants)  # first use: each bucket starts full (its burst)
    assert {k: v.granted for k, v in first.items()} == {(small, "mpesa"): 3, (large, "mpesa"): 12}
    assert first[(large, "mpesa")].left_over == pytest.approx(8.0, abs=0.01)
    again = await _lease(engine, wants)  # the rate refills a thousandth of a token a second
    assert {k: v.granted for k, v in again.items()} == {(small, "mpesa"): 0, (large, "mpesa"): 8}


async def test_concurrent_statements_never_hand_out_more_than_the_buckets_hold(engine: AsyncEngine):
    tenants = [await new_tenant(engine) for _ in range(3)]
    wants = [Want(t, "stripe", 0.001, 10.0, 4) for t in tenants]
    await _lease(engine, [Want(t, "stripe", 0.001, 10.0, 0) for t in tenants])  # the rows exist
    # Each statement locks the same rows, in reversed order of asking: one key order, no deadlock.
    leases = await asyncio.gather(*(_lease(engine, wants[:: 1 if i % 2 else -1]) for i in range(6)))
    for tenant in tenants:
        assert sum(lease[(tenant, "stripe")].granted for lease in leases) == 10


async def test_a_tenant_that_is_gone_gets_nothing_and_fails_no_other_lease(engine: AsyncEngine):
    tenant = await new_tenant(engine)
    leased = await _lease(
        engine, [Want("no-such-tenant", "mpesa", 5.0, 2.0, 1), Want(tenant, "mpesa", 5.0, 2.0, 1)]
    )
    assert {k: v.granted for k, v in leased.items()} == {(tenant, "mpesa"): 1}
