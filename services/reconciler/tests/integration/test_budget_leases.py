"""Leases of several tenants' shared budgets in one statement: each bucket as if it were leased alone."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.db.engine import no_transaction
from paysync_core.providers.clients.retry import RetryPolicy, take_budget
from paysync_dev.payments import new_tenant
from paysync_dev.service_fixtures import wait_until
from paysync_reconciler.budget_lease import LeaseBatches, SharedBucket
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
    assert {k: v.granted for k, v in again.items()} == {(small, "mpesa"): 1, (large, "mpesa"): 8}
    assert again[(large, "mpesa")].ready_in == 0.0
    # the small one is empty: its next token is reserved, due when the rate has refilled it
    assert again[(small, "mpesa")].ready_in == pytest.approx(1000.0, abs=1.0)


async def test_concurrent_statements_never_hand_out_more_than_the_buckets_hold(engine: AsyncEngine):
    tenants = [await new_tenant(engine) for _ in range(3)]
    wants = [Want(t, "stripe", 0.001, 10.0, 4) for t in tenants]
    await _lease(engine, [Want(t, "stripe", 0.001, 10.0, 0) for t in tenants])  # the rows exist
    # Each statement locks the same rows, in reversed order of asking: one key order, no deadlock.
    leases = await asyncio.gather(*(_lease(engine, wants[:: 1 if i % 2 else -1]) for i in range(6)))
    for tenant in tenants:
        granted = [lease[(tenant, "stripe")] for lease in leases]
        assert sum(g.granted for g in granted if g.ready_in == 0.0) == 10
        # the statements that found it empty each reserved the next token, one after the other
        reserved = sorted(g.ready_in for g in granted if g.ready_in > 0.0)
        assert [g.granted for g in granted if g.ready_in > 0.0] == [1] * len(reserved)
        assert reserved == pytest.approx([1000.0 * n for n in range(1, len(reserved) + 1)], abs=1.0)


async def test_a_tenant_that_is_gone_gets_nothing_and_fails_no_other_lease(engine: AsyncEngine):
    tenant = await new_tenant(engine)
    leased = await _lease(
        engine, [Want("no-such-tenant", "mpesa", 5.0, 2.0, 1), Want(tenant, "mpesa", 5.0, 2.0, 1)]
    )
    assert {k: v.granted for k, v in leased.items()} == {(tenant, "mpesa"): 1}


async def test_replicas_share_an_empty_bucket_evenly_though_one_hears_back_later(engine: AsyncEngine):
    # Three replicas' callers wait on one bucket; one replica hears back from PostgreSQL a few
    # milliseconds later than the others (a busier event loop, a longer way). Each gets its turn.
    tenant, rate, burst = await new_tenant(engine), 20.0, 1.0
    taken = [0, 0, 0]

    def replica(reply_delay: float) -> SharedBucket:
        async def lease_many(wants: list[Want]) -> dict[tuple[str, str], budgets.Lease]:
            leased = await _lease(engine, wants)
            await asyncio.sleep(reply_delay)
            return leased

        return SharedBucket(rate, 0.25, LeaseBatches(lease_many).leaser(tenant, "stripe", rate, burst))

    replicas = [replica(0.0), replica(0.0), replica(0.004)]

    async def caller(n: int) -> None:
        while True:
            await take_budget(replicas[n], RetryPolicy(max_budget_wait=3600), "stripe")
            taken[n] += 1

    async def enough() -> bool:
        return sum(taken) >= 90

    callers = [asyncio.create_task(caller(n)) for n in range(3) for _ in range(8)]
    try:
        await wait_until(enough, 60, "90 tokens taken", every=0.05)
    finally:
        for task in callers:
            task.cancel()
        await asyncio.gather(*callers, return_exceptions=True)
    assert min(taken) >= sum(taken) / 5, taken  # a third each, give or take
