"""A replica's share of a shared budget: leased in batches, dropped when stale, waits while it is empty."""

from __future__ import annotations

import asyncio

import pytest

from paysync_reconciler.budget_lease import LeaseBatches, SharedBucket
from paysync_reconciler.repository.budgets import Lease, Want


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def settled(bucket: SharedBucket) -> None:
    """Let a lease started by `try_take` finish."""
    if bucket._task is not None:
        await bucket._task


async def test_tokens_come_in_leases_of_a_quarter_second_and_go_stale_after_one():
    clock, asked = Clock(), []

    async def lease(want: int) -> Lease:
        asked.append(want)
        return Lease(granted=want, left_over=10.0)

    bucket = SharedBucket(rate=20, lease_seconds=0.25, lease=lease, clock=clock)
    assert not bucket.try_take()  # nothing leased yet: a lease starts
    await settled(bucket)
    assert asked == [5]
    assert [bucket.try_take() for _ in range(6)] == [True] * 5 + [False]
    await settled(bucket)
    assert bucket.try_take()
    clock.now += 0.25  # the four left are stale: dropped, never carried over
    assert not bucket.try_take()
    await settled(bucket)
    assert asked == [5, 5, 5]


async def test_an_empty_bucket_is_asked_again_when_its_next_token_is_due():
    clock, asked = Clock(), []

    async def lease(want: int) -> Lease:
        asked.append(want)
        return Lease(granted=0, left_over=0.5)

    bucket = SharedBucket(rate=20, lease_seconds=0.25, lease=lease, clock=clock)
    assert not bucket.try_take()
    await settled(bucket)
    assert bucket.wait_time() == pytest.approx(0.5 / 20)
    assert not bucket.try_take()  # too early: no second statement
    await settled(bucket)
    assert asked == [5]
    clock.now += 0.5 / 20
    assert not bucket.try_take()
    await settled(bucket)
    assert asked == [5, 5]


async def test_a_reserved_token_is_spent_once_it_is_due_and_no_other_lease_is_asked_meanwhile():
    clock, asked = Clock(), []

    async def lease(want: int) -> Lease:
        asked.append(want)
        return Lease(granted=1, left_over=-0.5, ready_in=0.075)  # the bucket was empty: the next is ours

    bucket = SharedBucket(rate=20, lease_seconds=0.25, lease=lease, clock=clock)
    assert not bucket.try_take()
    await settled(bucket)
    assert bucket.wait_time() == pytest.approx(0.075)
    clock.now += 0.07
    assert not bucket.try_take()  # not due yet, and no second lease
    await settled(bucket)
    assert asked == [5]
    clock.now += 0.01
    assert bucket.try_take()
    assert not bucket.try_take()  # spent: the next lease starts
    await settled(bucket)
    assert asked == [5, 5]


async def test_leases_asked_while_one_runs_go_out_together_in_the_next_statement():
    statements: list[list[tuple[str, str, int]]] = []
    first_running, release = asyncio.Event(), asyncio.Event()

    async def lease_many(wants: list[Want]) -> dict[tuple[str, str], Lease]:
        statements.append([(w.tenant, w.provider, w.want) for w in wants])
        if len(statements) == 1:
            first_running.set()
            await release.wait()
        return {w.key: Lease(granted=w.want, left_over=0.0) for w in wants}

    batches = LeaseBatches(lease_many)
    first = asyncio.create_task(batches.lease(Want("t1", "mpesa", 50, 20, 12)))
    await first_running.wait()
    later = [asyncio.create_task(batches.lease(Want(t, "mpesa", 50, 20, 12))) for t in ("t2", "t3", "t2")]
    await asyncio.sleep(0)
    release.set()
    assert (await first).granted == 12
    assert [(await task).granted for task in later] == [12, 12, 12]
    # t2's second lease is never in the statement of its first: each bucket once a statement
    assert statements == [
        [("t1", "mpesa", 12)],
        [("t2", "mpesa", 12), ("t3", "mpesa", 12)],
        [("t2", "mpesa", 12)],
    ]


async def test_a_failed_statement_fails_every_lease_it_carried_and_the_next_one_is_tried_afresh():
    calls = 0

    async def lease_many(wants: list[Want]) -> dict[tuple[str, str], Lease]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database away")
        return {w.key: Lease(granted=1, left_over=0.0) for w in wants}

    batches, clock = LeaseBatches(lease_many), Clock()
    buckets = [
        SharedBucket(rate=20, lease_seconds=0.25, lease=batches.leaser(t, "mpesa", 20, 8), clock=clock)
        for t in ("a", "b")
    ]
    assert not any(bucket.try_take() for bucket in buckets)
    for bucket in buckets:
        await settled(bucket)
    assert [bucket.wait_time() for bucket in buckets] == [1.0, 1.0]  # paused, as after a failure alone
    assert (await batches.lease(Want("a", "mpesa", 20, 8, 5))).granted == 1
